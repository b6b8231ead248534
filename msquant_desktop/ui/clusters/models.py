"""Item models of the Clusters tab: the SLURM jobs and one cluster's GPUs per node.

Both update row by row (`KeyedRowsModel`): a poll that changes one job's state or one node's free
GPUs repaints that row; new or gone rows are inserted or removed; a reset only when rows reorder.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication

from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.services.cluster_jobs import awaits_answer, task_states
from msquant_desktop.slurm.gpus import NodeRow
from msquant_desktop.ui.colors import readable
from msquant_desktop.ui.keyed_rows import KeyedRowsModel

JOBS_SHOWN = 200
"""The newest SLURM jobs the table shows."""
JOB_ID_ROLE = Qt.ItemDataRole.UserRole
_GREY = QColor("#888888")
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
TASKS_LISTED = 6
"""An array job lists its tasks one by one up to this many; more are counted by state."""


def tasks_text(tasks: list[tuple[str, str]]) -> str:
    """`46_0 COMPLETED, 46_1 FAILED, 46_2 RUNNING`, or for a large array `468 tasks: 12 RUNNING, ...`."""
    if len(tasks) <= TASKS_LISTED:
        return ", ".join(f"{task} {state}" for task, state in tasks)
    counts: dict[str, int] = {}
    for _task, state in tasks:
        counts[state] = counts.get(state, 0) + 1
    return f"{len(tasks)} tasks: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


@dataclass(frozen=True)
class SlurmJobRow:
    """What the jobs table shows of one SLURM job (compared to tell a changed row)."""

    id: int
    name: str
    cluster: str
    slurm_id: str
    state: str
    exit: str
    links: str
    tasks: str = ""
    tasks_tip: str = ""

    @classmethod
    def of(cls, job: JobRecord) -> SlurmJobRow:
        links = job.result.get("wandb_urls", []) or job.result.get("wandb_sync", [])
        outcome = job.outcome.describe() if job.outcome else ""
        if awaits_answer(job) and job.result.get("submit_check"):
            outcome = str(job.result["submit_check"])  # e.g. looking for its name after a lost answer
        tasks = task_states(job)
        return cls(
            id=job.id,
            name=job.spec.name,
            cluster=job.spec.cluster or "",
            slurm_id=job.slurm_job_id or "-",
            state=job.state.value,
            exit=outcome,
            links=" ".join(links),
            tasks=tasks_text(tasks),
            tasks_tip="\n".join(f"{task} {state}" for task, state in tasks[:200]),
        )


class SlurmJobsModel(KeyedRowsModel[SlurmJobRow]):
    HEADERS = ("ID", "Name", "Cluster", "SLURM id", "State", "Exit", "Tasks", "Links")

    def key(self, row: SlurmJobRow) -> Hashable:
        return row.id

    def display(self, row: SlurmJobRow, column: int) -> Any:
        values = (row.id, row.name, row.cluster, row.slurm_id, row.state, row.exit, row.tasks, row.links)
        return str(values[column])

    def extra(self, row: SlurmJobRow, column: int, role: int) -> Any:
        if role == JOB_ID_ROLE:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole and column == 6 and row.tasks_tip:
            return row.tasks_tip
        return None

    def load(self, jobs: Iterable[JobRecord]) -> None:
        """The newest SLURM jobs, newest first (a full read, still shown as row-level changes)."""
        self.set_rows([SlurmJobRow.of(j) for j in jobs][:JOBS_SHOWN])

    def apply(self, job_id: int, job: JobRecord | None) -> None:
        """One job changed (`job`) or is gone (None): update, insert or remove its row only."""
        rows = [r for r in self.rows if r.id != job_id]
        if job is not None and job.spec.target is JobTarget.SLURM:
            at = next((i for i, r in enumerate(rows) if r.id < job_id), len(rows))
            rows.insert(at, SlurmJobRow.of(job))
        self.set_rows(rows[:JOBS_SHOWN])

    def job_id_at(self, row: int) -> int:
        return self.rows[row].id


class GpuNodesModel(KeyedRowsModel[NodeRow]):
    HEADERS = (
        "Node",
        "State",
        "Partitions",
        "GPU type",
        "Total",
        "Used",
        "Free",
        "CPUs free",
        "Memory free",
    )

    def key(self, row: NodeRow) -> Hashable:
        return (row.node, row.gpu_type)

    def display(self, row: NodeRow, column: int) -> Any:
        values = (
            row.node,
            row.state,
            ",".join(row.partitions),
            row.gpu_type or "(untyped)",
            row.gpus.total,
            row.gpus.used,
            row.gpus.free,
            row.cpus_free,
            f"{row.memory_free_mb / 1024:.1f} GiB",
        )
        return str(values[column])

    def extra(self, row: NodeRow, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.TextAlignmentRole and 4 <= column <= 7:
            return int(_RIGHT.value)
        if row.usable:
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            return readable(_GREY, QGuiApplication.palette())
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"excluded: {row.state}" + (f" ({row.reason})" if row.reason else "")
        return None
