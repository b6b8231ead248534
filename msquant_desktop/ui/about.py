"""The About box."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from msquant_desktop import APP_NAME, __version__


def about_text(log_file: str) -> str:
    return (
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>LLM quantization jobs, local GPUs and SLURM clusters in one window.</p>"
        f"<p>Python {platform.python_version()} · Qt {qVersion()} · PySide6 {pyside_version}</p>"
        f"<p>Log file: <code>{log_file}</code></p>"
    )


def show_about(parent: QWidget, log_file: str) -> None:
    QMessageBox.about(parent, f"About {APP_NAME}", about_text(log_file))
