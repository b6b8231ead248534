"""The details pane of one job: header with progress, live log, spec and history, result.

The record is read once per change of the shown job (`sig_record_shown` hands it on, so the tab's
actions need no read of their own); progress comes from `sig_job_progress` events alone."""

from __future__ import annotations

import html
import json
import shlex
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.cuda_devices import device_labels
from msquant_desktop.domain.jobs import JobRecord
from msquant_desktop.services.job_service import JobService
from msquant_desktop.ui.colors import readable
from msquant_desktop.ui.jobs.log_view import LogView
from msquant_desktop.ui.jobs.table_model import INHERITED_DEVICES, STATE_COLORS, progress_text, state_label


class _OutOfLayout(QWidget):
    """Holds a label whose text changes often (a job's state) outside any layout.

    A label's new text re-lays out every ancestor up to the window, and each QTabWidget on the way
    repaints itself whole on that (the Jobs tab: 10-30 ms for one state change).  A child of a widget
    without a layout stops that chain: only the label repaints.
    """

    def __init__(self, label: QLabel) -> None:
        super().__init__()
        self.label = label
        label.setParent(self)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(100, self.label.sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.label.setGeometry(self.rect())


class JobDetails(QWidget):
    sig_record_shown = Signal(object)
    """The shown job's `JobRecord` whenever it is (re)read and differs, or None when none is shown."""

    def __init__(
        self, service: JobService, max_log_lines: int = 10_000, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._service = service
        self.job_id: int | None = None
        self._shown: JobRecord | None = None
        self._pages_for: JobRecord | None = None  # the record the Details and Result pages show
        self.title = QLabel("Select a job to see its log")
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)

        self.log_view = LogView(max_log_lines)
        self.info = QWidget()
        self.info_form = QFormLayout(self.info)
        self.spec_text = QPlainTextEdit()
        self.spec_text.setReadOnly(True)
        self.history_text = QPlainTextEdit()
        self.history_text.setReadOnly(True)
        info_page = QWidget()
        info_layout = QVBoxLayout(info_page)
        info_layout.addWidget(self.info)
        info_layout.addWidget(QLabel("Spec"))
        info_layout.addWidget(self.spec_text, 1)
        info_layout.addWidget(QLabel("History"))
        info_layout.addWidget(self.history_text, 1)

        self.result_table = QTableWidget(0, 2)
        self.result_table.setHorizontalHeaderLabels(["Key", "Value"])
        self.result_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.result_table.verticalHeader().setVisible(False)
        self.result_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.result_empty = QLabel('No result yet: a job reports one with a {"type": "result", …} event.')
        self.result_empty.setWordWrap(True)
        result_page = QWidget()
        result_layout = QVBoxLayout(result_page)
        result_layout.addWidget(self.result_empty)
        result_layout.addWidget(self.result_table, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(info_page, "Details")
        self.tabs.addTab(result_page, "Result")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(_OutOfLayout(self.title))
        layout.addWidget(self.progress)
        layout.addWidget(self.tabs, 1)

        self.tabs.currentChanged.connect(lambda _index: self._fill_pages())
        service.sig_log_text.connect(self._on_log_text)
        service.sig_job_changed.connect(self._on_job_changed)
        service.sig_job_progress.connect(self._on_progress)
        service.sig_log_skipped.connect(self._on_log_skipped)
        service.sig_job_removed.connect(self._on_job_removed)

    def show_job(self, job_id: int | None) -> None:
        if job_id == self.job_id:
            return
        self.job_id = job_id
        self._shown = None
        self._pages_for = None
        self.log_view.clear()
        if job_id is None:
            self.title.setText("Select a job to see its log")
            self.progress.setVisible(False)
            self._show_result({})
            self.sig_record_shown.emit(None)
            return
        lines, hidden = self._service.log_tail(job_id, self.log_view.max_lines())
        self.log_view.show_hidden(hidden)
        run: list[str] = []
        run_err = False
        for text, is_err in lines:
            if run and is_err != run_err:
                self.log_view.append("\n".join(run) + "\n", run_err)
                run = []
            run_err = is_err
            run.append(text)
        if run:
            self.log_view.append("\n".join(run) + "\n", run_err)
        self.log_view.flush()
        self._refresh()

    def _on_log_text(self, job_id: int, text: str, is_err: bool) -> None:
        if job_id == self.job_id:
            self.log_view.append(text, is_err)

    def _on_log_skipped(self, job_id: int, lines: int) -> None:
        """The supervisor left lines out of our stream while the app was busy: say where."""
        if job_id == self.job_id:
            self.log_view.note_skipped(lines)

    def _on_job_changed(self, job_id: int) -> None:
        if job_id == self.job_id:
            self._refresh()

    def _on_progress(self, job_id: int, event: dict[str, Any]) -> None:
        if job_id == self.job_id and self._shown is not None and self._shown.state.is_active:
            self._show_progress(event)

    def _on_job_removed(self, job_id: int) -> None:
        if job_id == self.job_id:
            self.show_job(None)

    def _refresh(self) -> None:
        if self.job_id is None:
            return
        try:
            record = self._service.get(self.job_id)
        except KeyError:
            self.show_job(None)
            return
        if record == self._shown:
            return
        self._shown = record
        color = readable(QColor(STATE_COLORS[record.state]), self.palette()).name()
        self.title.setText(
            f"#{record.id} {html.escape(record.spec.name)} — <span style='color:{color}'>{state_label(record.state)}</span>"
        )
        # The engine's last event (kept in memory) covers events sent before this job was shown.
        self._show_progress(self._service.progress(record.id) if record.state.is_active else None)
        self._fill_pages()
        self.sig_record_shown.emit(record)

    def _show_progress(self, event: dict[str, Any] | None) -> None:
        self.progress.setVisible(bool(event))
        if not event:
            return
        fraction = event.get("fraction")
        if isinstance(fraction, int | float):
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(max(0.0, min(1.0, float(fraction))) * 1000))
        else:
            self.progress.setRange(0, 0)
        self.progress.setFormat(progress_text(event) or "working…")

    def _fill_pages(self) -> None:
        """Fill the Details and Result pages, only while one of them is shown: rebuilding a hidden
        form on every state change of the job in view costs a relayout of the tab for nothing."""
        record = self._shown
        if record is None or record is self._pages_for or self.tabs.currentWidget() is self.log_view:
            return
        self._pages_for = record
        self._fill_info(record)
        self._show_result(record.result)

    def _fill_info(self, r: JobRecord) -> None:
        while self.info_form.rowCount():
            self.info_form.removeRow(0)

        def row(label: str, value: str) -> None:
            field = QLabel(value)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            field.setWordWrap(True)
            self.info_form.addRow(label, field)

        row("State", state_label(r.state) + (f" — {r.outcome.describe()}" if r.outcome else ""))
        row("Command", shlex.join(r.spec.argv))
        row("Working dir", r.spec.cwd or "(the run folder)")
        row("Run folder", r.run_dir or "(made when it starts)")
        gpus = (
            ",".join(device_labels(r.gpu_indices, INHERITED_DEVICES))
            if r.gpu_indices
            else ("none" if not r.spec.gpus else f"{r.spec.gpus} requested")
        )
        row("GPUs", gpus)
        row(
            "Target",
            r.spec.target.value
            + (f" ({r.spec.cluster}, SLURM id {r.slurm_job_id})" if r.spec.cluster else ""),
        )
        if r.spec.meta.get("script_edited"):
            row("Script", "edited in the preview before sending:\n" + str(r.spec.meta.get("script_diff", "")))
        self.spec_text.setPlainText(json.dumps(r.spec.to_dict(), indent=2))
        lines = [
            f"{t.at.astimezone().strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}  {t.new.value:<16} {t.note}"
            for t in self._service.transitions(r.id)
        ]
        self.history_text.setPlainText("\n".join(lines))

    def _show_result(self, result: dict[str, Any]) -> None:
        items = [(k, v) for k, v in result.items() if k != "type"]
        self.result_table.setRowCount(len(items))
        for i, (key, value) in enumerate(items):
            text = value if isinstance(value, str) else json.dumps(value)
            self.result_table.setItem(i, 0, QTableWidgetItem(str(key)))
            self.result_table.setItem(i, 1, QTableWidgetItem(text))
        self.result_table.setVisible(bool(items))
        self.result_empty.setVisible(not items)
