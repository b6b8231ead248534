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


def fill_disk(disk: Path) -> Path:
    """Fill the disk under `disk` to its very last block (64 KiB, then 4 KiB, then byte writes
    until each is refused); the filler file, which gives the space back when removed."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                continue
    return filler


@pytest.fixture(autouse=True)
def _garbage_collected_on_the_gui_thread(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Tests with Qt get the app's policy: cyclic GC only on the GUI thread (services/gc_policy.py).

    Without it a collection on a worker thread can destroy a GUI-thread QObject there and deadlock.
    Installed once per session (the QApplication lives that long); between tests the due
    collections run here, on the main thread, so Qt-free tests keep their garbage collected too.
    """
    collector = None
    if "qapp" in request.fixturenames:
        from msquant_desktop.services.gc_policy import install_main_thread_gc

        collector = install_main_thread_gc(request.getfixturevalue("qapp"))
    yield
    if collector is None and "PySide6.QtCore" in sys.modules:
        from msquant_desktop.services import gc_policy

        app = sys.modules["PySide6.QtCore"].QCoreApplication.instance()
        collector = app.findChild(gc_policy.MainThreadGarbageCollector) if app is not None else None
    if collector is not None:
        collector.collect_if_due()
