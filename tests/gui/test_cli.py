"""The executable's headless surface: --help, --version, --self-test, and no-display behaviour."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from msquant_desktop import __version__
from tests.conftest import run_cli_argv


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(run_cli_argv(*args), capture_output=True, text=True, timeout=timeout, env=env)


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"msquant-desktop {__version__}"


def test_help_lists_options_and_commands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for word in ("--self-test", "--data-dir", "--version"):
        assert word in proc.stdout


def test_self_test_passes_offscreen(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MSQUANT_DATA_DIR": str(tmp_path)}
    proc = _run("--self-test", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout


def test_without_a_display_the_app_explains_instead_of_aborting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["MSQUANT_DATA_DIR"] = str(tmp_path)
    proc = _run(env=env)
    assert proc.returncode == 3
    assert "no display found" in proc.stderr and "xvfb-run" in proc.stderr
    assert "Aborted" not in proc.stderr and "core dumped" not in proc.stderr
