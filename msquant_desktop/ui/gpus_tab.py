"""GPUs tab: live plots of each GPU and the host, GPU and process tables, and the Doctor panel.

Talks only to the GpuService.  Plots and tables are redrawn only while the tab is visible; when it
becomes visible again it catches up from the history at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.gpu import GpuReading
from msquant_desktop.services.gpu_service import GpuService
from msquant_desktop.ui.gpus.doctor_panel import DoctorPanel
from msquant_desktop.ui.gpus.plots import GpuPlots
from msquant_desktop.ui.gpus.tables import GpuTableModel, JobProcessModel, ProcessTableModel, ProcessTarget

WINDOWS = (("1 min", 60), ("10 min", 600), ("1 h", 3600))


def ask_to_terminate(parent: QWidget, question: str) -> bool:
    answer = QMessageBox.question(parent, "Terminate process?", question)
    return answer == QMessageBox.StandardButton.Yes


def _table(model: GpuTableModel | ProcessTableModel | JobProcessModel) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    view.setAlternatingRowColors(True)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return view


class GpusTab(QWidget):
    sig_job_activated = Signal(int)
    """The user double-clicked a process that belongs to one of our jobs: show that job."""

    def __init__(
        self,
        service: GpuService,
        parent: QWidget | None = None,
        grace_s: Callable[[], float] = lambda: 5.0,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self.grace_s = grace_s
        """The cancel grace (Settings): "Terminate…" waits as long as a job's cancel does."""
        self.confirm = ask_to_terminate
        self._shown = False
        self._gpu_count = -1
        self._last_redraw = float("-inf")

        self.status = QLabel("Waiting for the first sample…")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.selector = QComboBox()
        self.selector.setToolTip("The GPU whose utilization, memory, temperature and power are plotted")
        self.selector.setMinimumContentsLength(24)
        self.window_choice = QComboBox()
        for text, seconds in WINDOWS:
            self.window_choice.addItem(text, seconds)
        self.window_choice.setToolTip("How much history the plots show")

        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        self.selector_label = QLabel("GPU:")
        bar.addWidget(self.selector_label)
        bar.addWidget(self.selector)
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self.window_choice)

        self.plots = GpuPlots()
        self.gpu_model = GpuTableModel(self)
        self.process_model = ProcessTableModel(self)
        self.gpu_table = _table(self.gpu_model)
        self.process_table = _table(self.process_model)
        self.process_table.setToolTip("Double-click a process of one of your jobs to open the job")
        self.job_process_model = JobProcessModel(self)
        self.job_process_table = _table(self.job_process_model)
        self.job_process_table.setToolTip(
            "Each running job's processes: its supervisor, the job, its children"
        )
        self.doctor = DoctorPanel(service)
        self.details = QTabWidget()
        self.details.setDocumentMode(True)
        self.details.addTab(self.gpu_table, "GPUs")
        self.details.addTab(self.process_table, "Processes")
        self.details.addTab(self.job_process_table, "Job processes")
        self.details.addTab(self.doctor, "Doctor")
        self.terminate_button = QPushButton("Terminate…")
        self.terminate_button.setToolTip(
            "End the selected process and its children as Cancel does: SIGTERM, a grace period, SIGKILL"
            " (your own processes only)"
        )
        self.terminate_button.clicked.connect(self.terminate_selected)
        self.terminate_status = QLabel()
        self.terminate_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setCornerWidget(self.terminate_button)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.terminate_status)

        self._set_has_gpus(False)
        self.selector.currentIndexChanged.connect(self._redraw)
        self.window_choice.currentIndexChanged.connect(self._redraw)
        self.process_table.doubleClicked.connect(self._on_process_double_clicked)
        self.job_process_table.doubleClicked.connect(self._on_process_double_clicked)
        for view in (self.process_table, self.job_process_table):
            view.selectionModel().selectionChanged.connect(self._update_terminate)
        self.details.currentChanged.connect(self._update_terminate)
        service.sig_terminated.connect(self._on_terminated)
        self._update_terminate()
        service.sig_reading.connect(self._on_reading)

    # -- visibility: no redraws while hidden ------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # Qt override
        super().showEvent(event)
        self._shown = True
        if self._service.latest is not None:
            self._take(self._service.latest, redraw_plots=True)  # catch up at once, due or not

    def hideEvent(self, event: QHideEvent) -> None:  # Qt override
        super().hideEvent(event)
        self._shown = False

    @property
    def redraws_paused(self) -> bool:
        return not self._shown

    # -- readings ---------------------------------------------------------------------------------------
    @Slot(object)
    def _on_reading(self, reading: GpuReading) -> None:
        if self._shown:
            self._take(reading, redraw_plots=self._plots_due())

    def _take(self, reading: GpuReading, redraw_plots: bool) -> None:
        self._update_header(reading)
        self.gpu_model.update(reading)
        self.process_model.update(reading)
        self.job_process_model.update(reading)
        self._update_terminate()
        if redraw_plots:
            self._redraw()

    def _plots_due(self) -> bool:
        """Has time moved the curves by a whole pixel since the last redraw?

        An hour in a ~600 px chart is ~6 s per pixel: redrawing on every 1 s sample would repaint six
        charts for motion nobody can see.  Nothing is lost by waiting: the next redraw draws every
        sample from the history.  A new window or GPU choice redraws at once (see `_redraw`).
        """
        seconds_per_pixel = float(self.window_choice.currentData()) / max(1, self.plots.chart_width_px())
        return time.monotonic() - self._last_redraw >= seconds_per_pixel * 0.95

    def _update_header(self, reading: GpuReading) -> None:
        if reading.unavailable:
            self.status.setText(f"<b>{reading.unavailable}</b>. The host's CPU and RAM are still plotted.")
        else:
            lost = sum(1 for g in reading.gpus if g.error)
            text = f"{len(reading.gpus)} NVIDIA GPU(s), driver {reading.driver_version or '—'}"
            self.status.setText(text + (f" — <b>{lost} not answering</b>" if lost else ""))
        if len(reading.gpus) != self._gpu_count:
            self._gpu_count = len(reading.gpus)
            current = max(0, self.selector.currentIndex())
            self.selector.blockSignals(True)
            self.selector.clear()
            for gpu in reading.gpus:
                self.selector.addItem(f"{gpu.index}: {gpu.name}", gpu.index)
            self.selector.setCurrentIndex(min(current, len(reading.gpus) - 1))
            self.selector.blockSignals(False)
            self._set_has_gpus(bool(reading.gpus))

    def _set_has_gpus(self, has_gpus: bool) -> None:
        self.plots.set_has_gpus(has_gpus)
        self.selector.setVisible(has_gpus)
        self.selector_label.setVisible(has_gpus)

    @Slot()
    def _redraw(self) -> None:
        if not self._shown:
            return
        self._last_redraw = time.monotonic()
        latest = self._service.latest
        selected = max(0, self.selector.currentIndex())
        limit = None
        if latest is not None and selected < len(latest.gpus):
            limit = latest.gpus[selected].power_limit_w
        self.plots.refresh(
            self._service.history,
            selected,
            float(self.window_choice.currentData()),
            self._service.interval_s,
            limit,
        )

    @Slot(QModelIndex)
    def _on_process_double_clicked(self, index: QModelIndex) -> None:
        model = index.model()
        job_id = model.job_id(index.row()) if isinstance(model, ProcessTableModel | JobProcessModel) else None
        if job_id is not None:
            self.sig_job_activated.emit(job_id)

    # -- terminate --------------------------------------------------------------------------------------
    def selected_target(self) -> ProcessTarget | None:
        """The process "Terminate…" would end: the selected row of the shown process table, if ours."""
        view = self.details.currentWidget()
        if view is self.process_table:
            model: ProcessTableModel | JobProcessModel = self.process_model
        elif view is self.job_process_table:
            model = self.job_process_model
        else:
            return None
        rows = view.selectionModel().selectedRows()
        return model.target(rows[0].row()) if rows and rows[0].row() < model.rowCount() else None

    @Slot()
    def _update_terminate(self, *_args: object) -> None:
        self.terminate_button.setEnabled(self.selected_target() is not None)

    @Slot()
    def terminate_selected(self) -> None:
        target = self.selected_target()
        if target is None:
            return
        grace = self.grace_s()
        question = (
            f"End process {target.pid} and all its children?\n\n{target.command}\n\n"
            f"They get SIGTERM, then SIGKILL after {grace:g} s if they are still running."
        )
        if not self.confirm(self, question):
            return
        self.terminate_status.setText(f"Ending process {target.pid}…")
        self._service.terminate(target.pid, target.start_time, grace)

    @Slot(int, str)
    def _on_terminated(self, _pid: int, text: str) -> None:
        self.terminate_status.setText(text)
