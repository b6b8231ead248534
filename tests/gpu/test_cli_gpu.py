"""`msquant-desktop gpu` and `msquant-desktop doctor` as a user runs them (child processes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from msquant_desktop.gpu.fake_nvml import FAKE_ENV
from tests.conftest import run_cli_argv
from tests.gpu.procs_helpers import kill_quietly, marker, running, spawn_reparented


def _run(tmp_path: Path, *args: str, scenario: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAKE_ENV}
    env["MSQUANT_DATA_DIR"] = str(tmp_path / "data")
    if scenario:
        env[FAKE_ENV] = scenario
    return subprocess.run(run_cli_argv(*args), capture_output=True, text=True, timeout=120, env=env)


def test_gpu_command_without_nvml_exits_4_with_a_clear_message(tmp_path: Path) -> None:
    proc = _run(tmp_path, "gpu", scenario="no_library")
    assert proc.returncode == 4
    assert proc.stderr.strip() == "No NVIDIA GPU found: NVML library not found" and proc.stdout == ""


def test_gpu_command_prints_snapshots(tmp_path: Path) -> None:
    proc = _run(tmp_path, "gpu", "--json", "--watch", "0.25", "--count", "2", scenario="two_gpus")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert second["timestamp"] > first["timestamp"] and len(first["gpus"]) == 2
    assert first["gpus"][1]["throttle_reasons"] == ["power cap", "thermal (software)"]
    assert first["host"]["memory_total_bytes"] > 0
    # The documented shape (README.md, "JSON output"), not the internal dataclasses.
    assert first["schema"] == 1 and set(first) == {
        "schema",
        "timestamp",
        "driver_version",
        "gpus",
        "processes",
        "host",
    }
    assert {"index", "uuid", "utilization_gpu_percent", "memory_used_bytes", "power_limit_w"} <= set(
        first["gpus"][0]
    )
    assert all({"pid", "gpu_index", "job_id", "command"} <= set(p) for p in first["processes"])
    text = _run(tmp_path, "gpu", scenario="missing_function")
    assert (
        text.returncode == 0
        and "GPU 1 NVIDIA H100 80GB HBM3: util" in text.stdout
        and "—/700 W" in text.stdout
    )
    bad = _run(tmp_path, "gpu", "--watch", "0.1", scenario="two_gpus")
    assert bad.returncode == 2 and "at least 0.25" in bad.stderr


def test_doctor_command_reports_and_cleans(tmp_path: Path) -> None:
    orphan = spawn_reparented(tmp_path, marker(3, tmp_path / "no-such-store.sqlite3", tmp_path / "r"))
    try:
        proc = _run(tmp_path, "doctor", "--json", scenario="two_gpus")
        assert proc.returncode == 5, proc.stderr
        report = json.loads(proc.stdout)
        assert report["healthy"] is False and report["gpu_status"] == "2 GPU(s), driver 550.54.15 (fake)"
        mine = [f for f in report["findings"] if f["pid"] == orphan.pid]
        assert len(mine) == 1 and mine[0]["kind"] == "orphan" and mine[0]["cleanable"]
        assert {"throttling", "unowned_memory"} <= {f["kind"] for f in report["findings"]}
        refused = _run(tmp_path, "doctor", "--clean", scenario="two_gpus")  # stdin is not a terminal
        assert refused.returncode == 2 and "--yes" in refused.stderr and running(orphan.pid)
        healthy = _run(tmp_path, "doctor", scenario="no_library")
        assert "No NVIDIA GPU found: NVML library not found" in healthy.stdout
    finally:
        kill_quietly(orphan.pids())
