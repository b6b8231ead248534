"""A sweep's jobs shown as one group in the Jobs table: a flat proxy that adds a header row
"sweep <id>: N members, k done, j failed" above the members (indented under it), and can fold them.

A sweep run on a cluster is one SLURM job array: its job row heads the group ("… · sweep 46: 4
members, …") and a row per task below shows that task's state; a task row stands for its array job.

It sits on top of the filter proxy, so the table, its columns, its selection and whatever else acts on
rows (menus, shortcuts) stay as they are: a member row is the job's own row, and a header row has no
JOB_ID_ROLE (it is no job), only SWEEP_ROLE.  Members of a sweep are stored in one transaction, so
their rows are adjacent; a run of adjacent rows of one sweep gets one header.  Changes stay
fine-grained: after a change of the rows below, the new row list is compared with the old one and
only the rows in between are removed and inserted (a member's state change repaints its row and its
header, nothing more).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractProxyModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from msquant_desktop.domain.jobs import JobState, JobSummary
from msquant_desktop.domain.slurm import map_slurm_state
from msquant_desktop.ui.jobs.table_model import (
    HEADERS,
    JOB_ID_ROLE,
    STATE_COLORS,
    Column,
    JobsTableModel,
    state_icon,
)

Index = QModelIndex | QPersistentModelIndex
SWEEP_ROLE = Qt.ItemDataRole.UserRole + 20
"""On a header row: the sweep's id (None on every job row)."""

MEMBER_INDENT = "    "


def array_key(job_id: int) -> str:
    """The SWEEP_ROLE of a job array's row (what folds its tasks)."""
    return f"array:{job_id}"


@dataclass(frozen=True)
class SweepCounts:
    """Where a sweep's members stand (all of them, whatever the filter shows)."""

    members: int
    done: int
    failed: int
    running: int
    queued: int
    cancelled: int

    @property
    def state(self) -> JobState:
        """The state its header shows: active while any member is, else failed if any failed."""
        if self.running:
            return JobState.RUNNING
        if self.queued:
            return JobState.QUEUED
        if self.failed:
            return JobState.FAILED
        if self.done == self.members:
            return JobState.COMPLETED
        return JobState.CANCELLED

    def text(self, sweep_id: str) -> str:
        words = [f"sweep {sweep_id}: {self.members} members", f"{self.done} done", f"{self.failed} failed"]
        if self.running:
            words.append(f"{self.running} running")
        if self.queued:
            words.append(f"{self.queued} queued")
        if self.cancelled:
            words.append(f"{self.cancelled} cancelled")
        return ", ".join(words)


def task_state(word: str) -> JobState:
    """An array task's stored state (our final state's value, or SLURM's word while open)."""
    try:
        return JobState(word)
    except ValueError:
        return map_slurm_state(word) or JobState.QUEUED


def sweep_counts(member_states: list[JobState]) -> SweepCounts:
    """The counts of a header from its members' states (pure: tested without a view)."""
    states = Counter(member_states)
    failed = sum(
        n for s, n in states.items() if s.is_final and s not in (JobState.COMPLETED, JobState.CANCELLED)
    )
    running = sum(n for s, n in states.items() if s.is_active and s is not JobState.QUEUED)
    return SweepCounts(
        members=len(member_states),
        done=states[JobState.COMPLETED],
        failed=failed,
        running=running,
        queued=states[JobState.QUEUED],
        cancelled=states[JobState.CANCELLED],
    )


# A row of this proxy: ("job", job id) or ("head", sweep id, id of the run's first job).
_Key = tuple[Any, ...]


