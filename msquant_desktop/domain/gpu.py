"""GPU and host readings, throttle reasons in words, and the pure orphan policy.  Standard library only.

A value that NVML could not give (no such function in this driver, not supported by this board, the
GPU fell off the bus) is `None` in a snapshot: "not available" is a value the UI shows as "—", never
an exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from msquant_desktop.domain.jobs import JobState

# ------------------------------------------------------------------------------------------------
# Snapshots
# ------------------------------------------------------------------------------------------------


MIN_SAMPLE_INTERVAL_S = 0.25
"""The fastest sampling the GPU service and `gpu --watch` allow."""


@dataclass(frozen=True)
class GpuProcess:
    """A process that holds a context on a GPU."""

    pid: int
    gpu_index: int
    used_memory_bytes: int | None


@dataclass(frozen=True)
class GpuSnapshot:
    """One GPU at one instant.  Every metric is None when NVML could not say."""

    index: int
    name: str
    uuid: str
    utilization_gpu: float | None = None
    utilization_memory: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    fan_percent: float | None = None
    throttle_mask: int | None = None
    processes: tuple[GpuProcess, ...] = ()
    error: str | None = None
    """Set when the whole GPU stopped answering (e.g. "GPU is lost"); metrics are then all None."""

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes

    @property
    def throttle_words(self) -> tuple[str, ...]:
        return throttle_words(self.throttle_mask)


@dataclass(frozen=True)
class HostSnapshot:
    """The machine itself: so the tab is useful without any GPU."""

    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0


@dataclass(frozen=True)
class JobMarker:
    """Our job markers (markers.py) as found in a process's environment."""

    job_id: int | None
    """None when MSQUANT_JOB_ID is present but not a number."""
    run_dir: str | None
    store: str | None

    def describe(self) -> str:
        return f"job {self.job_id}" if self.job_id is not None else "job ?"


@dataclass(frozen=True)
class ProcessDetails:
    """A process on a GPU as the process table shows it."""

    pid: int
    gpu_index: int
    used_memory_bytes: int | None
    user: str
    command: str
    ppid: int | None
    job: JobMarker | None
    cpu_percent: float | None = None
    """Since the previous sample (100 = one core); None on a process's first sample."""
    rss_bytes: int | None = None
    start_time: float | None = None
    """Seconds after boot: what "Terminate…" checks so it never signals a recycled pid."""


@dataclass(frozen=True)
class JobProcess:
    """One process of one of our jobs (found by its marker), placed in that job's process tree."""

    job_id: int | None
    pid: int
    ppid: int
    depth: int
    """0 for the job's top process (its supervisor), 1 for its children, ..."""
    command: str
    start_time: float
    cpu_percent: float | None = None
    rss_bytes: int | None = None


def job_process_trees(processes: list[JobProcess]) -> tuple[JobProcess, ...]:
    """Each job's processes as a tree, depth-first (parents before children, pids in order); jobs by id.

    A process whose parent is not one of the same job's is a root (the supervisor, or an escapee)."""
    by_job: dict[int | None, list[JobProcess]] = {}
    for p in processes:
        by_job.setdefault(p.job_id, []).append(p)
    ordered: list[JobProcess] = []
    for job_id in sorted(by_job, key=lambda j: (j is None, j or 0)):
        members = by_job[job_id]
        pids = {p.pid for p in members}
        kids: dict[int, list[JobProcess]] = {}
        for p in members:
            kids.setdefault(p.ppid if p.ppid in pids else -1, []).append(p)
        stack = [(p, 0) for p in sorted(kids.get(-1, []), key=lambda p: p.pid, reverse=True)]
        while stack:
            p, depth = stack.pop()
            ordered.append(
                JobProcess(
                    p.job_id, p.pid, p.ppid, depth, p.command, p.start_time, p.cpu_percent, p.rss_bytes
                )
            )
            stack.extend(
                (c, depth + 1) for c in sorted(kids.get(p.pid, []), key=lambda c: c.pid, reverse=True)
            )
    return tuple(ordered)


@dataclass(frozen=True)
class GpuReading:
    """Everything one sampling tick saw."""

    timestamp: float
    """time.time() of the sample."""
    gpus: tuple[GpuSnapshot, ...]
    host: HostSnapshot | None
    unavailable: str | None = None
    """Why there are no GPUs at all (e.g. "No NVIDIA GPU found: NVML library not found"), else None."""
    driver_version: str | None = None
    processes: tuple[ProcessDetails, ...] = ()
    """The processes on all GPUs, with user, command and job (empty without GPUs)."""
    job_processes: tuple[JobProcess, ...] = ()
    """Our jobs' processes (GPU or not) as trees (`job_process_trees`), with CPU% and RSS."""


# ------------------------------------------------------------------------------------------------
# Throttle / clock-event reasons
# ------------------------------------------------------------------------------------------------

# Bit values are NVML's nvmlClocksEventReason* constants (stable across driver versions).
THROTTLE_REASONS: tuple[tuple[int, str, bool], ...] = (
    # (bit, words, is it a problem worth reporting)
    (0x0000000000000001, "idle", False),
    (0x0000000000000002, "application clocks setting", False),
    (0x0000000000000004, "power cap", True),
    (0x0000000000000008, "hardware slowdown", True),
    (0x0000000000000010, "sync boost", False),
    (0x0000000000000020, "thermal (software)", True),
    (0x0000000000000040, "thermal (hardware)", True),
    (0x0000000000000080, "power brake", True),
    (0x0000000000000100, "display clock setting", False),
)


