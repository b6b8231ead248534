"""Helpers shared by the jobs tests (Qt-free): launching a supervisor by hand, process checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from msquant_desktop.domain.markers import RUN_DIR_ENV
from msquant_desktop.procs.tree import pids_with_marker

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def write_launch(run_dir: Path, argv: list[str], grace: float = 10.0, job_id: int = 1) -> dict[str, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(**{RUN_DIR_ENV: str(run_dir)})
    launch = {"job_id": job_id, "argv": argv, "cwd": str(run_dir), "env": env, "grace_seconds": grace}
    (run_dir / "launch.json").write_text(json.dumps(launch))
    return env


def start_supervisor(
    run_dir: Path, env: dict[str, str], stdout: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "msquant_desktop", "_supervise", "--run-dir", str(run_dir)],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def marked(run_dir: Path) -> list[int]:
    return pids_with_marker(str(run_dir), exclude={os.getpid()})


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def log_lines(run_dir: Path) -> list[str]:
    return (run_dir / "output.log").read_text(errors="replace").splitlines()