class SweepGroupingProxy(QAbstractProxyModel):
    def __init__(self, jobs: JobsTableModel, parent: Any = None) -> None:
        super().__init__(parent)
        self._jobs = jobs  # every row's summary (the counts cover members the filter hides)
        self._keys: list[_Key] = []
        self._source_rows: list[int] = []  # per row: the source row (-1 for a header)
        self._row_of_key: dict[_Key, int] = {}
        self._collapsed: set[str] = set()
        self._members: dict[str, list[int]] = {}  # every sweep's job ids, from the unfiltered rows

    # -- what is shown ---------------------------------------------------------------------------------
    def setSourceModel(self, source: Any) -> None:
        self.beginResetModel()
        old = self.sourceModel()
        if old is not None:
            for signal in (
                old.rowsInserted,
                old.rowsRemoved,
                old.modelReset,
                old.layoutChanged,
                old.rowsMoved,
            ):
                signal.disconnect(self._regroup)
            old.dataChanged.disconnect(self._on_source_data_changed)
        super().setSourceModel(source)
        for signal in (
            source.rowsInserted,
            source.rowsRemoved,
            source.modelReset,
            source.layoutChanged,
            source.rowsMoved,
        ):
            signal.connect(self._regroup)
        source.dataChanged.connect(self._on_source_data_changed)
        self._keys, self._source_rows = self._layout()
        self._row_of_key = {key: row for row, key in enumerate(self._keys)}
        self.endResetModel()

    def is_collapsed(self, sweep_id: str) -> bool:
        return sweep_id in self._collapsed

    def toggle(self, sweep_id: str) -> None:
        """Fold or unfold a sweep's members under its header."""
        self._collapsed.symmetric_difference_update({sweep_id})
        self._regroup()

    def members(self, sweep_id: str) -> list[JobSummary]:
        """Every member's row as last read, filtered or not (no store read)."""
        found = (self._jobs.summary_of(job_id) for job_id in self._members.get(sweep_id, ()))
        return [summary for summary in found if summary is not None]

    def counts(self, sweep_id: str) -> SweepCounts:
        return sweep_counts([m.state for m in self.members(sweep_id)])

    def _summary_at(self, source_row: int) -> JobSummary | None:
        source = self.sourceModel()
        job_id = source.index(source_row, 0).data(JOB_ID_ROLE)
        return self._jobs.summary_of(int(job_id)) if job_id is not None else None

    def _layout(self) -> tuple[list[_Key], list[int]]:
        """The rows as they should be now: each run of one sweep's rows under its header."""
        self._members = {}
        for row in range(self._jobs.rowCount()):
            every = self._jobs.record_at(row)
            if every.sweep_id is not None:
                self._members.setdefault(every.sweep_id, []).append(every.id)
        source = self.sourceModel()
        keys: list[_Key] = []
        rows: list[int] = []
        current: str | None = None
        for source_row in range(source.rowCount() if source is not None else 0):
            summary = self._summary_at(source_row)
            if summary is None:
                continue
            sweep = summary.sweep_id
            if sweep is not None and sweep != current:
                keys.append(("head", sweep, summary.id))
                rows.append(-1)
            current = sweep
            if sweep is None or sweep not in self._collapsed:
                keys.append(("job", summary.id))
                rows.append(source_row)
            if summary.array_tasks and array_key(summary.id) not in self._collapsed:
                # A sweep run as one job array: its row heads the group, a row per task below.
                for task in range(len(summary.array_tasks)):
                    keys.append(("task", summary.id, task))
                    rows.append(-1)
        return keys, rows

    def _regroup(self, *args: Any) -> None:
        """Bring the rows up to date with the fewest inserts and removes (common head and tail kept)."""
        new_keys, new_rows = self._layout()
        old_keys = self._keys
        start = 0
        while start < min(len(old_keys), len(new_keys)) and old_keys[start] == new_keys[start]:
            start += 1
        old_end, new_end = len(old_keys), len(new_keys)
        while old_end > start and new_end > start and old_keys[old_end - 1] == new_keys[new_end - 1]:
            old_end -= 1
            new_end -= 1
        if old_end > start:
            self.beginRemoveRows(QModelIndex(), start, old_end - 1)
            self._keys = old_keys[:start] + old_keys[old_end:]
            self._source_rows = new_rows[:start] + new_rows[new_end:]
            self.endRemoveRows()
        if new_end > start:
            self.beginInsertRows(QModelIndex(), start, new_end - 1)
            self._keys, self._source_rows = new_keys, new_rows
            self.endInsertRows()
        self._keys, self._source_rows = new_keys, new_rows
        self._row_of_key = {key: row for row, key in enumerate(self._keys)}
        # Rows that kept their place may now stand for other source rows, and headers' counts move.
        if self._keys:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._keys) - 1, len(HEADERS) - 1))

    def _on_source_data_changed(
        self, top_left: QModelIndex, bottom_right: QModelIndex, roles: Any = ()
    ) -> None:
        sweeps: set[str] = set()
        for source_row in range(top_left.row(), bottom_right.row() + 1):
            summary = self._summary_at(source_row)
            if summary is None:
                continue
            for task in range(len(summary.array_tasks)):
                task_row = self._row_of_key.get(("task", summary.id, task))
                if task_row is not None:
                    self.dataChanged.emit(self.index(task_row, 0), self.index(task_row, len(HEADERS) - 1))
            row = self._row_of_key.get(("job", summary.id))
            if row is not None:
                self.dataChanged.emit(
                    self.index(row, top_left.column()), self.index(row, bottom_right.column()), roles
                )
            if summary.sweep_id is not None:
                sweeps.add(summary.sweep_id)
        for row, key in enumerate(self._keys):
            if key[0] == "head" and key[1] in sweeps:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))

    # -- Qt's proxy interface --------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid() or not (0 <= row < len(self._keys)) or not (0 <= column < len(HEADERS)):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        return QModelIndex()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def mapToSource(self, proxy_index: Index) -> QModelIndex:
        source = self.sourceModel()
        if source is None or not proxy_index.isValid() or proxy_index.row() >= len(self._source_rows):
            return QModelIndex()
        source_row = self._source_rows[proxy_index.row()]
        return source.index(source_row, proxy_index.column()) if source_row >= 0 else QModelIndex()

    def mapFromSource(self, source_index: Index) -> QModelIndex:
        if not source_index.isValid():
            return QModelIndex()
        job_id = source_index.data(JOB_ID_ROLE)
        row = self._row_of_key.get(("job", job_id))
        return self.index(row, source_index.column()) if row is not None else QModelIndex()

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        source = self.sourceModel()
        return source.headerData(section, orientation, role) if source is not None else None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if index.isValid() and self._keys[index.row()][0] != "job":
            return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return super().flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._keys):
            return None
        key = self._keys[index.row()]
        if key[0] == "job":
            return self._job_data(index, key[1], role)
        if key[0] == "task":
            return self._task_data(key[1], key[2], Column(index.column()), role)
        return self._head_data(key[1], Column(index.column()), role)

    def _job_data(self, index: Index, job_id: int, role: int) -> Any:
        value = super().data(index, role)
        summary = self._jobs.summary_of(job_id)
        if summary is None:
            return value
        if summary.array_tasks:  # the array's own row heads its tasks
            if role == SWEEP_ROLE:
                return array_key(job_id)
            if role == Qt.ItemDataRole.DisplayRole and index.column() == Column.NAME:
                counts = sweep_counts([task_state(state) for _, state in summary.array_tasks])
                fold = "▸" if array_key(job_id) in self._collapsed else "▾"
                return f"{fold} {value} · {counts.text(summary.slurm_job_id or f'#{job_id}')}"
        elif (
            summary.sweep_id is not None
            and role == Qt.ItemDataRole.DisplayRole
            and index.column() == Column.NAME
        ):
            return MEMBER_INDENT + str(value or "")
        return value

    def _task_data(self, job_id: int, task: int, column: Column, role: int) -> Any:
        summary = self._jobs.summary_of(job_id)
        if summary is None or task >= len(summary.array_tasks):
            return None
        name, word = summary.array_tasks[task]
        state = task_state(word)
        if role == JOB_ID_ROLE:
            return job_id  # a task's row stands for its array job (details, cancel)
        if role == Qt.ItemDataRole.DisplayRole:
            if column is Column.STATUS:
                return word.capitalize().replace("_", " ")
            if column is Column.NAME:
                return f"{MEMBER_INDENT}task {name}"
            if column is Column.PROJECT:
                return summary.project_name or ""
            return ""
        if column is Column.STATUS and role == Qt.ItemDataRole.DecorationRole:
            return state_icon(state)
        if column is Column.STATUS and role == Qt.ItemDataRole.ForegroundRole:
            return QColor(STATE_COLORS[state])
        return None

    def _head_data(self, sweep_id: str, column: Column, role: int) -> Any:
        if role == SWEEP_ROLE:
            return sweep_id
        if role == JOB_ID_ROLE:
            return None
        counts = self.counts(sweep_id)
        if role == Qt.ItemDataRole.DisplayRole:
            if column is Column.STATUS:
                return ("▸ " if sweep_id in self._collapsed else "▾ ") + "Sweep"
            if column is Column.NAME:
                return counts.text(sweep_id)
            if column is Column.PROJECT:
                members = self.members(sweep_id)
                return members[0].project_name or "" if members else ""
            return ""
        if role == Qt.ItemDataRole.DecorationRole and column is Column.STATUS:
            return state_icon(counts.state)
        if role == Qt.ItemDataRole.ForegroundRole and column is Column.STATUS:
            return QColor(STATE_COLORS[counts.state])
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Double-click to fold or unfold the sweep's members"
        return None
