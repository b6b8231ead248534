"""Clusters tab (issue 6 fills it): SLURM clusters over SSH."""

from __future__ import annotations

from PySide6.QtWidgets import QStackedWidget, QVBoxLayout, QWidget

from msquant_desktop.ui.empty_state import EmptyState


class ClustersTab(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = EmptyState(
            "No clusters yet",
            "Add a SLURM cluster you reach over SSH to see its free GPUs, submit jobs at a pinned "
            "commit and follow them to their true final state.",
            [],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
