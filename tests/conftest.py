"""Shared test set-up.  Must stay Qt-free: tests/core also runs with PySide6 made unimportable."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Headless Qt, and never the user's real data: set before anything imports the app.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_DATA = tempfile.mkdtemp(prefix="msquant-tests-")
os.environ["MSQUANT_DATA_DIR"] = _SESSION_DATA

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data dir for one test (config, data and logs beneath it)."""
    d = tmp_path / "msquant-data"
    d.mkdir()
    return d


@pytest.fixture
def app_paths(data_dir: Path):  # type: ignore[no-untyped-def]
    from msquant_desktop.config.paths import resolve_paths

    return resolve_paths(data_dir).ensure()


def run_cli_argv(*args: str) -> list[str]:
    """argv that runs our CLI in a child process with this interpreter."""
    return [sys.executable, "-m", "msquant_desktop", *args]
