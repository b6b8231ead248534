"""Settings dialog: one typed form over `Settings`; invalid values are refused with the reason."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from msquant_desktop.domain.settings import SETTING_RANGES, Settings, SettingsError
from msquant_desktop.services.settings_service import SettingsService


def _int_box(name: str, value: int, suffix: str = "") -> QSpinBox:
    low, high = SETTING_RANGES[name]
    return QSpinBox(minimum=int(low), maximum=int(high), value=value, suffix=suffix)


def _float_box(name: str, value: float, suffix: str = "", singleStep: float = 1.0) -> QDoubleSpinBox:
    low, high = SETTING_RANGES[name]
    return QDoubleSpinBox(minimum=low, maximum=high, value=value, suffix=suffix, singleStep=singleStep)


class SettingsDialog(QDialog):
    def __init__(self, service: SettingsService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._service = service
        s = service.settings
        # The spin boxes' bounds are the settings' own (SETTING_RANGES): the dialog cannot produce a
        # value that validation refuses, and a spin box never yields NaN or infinity.
        self.max_jobs = _int_box("max_concurrent_jobs", s.max_concurrent_jobs)
        self.grace = _float_box("cancel_grace_seconds", s.cancel_grace_seconds, suffix=" s")
        self.sample_interval = _float_box(
            "gpu_sample_interval_seconds", s.gpu_sample_interval_seconds, suffix=" s", singleStep=0.25
        )
        self.history = _int_box("gpu_history_seconds", s.gpu_history_seconds, suffix=" s")
        self.log_lines = _int_box("log_view_max_lines", s.log_view_max_lines)
        self.notify = QCheckBox("Notify when a job finishes while the window is inactive")
        self.notify.setChecked(s.notify_when_job_finishes)
        self.inhibit_sleep = QCheckBox("Keep the computer awake while jobs run")
        self.inhibit_sleep.setChecked(s.inhibit_sleep_while_jobs_run)
        self.worker_python = QLineEdit(s.worker_python)
        self.worker_python.setPlaceholderText("this program's Python (when it has llmcompressor)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_python)
        python_row = QHBoxLayout()
        python_row.addWidget(self.worker_python, 1)
        python_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("Jobs running at once:", self.max_jobs)
        form.addRow("Cancel grace period:", self.grace)
        form.addRow("GPU sample interval:", self.sample_interval)
        form.addRow("GPU history kept:", self.history)
        form.addRow("Log lines kept in view:", self.log_lines)
        form.addRow("Quantization worker Python:", python_row)
        form.addRow("", self.notify)
        form.addRow("", self.inhibit_sleep)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.setLayout(form)

    def _browse_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Python with llmcompressor", "/usr/bin")
        if path:
            self.worker_python.setText(path)

    def chosen_settings(self) -> Settings:
        return replace(
            self._service.settings,
            max_concurrent_jobs=self.max_jobs.value(),
            cancel_grace_seconds=self.grace.value(),
            gpu_sample_interval_seconds=self.sample_interval.value(),
            gpu_history_seconds=self.history.value(),
            log_view_max_lines=self.log_lines.value(),
            notify_when_job_finishes=self.notify.isChecked(),
            inhibit_sleep_while_jobs_run=self.inhibit_sleep.isChecked(),
            worker_python=self.worker_python.text().strip(),
        )

    def accept(self) -> None:
        try:
            self._service.update(self.chosen_settings())
        except (SettingsError, OSError) as exc:
            QMessageBox.warning(self, "Settings not saved", str(exc))
            return
        super().accept()
