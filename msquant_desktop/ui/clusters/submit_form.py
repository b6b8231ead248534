"""The submit form: project repo and commit — or a command only, with files to upload into the job's
folder (its working directory) — command, overrides, resources, sbatch options; preview (editable: an
edited preview is sent as edited, audited and recorded with the job), then send."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from PySide6.QtCore import Signal, SignalInstance
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.ui.colors import ERROR, text_style

REPO_MODE = "Project repository at a commit"
COMMAND_MODE = "Command only (no repository)"


class SubmitForm(QWidget):
    sig_preview = Signal(object)
    """A SlurmSubmission to render for preview."""
    sig_submit = Signal(object)
    """A SlurmSubmission the user wants sent."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cluster = ""
        self.mode = QComboBox()
        self.mode.addItems([REPO_MODE, COMMAND_MODE])
        self.uploads = QListWidget()
        self.uploads.setToolTip("copied into the job's folder, where the command runs, before sbatch")
        self.uploads.setMaximumHeight(70)
        self.add_upload_button = QPushButton("Add files…")
        self.remove_upload_button = QPushButton("Remove")
        self.add_upload_button.clicked.connect(self._pick_uploads)
        self.remove_upload_button.clicked.connect(self._remove_uploads)
        upload_buttons = QVBoxLayout()
        upload_buttons.addWidget(self.add_upload_button)
        upload_buttons.addWidget(self.remove_upload_button)
        upload_buttons.addStretch(1)
        self.uploads_box = QWidget()
        uploads_row = QHBoxLayout(self.uploads_box)
        uploads_row.setContentsMargins(0, 0, 0, 0)
        uploads_row.addWidget(self.uploads, 1)
        uploads_row.addLayout(upload_buttons)
        self.repo_url = QLineEdit()
        self.repo_url.setPlaceholderText("git URL the cluster can clone")
        self.commit = QLineEdit()
        self.commit.setPlaceholderText("full commit hash (pushed to that remote)")
        self.command = QLineEdit("python train.py")
        self.overrides = QPlainTextEdit()
        self.overrides.setPlaceholderText("one Hydra override per line, sent verbatim")
        self.overrides.setMaximumHeight(70)
        self.partition = QComboBox()
        self.partition.setEditable(True)
        self.gpu_type = QComboBox()
        self.gpu_type.setEditable(True)
        self.gpus = QSpinBox()
        self.gpus.setRange(0, 64)
        self.cpus = QSpinBox()
        self.cpus.setRange(1, 512)
        self.memory = QLineEdit()
        self.memory.setPlaceholderText("e.g. 32G")
        self.time_limit = QLineEdit()
        self.time_limit.setPlaceholderText("e.g. 04:00:00")
        self.array = QLineEdit()
        self.array.setPlaceholderText("optional: task indices, e.g. 0-9 or 0-99%4")
        self.job_name = QLineEdit("train")
        self.account = QLineEdit()
        self.account.setPlaceholderText("optional: --account (else the cluster profile's)")
        self.qos = QLineEdit()
        self.qos.setPlaceholderText("optional: --qos (else the cluster profile's)")
        self.constraint = QLineEdit()
        self.constraint.setPlaceholderText("optional: --constraint, e.g. a100&ib")
        self.sbatch_lines = QPlainTextEdit()
        self.sbatch_lines.setPlaceholderText("optional: one '#SBATCH --opt=value' line per line")
        self.sbatch_lines.setMaximumHeight(60)
        form = QFormLayout()
        self._form = form
        for label, widget in (
            ("Job", self.mode),
            ("Repository", self.repo_url),
            ("Commit", self.commit),
            ("Files to upload", self.uploads_box),
            ("Command", self.command),
            ("Overrides", self.overrides),
            ("Partition", self.partition),
            ("GPU type", self.gpu_type),
            ("GPUs", self.gpus),
            ("CPUs", self.cpus),
            ("Memory", self.memory),
            ("Time limit", self.time_limit),
            ("Array", self.array),
            ("Job name", self.job_name),
            ("Account", self.account),
            ("QoS", self.qos),
            ("Constraint", self.constraint),
            ("Extra #SBATCH", self.sbatch_lines),
        ):
            form.addRow(label, widget)
        self.preview_button = QPushButton("Preview script")
        self.submit_button = QPushButton("Submit")
        self.preview_button.clicked.connect(lambda: self._emit(self.sig_preview))
        self.submit_button.clicked.connect(lambda: self._emit(self.sig_submit))
        self.preview = QPlainTextEdit()
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setPlaceholderText(
            "The rendered sbatch script appears here before anything is sent. You may edit it: "
            "the edited script is checked, sent as it is and recorded with the job."
        )
        self._rendered: tuple[SlurmSubmission, str] | None = None  # the last preview shown, unedited
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(text_style(ERROR, self.palette()))
        self.problem.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.submit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.problem)
        layout.addWidget(self.preview, 1)
        self.mode.currentTextChanged.connect(self._on_mode_changed)
        self._on_mode_changed()

    @property
    def no_repo(self) -> bool:
        return self.mode.currentText() == COMMAND_MODE

    def _on_mode_changed(self) -> None:
        """A command-only job has no repository, commit or Hydra overrides; it has files to upload."""
        for widget in (self.repo_url, self.commit, self.overrides):
            self._form.setRowVisible(widget, not self.no_repo)
        self._form.setRowVisible(self.uploads_box, self.no_repo)
        self.command.setPlaceholderText(
            "runs in the job's folder, beside the uploaded files" if self.no_repo else "runs in the clone"
        )

    def _pick_uploads(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Files to upload with the job")
        self.add_uploads(paths)

    def add_uploads(self, paths: list[str]) -> None:
        """Files to copy into the job's folder under their own names (a file already listed is kept once)."""
        listed = set(self.upload_paths())
        for path in paths:
            if path and path not in listed:
                self.uploads.addItem(path)
                listed.add(path)

    def _remove_uploads(self) -> None:
        for item in self.uploads.selectedItems():
            self.uploads.takeItem(self.uploads.row(item))

    def upload_paths(self) -> list[str]:
        return [self.uploads.item(i).text() for i in range(self.uploads.count())]

    def _emit(self, signal: SignalInstance) -> None:
        try:
            submission = self.submission()
            if signal is self.sig_submit:
                submission = self._with_edit(submission)
        except ValueError as exc:
            self.show_problem(str(exc))
            return
        signal.emit(submission)

    def _with_edit(self, submission: SlurmSubmission) -> SlurmSubmission:
        """The submission with the preview's text when the user edited the preview shown for exactly
        this form; ValueError when the form changed after its preview was edited (the edit would be
        lost or no longer match)."""
        if self._rendered is None:
            return submission
        shown_for, text = self._rendered
        edited = self.preview.toPlainText()
        if edited == text:
            return submission
        if shown_for != submission:
            raise ValueError(
                "the form changed after the preview was edited: preview again (the edit is lost) or undo the change"
            )
        return dataclasses.replace(submission, edited_script=edited)

    def show_preview(self, submission: SlurmSubmission, script: str) -> None:
        """The rendered script of `submission`, editable until it is sent."""
        self.problem.setVisible(False)
        self.preview.setPlainText(script)
        self._rendered = (submission, self.preview.toPlainText())

    def show_problem(self, message: str) -> None:
        """Why nothing was sent, in the preview pane; an edited preview is kept (the reason goes to the
        line above it) so the user can fix the edit."""
        if self._rendered is not None and self.preview.toPlainText() != self._rendered[1]:
            self.problem.setText(f"Not sent: {message}")
            self.problem.setVisible(True)
            return
        self._rendered = None
        self.problem.setVisible(False)
        self.preview.setPlainText(f"Not sent: {message}")

    def set_profile(self, profile: ClusterProfile | None) -> None:
        self._cluster = profile.name if profile else ""
        for combo, values in (
            (self.partition, profile.allowed_partitions if profile else ()),
            (self.gpu_type, profile.allowed_gpu_types if profile else ()),
        ):
            combo.clear()
            combo.addItems(list(values))

    def submission(self) -> SlurmSubmission:
        """The form as a submission; raises ValueError naming the field that is wrong."""
        try:
            command = tuple(shlex.split(self.command.text()))
        except ValueError as exc:
            raise ValueError(f"command: {exc}") from exc
        overrides = tuple(line for line in self.overrides.toPlainText().splitlines() if line.strip())
        no_repo = self.no_repo
        return SlurmSubmission(
            cluster=self._cluster,
            job_name=self.job_name.text().strip(),
            repo_url="" if no_repo else self.repo_url.text().strip(),
            commit="" if no_repo else self.commit.text().strip(),
            command=command,
            overrides=() if no_repo else overrides,
            no_repo=no_repo,
            uploads=tuple((path, Path(path).name) for path in self.upload_paths()) if no_repo else (),
            partition=self.partition.currentText().strip() or None,
            gpu_type=self.gpu_type.currentText().strip() or None,
            gpus=self.gpus.value(),
            cpus=self.cpus.value(),
            memory=self.memory.text().strip() or None,
            time_limit=self.time_limit.text().strip() or None,
            array=self.array.text().strip() or None,
            account=self.account.text().strip() or None,
            qos=self.qos.text().strip() or None,
            constraint=self.constraint.text().strip() or None,
            sbatch_lines=tuple(line for line in self.sbatch_lines.toPlainText().splitlines() if line.strip()),
        )
