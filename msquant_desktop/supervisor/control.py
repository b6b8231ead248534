"""Asking a running supervisor to stop its job, by pid checked against start time and marker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from msquant_desktop.domain.cuda_devices import CUDA_VISIBLE_DEVICES, usable_gpu_count
from msquant_desktop.domain.runfiles import SUPERVISOR_FILE
from msquant_desktop.procs.identity import is_same_process, normalize_start_time
from msquant_desktop.procs.kill import send_signal

GPU_COUNT_ENV = "MSQUANT_GPU_COUNT"
"""Overrides the number of GPUs the queue hands out (tests; machines where /proc lies)."""


def detect_gpu_count() -> int:
    """GPU slots the queue may hand out: NVIDIA GPUs on this machine, counted without NVML (the queue
    must work without it), limited to an inherited CUDA_VISIBLE_DEVICES."""
    override = os.environ.get(GPU_COUNT_ENV, "").strip()
    if override.isdigit():
        hardware = int(override)
    else:
        try:
            hardware = len(os.listdir("/proc/driver/nvidia/gpus"))
        except OSError:
            hardware = 0
    return usable_gpu_count(hardware, os.environ.get(CUDA_VISIBLE_DEVICES))


def supervisor_identity(run_dir: Path) -> tuple[int, float | None] | None:
    """(pid, start time after boot) the supervisor wrote into the run folder when it started, or None."""
    try:
        data = json.loads((run_dir / SUPERVISOR_FILE).read_text(encoding="utf-8"))
        start = data.get("start_time")
        return int(data["pid"]), normalize_start_time(None if start is None else float(start))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def supervisor_alive(pid: int | None, start: float | None, run_dir: Path) -> bool:
    """pid + start time + the run-folder marker (procs.identity.is_same_process), never the pid alone."""
    return is_same_process(pid, start, str(run_dir))


def request_stop(pid: int | None, start: float | None, run_dir: Path) -> bool:
    """SIGTERM to the job's supervisor, which stops the whole tree (TERM, grace, KILL) and records
    the end.  False when that supervisor is no longer there (nothing was signalled)."""
    expected = normalize_start_time(start)
    if pid is None or expected is None or not supervisor_alive(pid, expected, run_dir):
        return False
    return send_signal(pid, expected, signal.SIGTERM)
