"""`msquant-desktop plan ...` in a child process: the JSON contract of README's command table."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import run_cli_argv


def plan(*args: str) -> tuple[int, Any, str]:
    proc = subprocess.run(run_cli_argv("plan", *args), capture_output=True, text=True, timeout=120)
    try:
        data = json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else proc.stdout
    except ValueError:
        data = proc.stdout
    return proc.returncode, data, proc.stderr


def test_queue_contract() -> None:
    code, d, err = plan("queue", "--arrival-rate", "1", "--service-rate", "1", "--replicas", "2", "--json")
    assert code == 0, err
    assert d["stable"] is True and d["utilization"] == 0.5
    assert math.isclose(d["p_wait"], 1 / 3) and math.isclose(d["mean_wait"], 1 / 3)
    assert math.isclose(d["p95_wait"], math.log(20 / 3)) and d["p99_wait"] > d["p95_wait"]
    assert math.isclose(d["mean_time_in_system"], 4 / 3)
    assert d["model"] == "M/M/c" and d["exact"] is True


def test_queue_unstable_is_a_value_not_a_number() -> None:
    code, d, _ = plan("queue", "--arrival-rate", "3", "--service-rate", "1", "--replicas", "3", "--json")
    assert code == 0 and d["stable"] is False
    assert d["p_wait"] is None and d["mean_wait"] is None and d["p95_wait"] is None
    assert d["min_stable_replicas"] == 4 and "unstable" in d["reason"]


def test_queue_batching_from_an_evaluate_result(tmp_path: Path) -> None:
    result = tmp_path / "eval.json"
    result.write_text(json.dumps({"decode_tokens_per_s": 60.0, "decode_tokens_per_s_batch8": 400.0}))
    code, d, err = plan(
        "queue", "--arrival-rate", "6", "--replicas", "2", "--evaluate-json", str(result),
        "--output-tokens", "128", "--max-batch", "32", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert d["stable"] and d["model"] == "batching birth-death chain" and d["arrival_rate_per_replica"] == 3
    assert d["p95_time_in_system"] > d["mean_time_in_system"] > 0 and "measured" in d["speed_source"]


def test_size_contract_and_no_answer() -> None:
    code, d, err = plan("size", "--arrival-rate", "8", "--service-rate", "1", "--max-p-wait", "0.1", "--json")
    assert code == 0, err
    assert d["replicas"] == 13 and d["p_wait"] <= 0.1 and d["stable"]
    code, d, _ = plan("size", "--arrival-rate", "8", "--service-rate", "1", "--max-p95-wait", "0.5", "--json")
    assert code == 0 and d["replicas"] >= 9 and d["p95_wait"] <= 0.5
    code, d, _ = plan("size", "--arrival-rate", "8", "--service-rate", "1", "--max-mean-wait", "0", "--json")
    assert code == 3 and d["replicas"] is None and d["reason"]


def test_memory_contract(recorded: dict[str, Path]) -> None:
    code, d, err = plan(
        "memory", "--model", str(recorded["W4A16"]), "--context", "2048", "--gpu", "l4", "--json"
    )
    assert code == 0, err
    assert d["scheme"] == "W4A16" and d["exact"] is True and d["source"] == "checkpoint"
    assert d["weights_bytes"] == 5875136  # what llmcompressor wrote (tests/plan/fixtures)
    assert d["kv_bytes_per_token"] == 2 * 4 * 4 * 32 * 2  # 2 · layers · kv heads · head dim · BF16
    assert d["tensor_parallel"] == 1 and d["max_concurrency"] > 1000 and d["fits"]
    code, d, _ = plan(
        "memory",
        "--model",
        str(recorded["BF16"] / "config.json"),
        "--scheme",
        "AWQ_W4A16",
        "--kv-dtype",
        "fp8",
        "--json",
    )
    assert code == 0 and d["exact"] is False and d["source"] == "config estimate"
    assert d["weights_bytes"] == 5887424 and d["kv_bytes_per_token"] == 2 * 4 * 4 * 32
    code, _, err = plan("memory", "--model", "/nonexistent/model", "--json")
    assert code == 2 and "does not exist" in err


def test_replay_contract() -> None:
    code, d, err = plan(
        "replay", "--shape", "step", "--low", "5", "--high", "40", "--duration", "3600",
        "--controller", "pid", "--service-rate", "4", "--slots-per-replica", "16", "--slo-p95", "20",
        "--cold-start", "60", "--json",
    )  # fmt: skip
    assert code == 0, err
    for key in ("slo_violation_minutes", "gpu_hours", "scaling_actions", "mean_replicas", "max_replicas"):
        assert key in d
    assert d["ticks"] == 3600 and len(d["series"]["t_s"]) == 60 and d["scaling_actions"] >= 1
    code, text, _ = plan(
        "replay",
        "--shape",
        "sine",
        "--duration",
        "600",
        "--controller",
        "kpa",
        "--service-rate",
        "4",
        "--slo-p95",
        "20",
    )
    assert code == 0 and "kpa on sine" in text


def test_usage_errors_exit_2() -> None:
    code, _, err = plan("queue", "--arrival-rate", "1", "--service-rate", "1", "--replicas", "0")
    assert code == 2 and "--replicas: 0 must be from 1" in err
    code, _, err = plan(
        "replay",
        "--trace",
        "/nonexistent.csv",
        "--controller",
        "ray",
        "--service-rate",
        "1",
        "--slo-p95",
        "5",
    )
    assert code == 2 and "cannot read" in err
