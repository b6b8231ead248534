"""Quitting with jobs running: leave them running / cancel them / don't quit."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

from msquant_desktop.services.job_service import JobService

LEAVE, CANCEL, STAY = "leave", "cancel", "stay"
Ask = Callable[[int], str]


def ask_with_dialog(parent: QWidget) -> Ask:
    def ask(count: int) -> str:
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Jobs are running")
        plural = "job is" if count == 1 else "jobs are"
        box.setText(f"{count} {plural} still running.")
        box.setInformativeText(
            "Left running, they carry on without the window: their logs and exit status are recorded "
            "in their run folders, and the next start shows them again."
        )
        leave = box.addButton("Leave them running", QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton("Cancel them", QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton("Don't quit", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.exec()
        clicked = box.clickedButton()
        return LEAVE if clicked is leave else CANCEL if clicked is cancel else STAY

    return ask


def make_close_guard(service: JobService, ask: Ask) -> Callable[[], bool]:
    """A MainWindow close guard: True lets the window close."""

    def guard() -> bool:
        active = service.local_active_ids()
        if not active:
            return True
        answer = ask(len(active))
        if answer == STAY:
            return False
        service.shutdown(cancel_running=answer == CANCEL)
        return True

    return guard
