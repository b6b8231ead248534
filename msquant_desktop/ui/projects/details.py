"""What git knows about a project: path, remotes, branch, HEAD, dirty files, ahead/behind, last job."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from msquant_desktop.domain.jobs import JobRecord
from msquant_desktop.domain.projects import Project, RepoStatus
from msquant_desktop.ui.colors import ERROR, text_style


def _value_label() -> QLabel:
    label = QLabel("—")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


class ProjectDetails(QGroupBox):
    sig_fetch_requested = Signal()
    """The user clicked Fetch."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Project", parent)
        self.name = _value_label()
        self.path = _value_label()
        self.remotes = _value_label()
        self.branch = _value_label()
        self.head = _value_label()
        self.dirty = _value_label()
        self.ahead_behind = _value_label()
        self.last_job = _value_label()
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(text_style(ERROR, self.palette()))
        self.problem.hide()
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for title, label in (
            ("Name", self.name),
            ("Path", self.path),
            ("Remotes", self.remotes),
            ("Branch", self.branch),
            ("HEAD", self.head),
            ("Uncommitted", self.dirty),
            ("Upstream", self.ahead_behind),
            ("Last job", self.last_job),
        ):
            form.addRow(title, label)
        self.fetch_button = QPushButton("Fetch")
        self.fetch_button.setToolTip(
            "git fetch --all: update ahead/behind and what is pushed (uses the network)"
        )
        self.fetch_button.clicked.connect(self.sig_fetch_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fetch_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addLayout(buttons)

    def show_project(self, project: Project) -> None:
        self.setTitle(project.name)
        self.name.setText(project.name)
        self.path.setText(project.path)

    def show_status(self, status: RepoStatus | None) -> None:
        self.problem.hide()
        if status is None:
            for label in (self.remotes, self.branch, self.head, self.dirty, self.ahead_behind):
                label.setText("reading…")
            return
        self.remotes.setText("\n".join(f"{n}  {u}" for n, u in status.remotes) or "no remote")
        self.branch.setText(status.branch or "detached HEAD")
        self.head.setText(status.head_text())
        self.dirty.setText(f"{status.dirty_count} file(s)" if status.dirty_count else "clean")
        self.ahead_behind.setText(status.ahead_behind_text())

    def show_problem(self, message: str) -> None:
        self.problem.setText(message)
        self.problem.show()

    def show_last_job(self, job: JobRecord | None, facts: dict[str, Any] | None = None) -> None:
        if job is None:
            self.last_job.setText("none yet")
            return
        commit = str((facts or {}).get("commit", ""))[:8]
        self.last_job.setText(
            f"#{job.id} {job.state.value.lower()} · {job.spec.target.value} · {commit} · "
            f"{job.created_at.astimezone().strftime('%Y-%m-%d %H:%M')}"
        )
