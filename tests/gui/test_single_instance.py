"""One instance per data dir, with real app processes offscreen: a second start raises the first
window and exits 0; a crashed instance's socket is taken over by the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.jobs.helpers import child_env, wait_for


def _app(data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir)]


def _env(**extra: str) -> dict[str, str]:
    return child_env(QT_QPA_PLATFORM="offscreen", **extra)


def test_a_second_start_raises_the_first_window_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log_file = data / "logs" / "msquant-desktop.log"
    first = subprocess.Popen(
        _app(data), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: log_file.exists() and "started; data in" in log_file.read_text(), timeout=60)
        second = subprocess.run(_app(data), env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout and "its window was raised" in second.stdout
        assert wait_for(lambda: "a second start on this data dir: raising the window" in log_file.read_text())
        assert first.poll() is None  # the first one goes on
    finally:
        os.kill(first.pid, signal.SIGKILL)  # a crash: its socket stays behind
        first.communicate(timeout=30)
    again = subprocess.run(
        _app(data), env=_env(MSQUANT_STARTUP_PROBE="1"), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "startup-to-window-shown" in again.stdout, again.stdout + again.stderr
