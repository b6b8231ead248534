"""Item models for the GPUs table and the processes-on-GPUs table.

They adapt the latest `GpuReading`; they do not own data.  Same shape as before: `dataChanged` only;
a different number of rows: a reset.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QGuiApplication

from msquant_desktop.domain.gpu import GpuReading, GpuSnapshot, JobProcess, ProcessDetails, describe_throttle
from msquant_desktop.ui.colors import LINK, readable

_Index = QModelIndex | QPersistentModelIndex
_GIB = 2**30
NA = "—"
"""How a value NVML could not give is shown."""


JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
"""The job id of a process row (None when it is not one of ours)."""


def _num(value: float | None, fmt: str) -> str:
    return NA if value is None else fmt.format(value)


def _memory(gpu: GpuSnapshot) -> str:
    if gpu.memory_used_bytes is None or not gpu.memory_total_bytes:
        return NA
    return f"{gpu.memory_used_bytes / _GIB:.1f} / {gpu.memory_total_bytes / _GIB:.0f} GiB ({gpu.memory_percent:.0f}%)"


def _power(gpu: GpuSnapshot) -> str:
    if gpu.power_w is None:
        return NA
    limit = f" / {gpu.power_limit_w:.0f}" if gpu.power_limit_w else ""
    return f"{gpu.power_w:.0f}{limit} W"


def _clocks(gpu: GpuSnapshot) -> str:
    if gpu.sm_clock_mhz is None and gpu.memory_clock_mhz is None:
        return NA
    return f"{_num(gpu.sm_clock_mhz, '{:d}')} / {_num(gpu.memory_clock_mhz, '{:d}')} MHz"


class _ReadingModel(QAbstractTableModel):
    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, ...]] = []

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._rows[index.row()][index.column()]
        return self._extra(index.row(), index.column(), role)

    def _extra(self, row: int, column: int, role: int) -> Any:
        return None

    def cell(self, row: int, column: int) -> str:
        return self._rows[row][column]

    def _replace(self, rows: list[tuple[str, ...]]) -> None:
        if len(rows) != len(self._rows):
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()
            return
        changed = [i for i, (old, new) in enumerate(zip(self._rows, rows, strict=True)) if old != new]
        self._rows = rows
        if changed:
            self.dataChanged.emit(
                self.index(min(changed), 0),
                self.index(max(changed), len(self.HEADERS) - 1),
                [Qt.ItemDataRole.DisplayRole],
            )


class GpuTableModel(_ReadingModel):
    HEADERS = (
        "GPU",
        "Name",
        "Utilization",
        "Memory",
        "Temp",
        "Power",
        "Clocks SM / mem",
        "Fan",
        "Throttling",
    )

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._errors: list[str | None] = []

    def update(self, reading: GpuReading) -> None:
        rows: list[tuple[str, ...]] = []
        for gpu in reading.gpus:
            if gpu.error:
                rows.append((str(gpu.index), gpu.name, NA, NA, NA, NA, NA, NA, f"not answering: {gpu.error}"))
                continue
            rows.append(
                (
                    str(gpu.index),
                    gpu.name,
                    _num(gpu.utilization_gpu, "{:.0f}%"),
                    _memory(gpu),
                    _num(gpu.temperature_c, "{:.0f} °C"),
                    _power(gpu),
                    _clocks(gpu),
                    _num(gpu.fan_percent, "{:.0f}%"),
                    describe_throttle(gpu.throttle_mask),
                )
            )
        self._errors = [gpu.error for gpu in reading.gpus]
        self._replace(rows)

    def _extra(self, row: int, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole and self._errors[row]:
            return f"NVML says: {self._errors[row]}. Its other readings are not available."
        return None


def _cpu(percent: float | None) -> str:
    return _num(percent, "{:.0f}%")


def _rss(rss: int | None) -> str:
    return NA if rss is None else f"{rss / 2**20:,.0f} MiB"


class ProcessTableModel(_ReadingModel):
    HEADERS = ("PID", "User", "GPU", "GPU memory", "CPU", "RSS", "Job", "Command")
    JOB_COLUMN = 6

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._details: list[ProcessDetails] = []

    def update(self, reading: GpuReading) -> None:
        details = sorted(reading.processes, key=lambda p: (p.gpu_index, p.pid))
        rows: list[tuple[str, ...]] = []
        for p in details:
            memory = NA if p.used_memory_bytes is None else f"{p.used_memory_bytes / 2**20:,.0f} MiB"
            rows.append(
                (
                    str(p.pid),
                    p.user,
                    str(p.gpu_index),
                    memory,
                    _cpu(p.cpu_percent),
                    _rss(p.rss_bytes),
                    self._job_text(p),
                    p.command,
                )
            )
        self._details = details
        self._replace(rows)

    @staticmethod
    def _job_text(p: ProcessDetails) -> str:
        if p.job is None:
            return ""
        return p.job.describe()

    def job_id(self, row: int) -> int | None:
        job = self._details[row].job
        return job.job_id if job else None

    def target(self, row: int) -> ProcessTarget | None:
        """What "Terminate…" would end from this row, or None when it may not (another user's, or
        its start time is unknown so a recycled pid could not be told apart)."""
        p = self._details[row]
        if p.start_time is None or p.user != current_user():
            return None
        return ProcessTarget(p.pid, p.start_time, p.command)

    def _extra(self, row: int, column: int, role: int) -> Any:
        p = self._details[row]
        if role == JOB_ID_ROLE:
            return p.job.job_id if p.job else None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.JOB_COLUMN and p.job:
                return f"Run folder: {p.job.run_dir or NA}\nStore: {p.job.store or NA}\nDouble-click to open the job."
            if column == self.JOB_COLUMN + 1:
                return p.command
        if role == Qt.ItemDataRole.ForegroundRole and column == self.JOB_COLUMN and p.job:
            return readable(LINK, QGuiApplication.palette())
        return None


class JobProcessModel(_ReadingModel):
    """Our jobs' process trees (supervisor, job, its children), indented by depth."""

    HEADERS = ("Job", "PID", "CPU", "RSS", "Command")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._procs: tuple[JobProcess, ...] = ()

    def update(self, reading: GpuReading) -> None:
        rows: list[tuple[str, ...]] = [
            (
                f"job {p.job_id}" if p.depth == 0 and p.job_id is not None else "",
                str(p.pid),
                _cpu(p.cpu_percent),
                _rss(p.rss_bytes),
                ("    " * (p.depth - 1) + "└ " if p.depth else "") + p.command,
            )
            for p in reading.job_processes
        ]
        self._procs = reading.job_processes
        self._replace(rows)

    def job_id(self, row: int) -> int | None:
        return self._procs[row].job_id

    def target(self, row: int) -> ProcessTarget | None:
        p = self._procs[row]
        return ProcessTarget(p.pid, p.start_time, p.command)  # marked processes are ours by the scan

    def _extra(self, row: int, column: int, role: int) -> Any:
        if role == JOB_ID_ROLE:
            return self._procs[row].job_id
        if role == Qt.ItemDataRole.ToolTipRole and column == len(self.HEADERS) - 1:
            return self._procs[row].command
        return None


@dataclass(frozen=True)
class ProcessTarget:
    pid: int
    start_time: float
    command: str


def current_user() -> str:
    """This user's name as `procs.scan.user_of` gives it (its uid when it has no name)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
