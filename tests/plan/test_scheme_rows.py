"""One row per scheme, as a "Plan serving…" view shows it (services/serving_plan.py)."""

from __future__ import annotations

import json
from pathlib import Path

from msquant_desktop.domain.service_rate import fit_measured
from msquant_desktop.domain.serving_memory import GIB, PLAN_SCHEMES
from msquant_desktop.services.serving_plan import ServingGoal, scheme_rows
from tests.plan.test_memory import LLAMA3_8B


def test_rows_for_every_scheme_from_a_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_8B))
    goal = ServingGoal(arrival_rate=20.0, slo_p95_s=30.0, output_tokens=256, context_length=4096)
    rows = {r["scheme"]: r for r in scheme_rows(tmp_path, "h100-sxm", goal)}
    assert list(rows) == list(PLAN_SCHEMES)
    for row in rows.values():
        assert row["source"] == "config estimate" and row["exact"] is False
        assert row["replicas"] >= 1 and row["gpus"] == row["replicas"] * row["tensor_parallel"]
        assert row["gpu_hours_per_day"] == 24.0 * row["gpus"] and row["p95_s"] <= 30.0
        assert "roofline" in row["speed_source"]
    assert 14.5 < rows["BF16"]["weights_gib"] < 15.5  # 8.03 B parameters × 2 bytes
    assert rows["W4A16"]["weights_gib"] < rows["W8A16"]["weights_gib"] < rows["BF16"]["weights_gib"]
    assert rows["W4A16"]["max_concurrency"] > rows["BF16"]["max_concurrency"]
    assert rows["W4A16"]["replicas"] < rows["BF16"]["replicas"] == 2  # fewer bytes to read per step
    assert (
        rows["GPTQ_W4A16"]["weights_gib"] == rows["W4A16"]["weights_gib"] < rows["AWQ_W4A16"]["weights_gib"]
    )


def test_a_measured_speed_replaces_the_roofline(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_8B))
    slow = fit_measured(20.0, 120.0)  # 50 ms per step alone, 67 ms per step at batch 8
    (row,) = scheme_rows(
        tmp_path,
        "a100-80gb",
        ServingGoal(arrival_rate=20.0, slo_p95_s=60.0),
        schemes=["W4A16"],
        speeds={"W4A16": slow},
    )
    assert row["speed_source"].startswith("measured") and row["replicas"] >= 1 and row["p95_s"] <= 60.0
    # One request alone needs ln 20 · 256 · 50 ms ≈ 38 s at the p95: a 30 s SLO is out of reach.
    (none,) = scheme_rows(
        tmp_path,
        "a100-80gb",
        ServingGoal(arrival_rate=20.0, slo_p95_s=30.0),
        schemes=["W4A16"],
        speeds={"W4A16": slow},
    )
    assert none["replicas"] is None and none["gpus"] is None and none["fits"]
    assert none["weights_gib"] == row["weights_gib"] and none["weights_bytes_per_gpu"] < 6 * GIB
