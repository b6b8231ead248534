""" "New command job…": any command line as a supervised local job (parsed, never run by a shell)."""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobSpec, name_from_command
from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.ui.colors import ERROR, text_style


class NewCommandDialog(QDialog):
    def __init__(self, gpu_count: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New command job")
        self.setMinimumWidth(560)
        self.name = QLineEdit()
        self.name.setPlaceholderText("(the command)")
        self.command = QLineEdit()
        self.command.setPlaceholderText(
            "python train.py --epochs 3   (quoted like a shell, but no shell runs it)"
        )
        self.cwd = QLineEdit()
        self.cwd.setPlaceholderText(f"(the job's run folder; {RUN_DIR_PLACEHOLDER} works in the command too)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        cwd_row = QHBoxLayout()
        cwd_row.addWidget(self.cwd, 1)
        cwd_row.addWidget(browse)
        self.gpus = QSpinBox()
        self.gpus.setRange(0, max(0, gpu_count))
        self.gpus.setSuffix(" GPU(s)")
        self.gpus.setToolTip(
            f"This machine has {gpu_count} GPU(s); the job gets free ones in CUDA_VISIBLE_DEVICES"
        )
        self.env = QPlainTextEdit()
        self.env.setPlaceholderText("KEY=VALUE, one per line")
        self.env.setFixedHeight(72)
        self.problem = QLabel("")
        self.problem.setStyleSheet(text_style(ERROR, self.palette()))
        self.problem.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Command", self.command)
        form.addRow("Name", self.name)
        form.addRow("Working dir", cwd_row)
        form.addRow("GPUs", self.gpus)
        form.addRow("Environment", self.env)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.command, self.cwd, self.name):
            edit.textChanged.connect(self._validate)
        self.env.textChanged.connect(self._validate)
        self._validate()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Working directory", self.cwd.text() or str(Path.home())
        )
        if folder:
            self.cwd.setText(folder)

    def spec(self) -> JobSpec:
        """The job described by the form; ValueError naming the problem when it is not valid."""
        text = self.command.text().strip()
        if not text:
            raise ValueError("Enter the command to run.")
        try:
            argv = tuple(shlex.split(text))
        except ValueError as exc:
            raise ValueError(f"The command cannot be parsed: {exc} (check the quotes).") from exc
        cwd = self.cwd.text().strip() or None
        if cwd and RUN_DIR_PLACEHOLDER not in cwd and not Path(cwd).expanduser().is_dir():
            raise ValueError(f"The working directory {cwd} does not exist.")
        env: list[tuple[str, str]] = []
        for number, line in enumerate(self.env.toPlainText().splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip() or " " in key.strip():
                raise ValueError(f"Environment line {number} must look like KEY=VALUE.")
            env.append((key.strip(), value))
        return JobSpec(
            name=self.name.text().strip() or name_from_command(text),
            argv=argv,
            cwd=str(Path(cwd).expanduser()) if cwd and RUN_DIR_PLACEHOLDER not in cwd else cwd,
            env=tuple(env),
            gpus=self.gpus.value(),
        )

    def _validate(self) -> bool:
        try:
            self.spec()
        except ValueError as exc:
            message = str(exc)
            # An empty form is not an error yet; just keep Run disabled.
            self.problem.setText("" if not self.command.text().strip() else message)
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return False
        self.problem.setText("")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        return True

    def _accept(self) -> None:
        if self._validate():
            self.accept()