def throttle_words(mask: int | None) -> tuple[str, ...]:
    """The reasons in `mask`, in words; empty when none (or unknown)."""
    if not mask:
        return ()
    words = [word for bit, word, _ in THROTTLE_REASONS if mask & bit]
    known = 0
    for bit, _, _ in THROTTLE_REASONS:
        known |= bit
    if mask & ~known:
        words.append(f"other (0x{mask & ~known:x})")
    return tuple(words)


def throttle_problems(mask: int | None) -> tuple[str, ...]:
    """Only the reasons that slow a run down against the user's will (thermal, power, slowdown)."""
    if not mask:
        return ()
    return tuple(word for bit, word, problem in THROTTLE_REASONS if problem and mask & bit)


def describe_throttle(mask: int | None) -> str:
    """For a table cell: "—" when unknown, "none" when clean, else the reasons joined."""
    if mask is None:
        return "—"
    words = throttle_words(mask)
    return ", ".join(words) if words else "none"


# ------------------------------------------------------------------------------------------------
# Orphan policy
# ------------------------------------------------------------------------------------------------


class OrphanReason(enum.StrEnum):
    JOB_NOT_ACTIVE = "job_not_active"
    JOB_UNKNOWN = "job_unknown"
    SUPERVISOR_GONE = "supervisor_gone"
    GPU_HOLDER_REPARENTED = "gpu_holder_reparented"


@dataclass(frozen=True)
class MarkedProcessFacts:
    """What the doctor knows about one process that carries our job marker.

    `job_state` is None when the store could not tell (no such store file, no such job).
    `supervisor_alive` is None when the store recorded no supervisor pid for the job.
    """

    pid: int
    job_id: int | None
    job_state: JobState | None
    store_exists: bool
    supervisor_alive: bool | None


def orphan_reason(facts: MarkedProcessFacts) -> tuple[OrphanReason, str] | None:
    """Why a marked process is an orphan of ours, with a sentence for the user; None when it is not.

    Preconditions: the process carries MSQUANT_JOB_ID (markers.py).  A process whose job is active
    and whose supervisor is alive (or not recorded yet: a job that is just starting) is never an orphan.
    """
    job = f"job {facts.job_id}" if facts.job_id is not None else "an unknown job"
    if facts.job_id is None:
        return OrphanReason.JOB_UNKNOWN, "its job marker is not a job id"
    if not facts.store_exists:
        return OrphanReason.JOB_UNKNOWN, f"the store of {job} no longer exists"
    if facts.job_state is None:
        return OrphanReason.JOB_UNKNOWN, f"{job} is not in its store"
    if not facts.job_state.is_active:
        return OrphanReason.JOB_NOT_ACTIVE, f"{job} is {facts.job_state.value.lower()}"
    if facts.supervisor_alive is False:
        return OrphanReason.SUPERVISOR_GONE, f"the supervisor of {job} is gone"
    return None


def gpu_holder_reparented(ppid: int, subreapers: frozenset[int] = frozenset()) -> bool:
    """A process holding GPU memory whose parent is init (or a subreaper that adopted it)."""
    return ppid == 1 or ppid in subreapers


def unowned_memory_mib(gpu: GpuSnapshot, slack_mib: float = 512.0) -> float | None:
    """GPU memory in use with no process listed, in MiB, when above `slack_mib`; else None.

    The driver itself keeps a few hundred MiB per board, hence the slack.  Meaningless when the
    process list is not available, so only call it for a GPU whose query succeeded.
    """
    if gpu.processes or gpu.memory_used_bytes is None or gpu.error:
        return None
    used_mib = gpu.memory_used_bytes / 2**20
    return used_mib if used_mib > slack_mib else None


# ------------------------------------------------------------------------------------------------
# Doctor findings
# ------------------------------------------------------------------------------------------------


class FindingKind(enum.StrEnum):
    ORPHAN = "orphan"
    """A process with our job marker whose job is over or whose supervisor is gone."""
    REPARENTED_GPU_HOLDER = "reparented_gpu_holder"
    """A process holding GPU memory whose parent is init."""
    UNOWNED_MEMORY = "unowned_memory"
    """GPU memory in use with no process listed."""
    THROTTLING = "throttling"
    """A GPU slowed down by heat, its power cap or a hardware slowdown."""
    GPU_LOST = "gpu_lost"
    """A GPU that stopped answering."""


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    message: str
    pid: int | None = None
    start_time: float | None = None
    """The process's start time in seconds after boot (procs.identity), so a clean-up never hits a
    recycled pid."""
    gpu_index: int | None = None
    cleanable: bool = False
    """A process of the current user that the doctor may end (after the user confirms)."""
    command: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "pid": self.pid,
            "gpu_index": self.gpu_index,
            "cleanable": self.cleanable,
            "command": self.command,
        }


@dataclass(frozen=True)
class DoctorReport:
    findings: tuple[Finding, ...]
    gpu_status: str
    """"2 GPUs, driver ..." or why there are none."""

    @property
    def healthy(self) -> bool:
        return not self.findings

    @property
    def cleanable(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.cleanable)


@dataclass(frozen=True)
class CleanupOutcome:
    """What happened to one process tree the user asked to end."""

    pid: int
    ended: tuple[int, ...]
    """Pids of the tree that are gone now (TERM or KILL)."""
    killed: tuple[int, ...]
    """The subset that needed SIGKILL after the grace period."""
    skipped: str = ""
    """Why nothing was done (not ours, pid recycled, already gone), else empty."""

    def describe(self) -> str:
        if self.skipped:
            return f"pid {self.pid}: {self.skipped}"
        text = f"pid {self.pid}: ended {len(self.ended)} process(es)"
        return text + (f", {len(self.killed)} needed SIGKILL" if self.killed else "")
