"""The Jobs table: a QAbstractTableModel over the store (via JobService), a filter proxy, and a
delegate that paints the progress column.  Fine-grained inserts/updates; reset only on a full load.

Progress comes from `sig_job_progress` events, never from the store: each event replaces the row's
(fraction, text) pair and repaints that one cell, so a job printing thousands of progress lines costs
no query and no full-row repaint."""

from __future__ import annotations

import bisect
import os
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from msquant_desktop.domain.cuda_devices import CUDA_VISIBLE_DEVICES, device_labels, short_label
from msquant_desktop.domain.jobs import JobState, JobSummary, JobTarget
from msquant_desktop.services.job_service import JobService
from msquant_desktop.ui.colors import readable

Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    STATUS = 0
    NAME = 1
    KIND = 2
    PROJECT = 3
    STARTED = 4
    DURATION = 5
    GPUS = 6
    PROGRESS = 7
    EXIT = 8


_ACTIVE = frozenset({JobState.STARTING, JobState.RUNNING, JobState.CANCELLING})
HEADERS = ("Status", "Name", "Kind", "Project", "Started", "Duration", "GPUs", "Progress", "Exit")
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 3
"""(fraction 0..1, text) for the progress delegate, or None."""

INHERITED_DEVICES = os.environ.get(CUDA_VISIBLE_DEVICES)
"""The GPUs this app was given (a scheduler's CUDA_VISIBLE_DEVICES), through which its launches map
queue slots to devices (domain/cuda_devices): a job's GPUs are shown by their names there."""


def gpus_text(r: JobSummary) -> str:
    """The GPUs column: the devices a started job holds, by their names here (short UUIDs), else
    how many it asks for."""
    if r.gpu_indices:
        return ",".join(map(short_label, device_labels(r.gpu_indices, INHERITED_DEVICES)))
    return str(r.gpus_requested) if r.gpus_requested else ""


STATE_COLORS = {
    JobState.QUEUED: "#7a7f87",
    JobState.STARTING: "#2f7ed8",
    JobState.RUNNING: "#2f7ed8",
    JobState.CANCELLING: "#d98b1c",
    JobState.COMPLETED: "#2e9e4f",
    JobState.FAILED: "#d0342c",
    JobState.CANCELLED: "#8a6d3b",
    JobState.KILLED: "#d0342c",
    JobState.FAILED_TO_START: "#d0342c",
    JobState.LOST: "#9b59b6",
    JobState.TIMEOUT: "#d0342c",
    JobState.OUT_OF_MEMORY: "#d0342c",
    JobState.NODE_FAIL: "#d0342c",
}
STATE_LABELS = {JobState.CANCELLING: "Cancelling…", JobState.FAILED_TO_START: "Failed to start"}


def state_label(state: JobState) -> str:
    return STATE_LABELS.get(state, state.value.capitalize().replace("_", " "))


_icons: dict[JobState, QIcon] = {}


def state_text_color(state: JobState) -> QColor:
    """The state's colour as text: its hue, readable (4.5:1) on the application's palette."""
    return readable(QColor(STATE_COLORS[state]), QGuiApplication.palette())


def state_icon(state: JobState) -> QIcon:
    """A small filled dot (ring for queued) in the state's colour."""
    if state not in _icons:
        pixmap = QPixmap(12, 12)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor(STATE_COLORS[state])
        painter.setPen(color)
        if state is JobState.QUEUED:
            painter.setBrush(Qt.BrushStyle.NoBrush)
        else:
            painter.setBrush(color)
        painter.drawEllipse(1, 1, 10, 10)
        painter.end()
        _icons[state] = QIcon(pixmap)
    return _icons[state]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


ProgressValue = tuple[float, str]
"""What PROGRESS_ROLE gives: (fraction 0..1, or -1 when unknown; stage · percent · ETA)."""


def progress_value(event: dict[str, Any] | None) -> ProgressValue | None:
    if not event:
        return None
    fraction = event.get("fraction")
    return (float(fraction) if isinstance(fraction, int | float) else -1.0, progress_text(event))


def progress_text(event: dict[str, Any]) -> str:
    parts = []
    if event.get("stage"):
        parts.append(str(event["stage"]))
    fraction = event.get("fraction")
    if isinstance(fraction, int | float):
        parts.append(f"{fraction * 100:.0f}%")
    eta = event.get("eta_s")
    if isinstance(eta, int | float) and eta >= 0:
        parts.append(f"ETA {format_duration(float(eta))}")
    return " · ".join(parts)


