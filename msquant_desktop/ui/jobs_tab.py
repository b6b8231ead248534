"""Jobs tab (issue 3 fills it): supervised local jobs and SLURM jobs in one table."""

from __future__ import annotations

from PySide6.QtWidgets import QStackedWidget, QVBoxLayout, QWidget

from msquant_desktop.ui.empty_state import EmptyState


class JobsTab(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = EmptyState(
            "No jobs yet",
            "Run a quantization or any command as a supervised job: live logs, a queue, and a cancel "
            "that stops the whole process tree.",
            [],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
