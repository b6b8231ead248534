"""A project's jobs (local and SLURM) with status; details of the selected one; Re-run with changes."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobRecord

COLUMNS = ("Job", "Created", "Target", "Status", "Commit", "Overrides")


Facts = Callable[[JobRecord], dict[str, Any]]
"""A job's launch facts (command, commit, overrides, composed config), local or SLURM."""


def describe_job(job: JobRecord, meta: dict[str, Any]) -> str:
    """The details pane: the exact command, commit and composed config stored with the job."""
    lines = [
        f"Job #{job.id}: {job.spec.name}",
        f"Status: {job.state.value}" + (f" ({job.outcome.describe()})" if job.outcome else ""),
        f"Target: {job.spec.target.value}" + (f" on {job.spec.cluster}" if job.spec.cluster else ""),
        f"Commit: {meta.get('commit', '?')} {meta.get('commit_subject', '')}".rstrip(),
        f"Command: {shlex.join(meta.get('command', job.spec.argv))}",
        f"Overrides: {shlex.join(meta.get('overrides', [])) or '(none)'}",
    ]
    if meta.get("python"):
        lines.append(f"Python: {meta['python']}")
    sweep = meta.get("sweep")
    if isinstance(sweep, dict):
        if sweep.get("mode") == "array":
            lines.append(
                f"Sweep {sweep.get('id')}: one SLURM job array of {sweep.get('size')} tasks "
                f"({shlex.join(sweep.get('overrides', []))})"
            )
            for member in meta.get("members") or []:
                lines.append(f"  task {member.get('index')}: {shlex.join(member.get('overrides', []))}")
        elif sweep.get("mode") == "members":
            lines.append(
                f"Sweep {sweep.get('id')}: job {int(sweep.get('index', 0)) + 1} of {sweep.get('size')} "
                f"({shlex.join(sweep.get('overrides', []))})"
            )
        else:
            lines.append(f"Sweep {sweep.get('id')}: one --multirun job ({sweep.get('sweeper')})")
    if meta.get("patch"):
        lines.append(f"Uncommitted changes applied from: {meta['patch']}")
    if job.run_dir:
        lines.append(f"Run folder: {job.run_dir}")
    if job.slurm_job_id:
        lines.append(f"SLURM job: {job.slurm_job_id}")
    config = meta.get("composed_config")
    lines += (
        ["", "Composed config (from the commit that ran):", config.rstrip()]
        if config
        else ["", "(no Hydra config)"]
    )
    return "\n".join(lines)


class ProjectHistory(QWidget):
    sig_rerun_requested = Signal(object)
    """JobRecord: fill the launch form from this job."""
    sig_show_job_requested = Signal(int)
    """Job id: show it in the Jobs tab (its live log and full details)."""

    def __init__(self, facts: Facts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._facts = facts
        self._jobs: list[JobRecord] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setPlaceholderText("Select a job to see its exact command, commit and composed config.")
        self.rerun_button = QPushButton("Re-run with changes…")
        self.rerun_button.setEnabled(False)
        self.rerun_button.clicked.connect(self._on_rerun)
        self.show_job_button = QPushButton("Show in Jobs tab")
        self.show_job_button.setEnabled(False)
        self.show_job_button.clicked.connect(self._on_show_job)
        self.open_run_button = QPushButton("Open run folder")
        self.open_run_button.setEnabled(False)
        self.open_run_button.clicked.connect(self._on_open_run_folder)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.doubleClicked.connect(self._on_rerun)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.show_job_button)
        buttons.addWidget(self.open_run_button)
        buttons.addWidget(self.rerun_button)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)

    def set_jobs(self, jobs: list[JobRecord]) -> None:
        selected = self.selected_job()
        self._jobs = list(jobs)
        self.table.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            meta = self._facts(job)
            values = (
                f"#{job.id}",
                job.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                job.spec.target.value + (f" ({job.spec.cluster})" if job.spec.cluster else ""),
                job.state.value,
                str(meta.get("commit", ""))[:8],
                shlex.join(meta.get("overrides", [])),
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        if selected is not None:
            for row, job in enumerate(jobs):
                if job.id == selected.id:
                    self.table.selectRow(row)
        self._on_selection()

    def selected_job(self) -> JobRecord | None:
        rows = self.table.selectionModel().selectedRows()
        return self._jobs[rows[0].row()] if rows and rows[0].row() < len(self._jobs) else None

    def _on_selection(self) -> None:
        job = self.selected_job()
        self.rerun_button.setEnabled(job is not None)
        self.open_run_button.setEnabled(bool(job and job.run_dir))
        self.show_job_button.setEnabled(job is not None)
        self.details.setPlainText(describe_job(job, self._facts(job)) if job else "")

    def _on_rerun(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.sig_rerun_requested.emit(job)

    def _on_open_run_folder(self) -> None:
        job = self.selected_job()
        if job is not None and job.run_dir:
            QDesktopServices.openUrl(QUrl.fromLocalFile(job.run_dir))

    def _on_show_job(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.sig_show_job_requested.emit(job.id)