class JobsTableModel(QAbstractTableModel):
    sig_summary_changed = Signal(object)
    """A row's `JobSummary` after it was inserted or updated (the store read once, for every view)."""

    def __init__(self, service: JobService, parent: Any = None) -> None:
        super().__init__(parent)
        self._service = service
        self._records: list[JobSummary] = []
        self._neg_ids: list[int] = []  # -id per row (rows are newest first), for bisect
        self.active_ids: set[int] = set()  # rows whose Duration runs with the clock
        self._progress: dict[int, ProgressValue] = {}  # active jobs' last progress, from events
        self._queue_ranks: dict[int, int] | None = None
        """Queued local job id -> its place in the queue (1 = next), made when first shown."""
        service.sig_job_added.connect(self._on_added)
        service.sig_job_changed.connect(self._on_changed)
        service.sig_job_removed.connect(self._on_removed)
        service.sig_job_progress.connect(self._on_progress)

    # -- loading and updates -----------------------------------------------------------------------
    def load(self) -> None:
        self.beginResetModel()
        self._records = self._service.summaries()
        self._neg_ids = [-r.id for r in self._records]
        self.active_ids = set()
        self._progress = {}
        for record in self._records:
            self._track(record)
        self._queue_ranks = None
        self.endResetModel()

    def summary_of(self, job_id: int) -> JobSummary | None:
        """The row's summary as last read (no store read)."""
        row = self._row_of(job_id)
        return self._records[row] if row is not None else None

    def row_of(self, job_id: int) -> int | None:
        """The job's row (None: not in the table); no store read."""
        return self._row_of(job_id)

    def _row_of(self, job_id: int) -> int | None:
        i = bisect.bisect_left(self._neg_ids, -job_id)
        return i if i < len(self._neg_ids) and self._neg_ids[i] == -job_id else None

    def _on_added(self, job_id: int) -> None:
        if self._row_of(job_id) is not None:
            self._on_changed(job_id)
            return
        try:
            record = self._service.summary(job_id)
        except KeyError:
            return
        row = bisect.bisect_left(self._neg_ids, -job_id)
        self.beginInsertRows(QModelIndex(), row, row)
        self._records.insert(row, record)
        self._neg_ids.insert(row, -job_id)
        self._track(record)
        self.endInsertRows()
        if record.state is JobState.QUEUED:
            self._queue_changed()
        self.sig_summary_changed.emit(record)

    def _on_changed(self, job_id: int) -> None:
        row = self._row_of(job_id)
        if row is None:
            self._on_added(job_id)
            return
        was_queued = self._records[row].state is JobState.QUEUED
        try:
            self._records[row] = record = self._service.summary(job_id)
            self._track(record)
        except KeyError:
            self._on_removed(job_id)
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))
        if was_queued or record.state is JobState.QUEUED:
            self._queue_changed()
        self.sig_summary_changed.emit(record)

    def _on_removed(self, job_id: int) -> None:
        row = self._row_of(job_id)
        if row is None:
            return
        was_queued = self._records[row].state is JobState.QUEUED
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._records[row]
        del self._neg_ids[row]
        self.active_ids.discard(job_id)
        self._progress.pop(job_id, None)
        self.endRemoveRows()
        if was_queued:
            self._queue_changed()

    def _queue_changed(self) -> None:
        """A job joined, left or moved in the local queue: every queued row's place may change
        (one signal for the Status column; the view repaints only the rows it shows)."""
        self._queue_ranks = None
        if self._records:
            self.dataChanged.emit(
                self.index(0, Column.STATUS), self.index(len(self._records) - 1, Column.STATUS)
            )

    def queue_rank(self, job_id: int) -> int | None:
        """The queued local job's place in the queue (1 = the next to start), or None."""
        if self._queue_ranks is None:
            queued = sorted(
                (r.queue_position or 0, r.id)
                for r in self._records
                if r.state is JobState.QUEUED and r.target is JobTarget.LOCAL
            )
            self._queue_ranks = {job_id: rank for rank, (_pos, job_id) in enumerate(queued, 1)}
        return self._queue_ranks.get(job_id)

    def _on_progress(self, job_id: int, event: dict[str, Any]) -> None:
        """One progress event: new value for the row, one cell repainted, no store read."""
        value = progress_value(event)
        if value is None:
            return
        row = self._row_of(job_id)
        if row is None or self._records[row].state not in _ACTIVE:
            return  # its row arrives (with the service's last progress) on the next add/change
        if self._progress.get(job_id) == value:
            return
        self._progress[job_id] = value
        index = self.index(row, Column.PROGRESS)
        self.dataChanged.emit(index, index, [PROGRESS_ROLE])

    def refresh_running_durations(self) -> None:
        """Called every second: running jobs' Duration cells change with the clock."""
        for job_id in self.active_ids:
            row = self._row_of(job_id)
            if row is not None:
                index = self.index(row, Column.DURATION)
                self.dataChanged.emit(index, index)

    def _track(self, record: JobSummary) -> None:
        if record.state in _ACTIVE:
            self.active_ids.add(record.id)
            if record.id not in self._progress:  # e.g. re-adopted: the engine kept its last event
                value = progress_value(self._service.progress(record.id))
                if value is not None:
                    self._progress[record.id] = value
        else:
            self.active_ids.discard(record.id)
            self._progress.pop(record.id, None)

    def record_at(self, row: int) -> JobSummary:
        return self._records[row]

    # -- Qt model interface ------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._records[index.row()]
        column = Column(index.column())
        if role == JOB_ID_ROLE:
            return record.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(record, column)
        if role == SORT_ROLE:
            return self._sort_key(record, column)
        if role == PROGRESS_ROLE and column is Column.PROGRESS:
            return self._progress.get(record.id)
        if column is Column.STATUS:
            if role == Qt.ItemDataRole.DecorationRole:
                return state_icon(record.state)
            if role == Qt.ItemDataRole.ForegroundRole:
                return state_text_color(record.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is Column.PROGRESS:
                value = self._progress.get(record.id)
                return value[1] if value and value[1] else None
            if column is Column.EXIT and record.outcome:
                return record.outcome.describe()
            if column is Column.NAME:
                return record.command
        return None

    def _display(self, r: JobSummary, column: Column) -> str:
        if column is Column.STATUS:
            text = state_label(r.state)
            rank = self.queue_rank(r.id) if r.state is JobState.QUEUED else None
            return f"{text} (#{rank})" if rank is not None else text
        if column is Column.NAME:
            return r.name
        if column is Column.KIND:
            return r.kind if r.target is JobTarget.LOCAL else f"{r.kind} · {r.cluster}"
        if column is Column.PROJECT:
            return r.project_name or (f"#{r.project_id}" if r.project_id else "")
        if column is Column.STARTED:
            return r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if r.started_at else ""
        if column is Column.DURATION:
            return format_duration(r.duration_seconds(datetime.now(UTC)))
        if column is Column.GPUS:
            return gpus_text(r)
        if column is Column.PROGRESS:
            return ""
        if column is Column.EXIT:
            return r.outcome.describe() if r.outcome else ""
        return ""

    def _sort_key(self, r: JobSummary, column: Column) -> Any:
        if column is Column.STARTED:
            return r.started_at.timestamp() if r.started_at else 0.0
        if column is Column.DURATION:
            return r.duration_seconds(datetime.now(UTC)) or 0.0
        if column is Column.STATUS:
            return r.state.value
        return self._display(r, column)


FILTERS = {
    "All": None,
    "Active": lambda s: s.is_active,
    "Queued": lambda s: s is JobState.QUEUED,
    "Finished": lambda s: s.is_final,
    "Failed": lambda s: s.is_final and s is not JobState.COMPLETED and s is not JobState.CANCELLED,
}


class JobsFilterProxy(QSortFilterProxyModel):
    """Search in name, command, kind and state; plus a state group (All, Active, Queued, ...)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._group = "All"
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange()

    def set_group(self, group: str) -> None:
        self.beginFilterChange()
        self._group = group
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._text and self._group == "All":
            return True
        model = self.sourceModel()
        assert isinstance(model, JobsTableModel)
        record = model.record_at(source_row)
        test = FILTERS.get(self._group)
        if test is not None and not test(record.state):
            return False
        if not self._text:
            return True
        haystack = " ".join(
            (
                str(record.id),
                record.name,
                record.kind,
                record.state.value,
                record.command,
            )
        ).lower()
        return all(word in haystack for word in self._text.split())


class ProgressDelegate(QStyledItemDelegate):
    """Paints a slim progress bar with stage and ETA where a job reports progress.

    Painted by hand rather than with the style's progress bar: styles draw that control
    inconsistently inside item views (Fusion leaves the fill out on selected rows)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        value = index.data(PROGRESS_ROLE)
        super().paint(painter, option, index)
        if not value:
            return
        fraction, text = value
        rect = option.rect.adjusted(3, 4, -3, -4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = option.palette
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(rect, 3, 3)
        if fraction >= 0:
            filled = rect.adjusted(0, 0, -int(rect.width() * (1.0 - max(0.0, min(1.0, fraction)))), 0)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(47, 126, 216, 150))
            painter.drawRoundedRect(filled, 3, 3)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, progress_cell_text(option, text, rect.width()))
        painter.restore()


def progress_cell_text(option: QStyleOptionViewItem, text: str, width: int) -> str:
    """The text as it fits the cell: cut on the right ("stage · 42% · ET…"), so the stage that
    starts it stays readable; the whole text is the cell's tooltip."""
    return option.fontMetrics.elidedText(text, Qt.TextElideMode.ElideRight, max(0, width - 6))
