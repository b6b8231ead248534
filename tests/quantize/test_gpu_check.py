"""bench/gpu_check.py in its fake-NVML mode: the same steps as on a GPU machine, as far as they go
without one (fake-NVML tests, W4A16 on the CPU, attribution through the fake, the doctor)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.quantize.conftest import needs_llmcompressor

REPO = Path(__file__).resolve().parents[2]


@needs_llmcompressor
def test_gpu_check_fake_mode_runs_every_step_and_writes_its_figures(demo_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/gpu_check.py"),
            "--fake",
            "--out",
            str(out),
            "--model",
            str(demo_model),
        ],
        capture_output=True,
        text=True,
        timeout=420,  # ~35 s of CPU; the wall time grows with the machine's load
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in data["steps"]}
    assert list(steps) == ["NVML tests", "quantize W4A16", "evaluate W4A16", "doctor"]
    assert all(s["ok"] for s in steps.values())
    assert steps["NVML tests"]["figures"]["passed"] >= 5
    for name in ("quantize W4A16", "evaluate W4A16"):
        seen = steps[name]["figures"]
        assert seen["attributed_peak_mib"] == 700.0 and seen["samples"] >= 1  # the fake's 700 MiB, marked
        assert seen["unattributed_pids"] == []
    assert 1.0 < steps["evaluate W4A16"]["figures"]["perplexity"] < 10.0
    assert "throttling" in steps["doctor"]["figures"]["kinds"] or steps["doctor"]["figures"]["findings"] >= 1
    table = (out / "gpu_check.md").read_text()
    assert table.startswith("GPU check on fake NVML (two_gpus)") and "| evaluate W4A16 | ok |" in table
    assert table in proc.stdout
