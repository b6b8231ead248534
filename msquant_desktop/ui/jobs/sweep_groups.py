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

from PySide6.QtCore import (
    QAbstractProxyModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QFont

from msquant_desktop.domain.jobs import JobState, JobSummary
from msquant_desktop.domain.slurm import map_slurm_state
from msquant_desktop.ui.jobs.table_model import (
    HEADERS,
    JOB_ID_ROLE,
    Column,
    JobsTableModel,
    state_icon,
    state_text_color,
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


def _structure_signals(model: Any) -> tuple[Any, ...]:
    """The source's signals after which the rows are grouped again."""
    return (model.rowsInserted, model.rowsRemoved, model.modelReset, model.layoutChanged, model.rowsMoved)


FINE_GRAINED_RUNS = 8
"""Up to this many runs of rows removed and inserted, rows change run by run; beyond, one layout change."""


def _run_bounds(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) of each run of consecutive ones."""
    bounds: list[tuple[int, int]] = []
    for row in rows:
        if bounds and bounds[-1][1] == row - 1:
            bounds[-1] = (bounds[-1][0], row)
        else:
            bounds.append((row, row))
    return bounds


def _runs(rows: list[int]) -> int:
    return sum(1 for i, row in enumerate(rows) if i == 0 or rows[i - 1] != row - 1)


class SweepGroupingProxy(QAbstractProxyModel):
    def __init__(self, jobs: JobsTableModel, parent: Any = None) -> None:
        super().__init__(parent)
        self._jobs = jobs  # every row's summary (the counts cover members the filter hides)
        self._keys: list[_Key] = []
        self._row_of_key: dict[_Key, int] = {}
        self._collapsed: set[str] = set()
        self._members: dict[str, list[int]] = {}  # every sweep's job ids, from the unfiltered rows
        self._head_rows: dict[str, list[int]] = {}  # each sweep's header rows
        self._dirty = False
        self._burst = QTimer(self)  # the rest of this turn of the event loop (see _on_source_structure)
        self._burst.setObjectName("jobs-sweep-groups-burst")
        self._burst.setSingleShot(True)
        self._burst.setInterval(0)
        self._burst.timeout.connect(self._end_burst)

    # -- what is shown ---------------------------------------------------------------------------------
    def setSourceModel(self, source: QSortFilterProxyModel) -> None:  # type: ignore[override]
        """`source`: the filter proxy over this proxy's JobsTableModel."""
        self.beginResetModel()
        old = self.sourceModel()
        if old is not None:
            for signal in _structure_signals(old):
                signal.disconnect(self._on_source_structure)
            old.dataChanged.disconnect(self._on_source_data_changed)
        super().setSourceModel(source)
        for signal in _structure_signals(source):
            signal.connect(self._on_source_structure)
        source.dataChanged.connect(self._on_source_data_changed)
        self._set_keys(self._layout())
        self.endResetModel()

    def is_collapsed(self, sweep_id: str) -> bool:
        return sweep_id in self._collapsed

    def toggle(self, sweep_id: str) -> None:
        """Fold or unfold a sweep's members under its header."""
        self._collapsed.symmetric_difference_update({sweep_id})
        self.regroup()

    def members(self, sweep_id: str) -> list[JobSummary]:
        """Every member's row as last read, filtered or not (no store read)."""
        found = (self._jobs.summary_of(job_id) for job_id in self._members.get(sweep_id, ()))
        return [summary for summary in found if summary is not None]

    def counts(self, sweep_id: str) -> SweepCounts:
        return sweep_counts([m.state for m in self.members(sweep_id)])

    def _summary_at(self, source_row: int) -> JobSummary | None:
        job_id = self.sourceModel().index(source_row, 0).data(JOB_ID_ROLE)
        return self._jobs.summary_of(int(job_id)) if job_id is not None else None

    def _layout(self) -> list[_Key]:
        """The rows as they should be now: each run of one sweep's rows under its header."""
        self._members = {}
        for row in range(self._jobs.rowCount()):
            every = self._jobs.record_at(row)
            if every.sweep_id is not None:
                self._members.setdefault(every.sweep_id, []).append(every.id)
        source = self.sourceModel()
        keys: list[_Key] = []
        if not isinstance(source, QSortFilterProxyModel):
            return keys
        current: str | None = None
        for source_row in range(source.rowCount()):
            summary = self._jobs.record_at(source.mapToSource(source.index(source_row, 0)).row())
            sweep = summary.sweep_id
            if sweep is not None and sweep != current:
                keys.append(("head", sweep, summary.id))
            current = sweep
            if sweep is None or sweep not in self._collapsed:
                keys.append(("job", summary.id))
            if summary.array_tasks and array_key(summary.id) not in self._collapsed:
                # A sweep run as one job array: its row heads the group, a row per task below.
                keys.extend(("task", summary.id, task) for task in range(len(summary.array_tasks)))
        return keys

    def _set_keys(self, keys: list[_Key]) -> None:
        self._keys = keys
        self._row_of_key = {key: row for row, key in enumerate(keys)}
        self._head_rows = {}
        for row, key in enumerate(keys):
            if key[0] == "head":
                self._head_rows.setdefault(key[1], []).append(row)

    def _on_source_structure(self, *args: Any) -> None:
        """Rows came, went or moved below.  The first change of a turn of the event loop is applied at
        once (a new job is in the table before anyone looks for it); a burst of them (a filter change
        removes and inserts one range at a time) is applied once, at the end of the turn.  Meanwhile a
        row that left stays as an empty row: rows map to their job by id, never by position."""
        if self._burst.isActive():
            self._dirty = True
            return
        self._burst.start()
        self.regroup()

    def flush(self) -> None:
        """Apply the changes a burst left for the end of this turn now (before looking for a row)."""
        if self._dirty:
            self.regroup()

    def _end_burst(self) -> None:
        self.flush()

    def regroup(self) -> None:
        """Bring the rows up to date.  Rows in both lists keep their order, so a few runs of rows that
        left or came are removed and inserted run by run (selection and scroll stay); many runs (a
        filter change) are one layout change that moves the selection with its rows."""
        self._dirty = False
        new_keys = self._layout()
        wanted, present = set(new_keys), set(self._keys)
        gone = [row for row, key in enumerate(self._keys) if key not in wanted]
        came = [row for row, key in enumerate(new_keys) if key not in present]
        if _runs(gone) + _runs(came) > FINE_GRAINED_RUNS:
            self._relayout(new_keys)
        else:
            for first, last in reversed(_run_bounds(gone)):  # from the bottom up
                self.beginRemoveRows(QModelIndex(), first, last)
                self._set_keys(self._keys[:first] + self._keys[last + 1 :])
                self.endRemoveRows()
            for first, last in _run_bounds(came):  # from the top down: the rows above are final
                self.beginInsertRows(QModelIndex(), first, last)
                self._set_keys(self._keys[:first] + new_keys[first : last + 1] + self._keys[first:])
                self.endInsertRows()
            if self._keys != new_keys:  # rows in both changed order (not expected): start afresh
                self._relayout(new_keys)
        # Headers' counts move with their members.
        for rows in self._head_rows.values():
            for row in rows:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))

    def _relayout(self, new_keys: list[_Key]) -> None:
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        new_row = {key: row for row, key in enumerate(new_keys)}
        targets = [
            (new_row.get(self._keys[index.row()]) if index.row() < len(self._keys) else None, index.column())
            for index in before
        ]
        self._set_keys(new_keys)
        self.changePersistentIndexList(
            before,
            [self.index(row, column) if row is not None else QModelIndex() for row, column in targets],
        )
        self.layoutChanged.emit()

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
        for sweep in sweeps:
            for row in self._head_rows.get(sweep, ()):
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
        if source is None or not proxy_index.isValid() or proxy_index.row() >= len(self._keys):
            return QModelIndex()
        key = self._keys[proxy_index.row()]
        row = self._jobs.row_of(key[1]) if key[0] == "job" else None
        if row is None:  # a header, a task, or a job that left (until the end of this turn)
            return QModelIndex()
        assert isinstance(source, QSortFilterProxyModel)
        return source.mapFromSource(self._jobs.index(row, proxy_index.column()))

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
            return state_text_color(state)
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
            return state_text_color(counts.state)
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{counts.text(sweep_id)}\nDouble-click to fold or unfold its members."
        return None
