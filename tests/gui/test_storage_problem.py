"""A store that fills up under the running window: the user gets one line in the window's problem
bar (what is wrong, what to do), not an exception dialog, and the window keeps working."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a tmpfs mount needs root")


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


@needs_root
def test_a_full_disk_under_the_window_is_told_in_its_problem_bar(tiny_data_dir: Path, qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_main_window, create_services, known_fault
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.domain.jobs import JobSpec
    from msquant_desktop.ui.excepthook import install_excepthook

    paths = resolve_paths(tiny_data_dir).ensure()
    services = create_services(paths)
    window = create_main_window(services)
    qtbot.addWidget(window)
    window.show()
    old_hook = sys.excepthook
    install_excepthook(str(paths.log_file), lambda exc: known_fault(exc, paths), window.show_problem)
    try:
        _fill(tiny_data_dir)
        big = JobSpec(name="x" * 200_000, argv=("true",))  # a row that needs new pages

        def submit_twice() -> None:  # as a button would: from the event loop
            services.jobs.submit(big)

        QTimer.singleShot(0, submit_twice)
        QTimer.singleShot(10, submit_twice)
        qtbot.waitUntil(window.problem_banner.isVisible, timeout=10_000)
        text = window.problem_banner.label.text()
        assert "free some disk space" in text and str(paths.database) in text, text
        assert "\n" not in text and "Traceback" not in text
        qtbot.waitUntil(lambda: window.problem_banner.count_label.text() == "×2", timeout=10_000)
        assert QApplication.activeModalWidget() is None  # no dialog
        window.problem_banner.dismiss()
        assert not window.problem_banner.isVisible()
    finally:
        sys.excepthook = old_hook
        (tiny_data_dir / "filler").unlink()
        window.close()
        services.shutdown()
