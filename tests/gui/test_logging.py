"""Logs a user can send: Qt messages reach the log file; an unhandled error shows a dialog naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

QT_TO_LOG = """
import sys
from pathlib import Path
from msquant_desktop.config.logsetup import setup_logging
from msquant_desktop.services.qtlog import install_qt_message_handler
from PySide6.QtCore import QCoreApplication, qWarning
setup_logging(Path(sys.argv[1]), console=False)
app = QCoreApplication([])
install_qt_message_handler()
qWarning("a warning from Qt itself")
"""


def test_qt_messages_are_routed_into_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "app.log"
    proc = subprocess.run(
        [sys.executable, "-c", QT_TO_LOG, str(log_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    text = log_file.read_text()
    assert "WARNING qt: a warning from Qt itself" in text


def test_unhandled_exception_shows_a_dialog_with_the_log_path(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.ui.excepthook import install_excepthook

    seen: dict[str, str] = {}

    def read_and_close() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen["text"] = box.text()
        seen["informative"] = box.informativeText()
        seen["details"] = box.detailedText()
        box.close()

    old = sys.excepthook
    install_excepthook(str(tmp_path / "the.log"))
    try:
        QTimer.singleShot(50, read_and_close)
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    finally:
        sys.excepthook = old
    assert seen["text"] == "boom in a slot"
    assert str(tmp_path / "the.log") in seen["informative"]
    assert "RuntimeError" in seen["details"]
