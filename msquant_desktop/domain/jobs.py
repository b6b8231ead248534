"""Jobs: what the user asked to run, where it is in its life, and how it ended.

One model for local and SLURM jobs.  Standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JobKind(enum.StrEnum):
    """What a job does; decides which details the UI shows."""

    COMMAND = "command"
    QUANTIZE = "quantize"
    VERIFY = "verify"
    EVALUATE = "evaluate"
    PROJECT = "project"


class JobTarget(enum.StrEnum):
    """Where a job runs."""

    LOCAL = "local"
    SLURM = "slurm"


class JobState(enum.StrEnum):
    """Every state a job can be in.  Final states never change again."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    # Final states.
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    KILLED = "KILLED"
    FAILED_TO_START = "FAILED_TO_START"
    LOST = "LOST"
    # SLURM-only final states (local jobs never reach them).
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        """Active jobs own (or may own) processes and must be re-adopted after a restart."""
        return self in ACTIVE_STATES

    @property
    def is_cancellable(self) -> bool:
        return self in (JobState.QUEUED, JobState.STARTING, JobState.RUNNING)


FINAL_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.KILLED,
        JobState.FAILED_TO_START,
        JobState.LOST,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
    }
)
ACTIVE_STATES = frozenset({JobState.STARTING, JobState.RUNNING, JobState.CANCELLING})
"""Jobs that own (or may own) processes; the store's SQL is built from this set too."""
UNFINISHED_STATES = frozenset({JobState.QUEUED} | ACTIVE_STATES)
"""Every state that is not final."""

# Which transitions are legal.  Anything else is a bug in the caller and is refused by the store.
ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.RUNNING}),
    # STARTING -> QUEUED: a SLURM job was submitted and now waits in the cluster's queue (PENDING).
    JobState.STARTING: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING} | FINAL_STATES),
    JobState.RUNNING: frozenset({JobState.CANCELLING} | FINAL_STATES),
    JobState.CANCELLING: frozenset(FINAL_STATES),
}


def can_transition(old: JobState, new: JobState) -> bool:
    """True when `old -> new` is a legal step of a job's life."""
    return new in ALLOWED_TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True)
class JobOutcome:
    """How a finished job ended, in a form that can explain itself to a user."""

    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""

    def was_successful(self) -> bool:
        return self.state is JobState.COMPLETED

    def describe(self) -> str:
        """One line for the table's Exit column and the details pane."""
        if self.state is JobState.COMPLETED:
            return f"exit 0: {self.reason}" if self.reason else "exit 0"  # e.g. log lines a full disk lost
        if self.state is JobState.FAILED:
            text = f"exit {self.exit_code}" if self.exit_code is not None else "failed"
        elif self.state is JobState.KILLED:
            text = f"killed by signal {self.signal}" if self.signal is not None else "killed"
        elif self.state is JobState.CANCELLED:
            text = "cancelled"
        else:
            text = self.state.value.lower().replace("_", " ")
        return f"{text}: {self.reason}" if self.reason else text


DEFAULT_NAME_CHARS = 80


def name_from_command(command: str) -> str:
    """A job's name when none was given: its command on one line (a `python -c` script's newlines
    and tabs become spaces, runs of blanks one), cut to DEFAULT_NAME_CHARS with "…" (tables, the
    CLI's listing and notifications show one line per job)."""
    flat = " ".join(command.split())
    return flat if len(flat) <= DEFAULT_NAME_CHARS else flat[: DEFAULT_NAME_CHARS - 1] + "…"


@dataclass(frozen=True)
class JobSpec:
    """What the user asked to run.  Immutable: a re-run makes a new spec from an old one.

    `argv` is executed directly (never through a shell).  `meta` carries kind-specific data
    (quantization settings, project commit, SLURM resources) as JSON-compatible values.
    """

    name: str
    argv: tuple[str, ...]
    kind: JobKind = JobKind.COMMAND
    target: JobTarget = JobTarget.LOCAL
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    gpus: int = 0
    project_id: int | None = None
    cluster: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a job needs a command to run")
        if self.gpus < 0:
            raise ValueError("a job cannot ask for a negative number of GPUs")
        if self.target is JobTarget.SLURM and not self.cluster:
            raise ValueError("a SLURM job needs a cluster")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": list(self.argv),
            "kind": self.kind.value,
            "target": self.target.value,
            "cwd": self.cwd,
            "env": [list(pair) for pair in self.env],
            "gpus": self.gpus,
            "project_id": self.project_id,
            "cluster": self.cluster,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            name=str(data["name"]),
            argv=tuple(str(a) for a in data["argv"]),
            kind=JobKind(data.get("kind", JobKind.COMMAND.value)),
            target=JobTarget(data.get("target", JobTarget.LOCAL.value)),
            cwd=data.get("cwd"),
            env=tuple((str(k), str(v)) for k, v in data.get("env", [])),
            gpus=int(data.get("gpus", 0)),
            project_id=data.get("project_id"),
            cluster=data.get("cluster"),
            meta=dict(data.get("meta", {})),
        )


class _HowItEnded:
    """Outcome and duration, shared by the full record and the Jobs table's summary row."""

    __slots__ = ()
    state: JobState
    exit_code: int | None
    signal: int | None
    reason: str
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def outcome(self) -> JobOutcome | None:
        if not self.state.is_final:
            return None
        return JobOutcome(self.state, self.exit_code, self.signal, self.reason)

    def duration_seconds(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds())


@dataclass(frozen=True)
class JobRecord(_HowItEnded):
    """A job as the store knows it: its spec plus everything learned while it ran."""

    id: int
    spec: JobSpec
    state: JobState
    created_at: datetime
    queue_position: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_dir: str | None = None
    pid: int | None = None
    pid_start_time: float | None = None
    gpu_indices: tuple[int, ...] = ()
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    slurm_job_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    claimer_pid: int | None = None
    """The process that moved it QUEUED -> STARTING (the app or `jobs run`): while that process lives
    and no supervisor exists yet, the job is being launched; once it is gone, the launch failed."""
    claimer_start_time: float | None = None


@dataclass(frozen=True)
class StateTransition:
    """One stored step of a job's life."""

    job_id: int
    old: JobState | None
    new: JobState
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class JobSummary(_HowItEnded):
    """One row of the Jobs table: what a list shows, read without parsing the whole spec.

    Lists of thousands of past jobs use this; a JobRecord is loaded for the one job in view.
    """

    id: int
    name: str
    kind: str
    target: JobTarget
    cluster: str | None
    state: JobState
    queue_position: int | None
    project_id: int | None
    project_name: str | None
    started_at: datetime | None
    finished_at: datetime | None
    gpu_indices: tuple[int, ...]
    gpus_requested: int
    exit_code: int | None
    signal: int | None
    reason: str
    command: str
    """The argv as JSON text (for search and tooltips)."""
    sweep_id: str | None = None
    """The sweep a project job is a member of (`meta["sweep"]["id"]`), None for other jobs."""
    slurm_job_id: str | None = None
    array_tasks: tuple[tuple[str, str], ...] = ()
    """A sweep run as one SLURM job array: each task's (`46_0`, state) — SLURM's word while open
    (PENDING, RUNNING), our final state's value once it ended."""
