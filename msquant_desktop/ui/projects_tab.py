"""Projects tab (issue 7 fills it): local git repositories jobs are launched from."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox, QStackedWidget, QVBoxLayout, QWidget

from msquant_desktop.ui.empty_state import EmptyState


class ProjectsTab(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = EmptyState(
            "No projects yet",
            "A project is a local git repository you train or evaluate with. "
            "Add one to see its commit, branch and Hydra configs, and launch pinned runs from it.",
            [("Add project…", self.add_project)],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    def add_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a git repository")
        if folder:
            QMessageBox.information(self, "Add project", f"Projects arrive with issue 7: {folder}")
