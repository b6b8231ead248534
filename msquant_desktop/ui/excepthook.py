"""Unhandled exceptions are logged and shown in a dialog that names the log file, never swallowed.

Faults of the world rather than of the code (a full disk, a damaged or read-only store) are not
bugs: `known_problem` turns them into one line for the user, which `show_problem` puts in the
window; only what it does not recognise gets the dialog with a traceback."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox

log = logging.getLogger(__name__)


ProblemText = Callable[[BaseException], "str | None"]
"""One line for a user when the exception is a known fault of the world (disk, store), else None."""


def install_excepthook(
    log_file: str,
    known_problem: ProblemText | None = None,
    show_problem: Callable[[str], None] | None = None,
) -> None:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        problem = known_problem(exc) if known_problem is not None else None
        if problem is not None and show_problem is not None:
            log.error("%s", problem, exc_info=(exc_type, exc, tb))
            show_problem(problem)
            return
        log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
        if QApplication.instance() is None:
            sys.__excepthook__(exc_type, exc, tb)
            return
        box = QMessageBox(
            QMessageBox.Icon.Critical, "MSQuant Desktop: unexpected error", str(exc) or exc_type.__name__
        )
        box.setInformativeText(f"The details were written to the log file:\n{log_file}")
        box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
        box.exec()

    sys.excepthook = hook
