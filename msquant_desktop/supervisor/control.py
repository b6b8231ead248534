"""Asking a running supervisor to stop its job, by pid checked against start time and marker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from msquant_desktop.domain.runfiles import SUPERVISOR_FILE
from msquant_desktop.supervisor import proctree

GPU_COUNT_ENV = "MSQUANT_GPU_COUNT"
"""Overrides the number of GPUs the queue hands out (tests; machines where /proc lies)."""


def detect_gpu_count() -> int:
    """NVIDIA GPUs on this machine, counted without NVML (the queue must work without it)."""
    override = os.environ.get(GPU_COUNT_ENV, "").strip()
    if override.isdigit():
        return int(override)
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def supervisor_identity(run_dir: Path) -> tuple[int, float | None] | None:
    """(pid, start time) the supervisor wrote into the run folder when it started, or None."""
    try:
        data = json.loads((run_dir / SUPERVISOR_FILE).read_text(encoding="utf-8"))
        return int(data["pid"]), data.get("start_time")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def supervisor_alive(pid: int | None, start: float | None, run_dir: Path) -> bool:
    return bool(pid) and proctree.is_same_process(int(pid or 0), start, str(run_dir))


def request_stop(pid: int | None, start: float | None, run_dir: Path) -> bool:
    """SIGTERM to the job's supervisor, which stops the whole tree (TERM, grace, KILL) and records
    the end.  False when that supervisor is no longer there (nothing was signalled)."""
    if pid is None or not supervisor_alive(pid, start, run_dir):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
