"""SLURM submissions and states.  Standard library only.

The Clusters area (slurm/ adapter, ClusterService) owns the behaviour; this module fixes the shape of
a submission so Projects (launch on a cluster) and Clusters agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msquant_desktop.domain.jobs import JobState


@dataclass(frozen=True)
class SlurmSubmission:
    """Everything needed to run a project's command at a pinned commit on a cluster.

    `command` is an argv (never a shell string); `overrides` are Hydra `key=value` strings, each
    passed as one quoted argument after the command.
    """

    cluster: str
    job_name: str
    repo_url: str
    commit: str
    command: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    partition: str | None = None
    gpu_type: str | None = None
    gpus: int = 0
    cpus: int = 1
    memory: str | None = None  # e.g. "16G"
    time_limit: str | None = None  # e.g. "01:00:00"
    project_id: int | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default=())


# ------------------------------------------------------------------------------------------------
# Cluster profiles
# ------------------------------------------------------------------------------------------------

ACCOUNTING_MODES = ("auto", "off")


@dataclass(frozen=True)
class ClusterProfile:
    """How to reach one SLURM cluster and what we may use on it.

    `host` is `user@host`, `host` or an alias of `~/.ssh/config`.  `accounting` is "auto" (use `sacct`
    when the cluster has it, detected once per connection) or "off" (never ask `sacct`).
    """

    name: str
    host: str
    workspace: str
    port: int | None = None
    ssh_key_path: str | None = None
    known_hosts: str | None = None
    allowed_partitions: tuple[str, ...] = ()
    allowed_gpu_types: tuple[str, ...] = ()
    preamble: str = ""
    sbatch_template: str | None = None
    slurm_bin: str | None = None
    accounting: str = "auto"


# ------------------------------------------------------------------------------------------------
# States: pure policy
# ------------------------------------------------------------------------------------------------

# What a SLURM state means for us.  Anything not named here is UNKNOWN (None), never "completed".
_ACTIVE_MAP: dict[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "SUSPENDED": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "CONFIGURING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
}
_FINAL_MAP: dict[str, JobState] = {
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "NODE_FAIL": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "DEADLINE": JobState.TIMEOUT,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PREEMPTED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "SPECIAL_EXIT": JobState.FAILED,
}


def normalize_slurm_state(raw: str) -> str:
    """`CANCELLED by 1001` / `CANCELLED+` / ` running ` -> `CANCELLED` / `RUNNING`."""
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    return word


def map_slurm_state(raw: str) -> JobState | None:
    """Our state for a SLURM state string, or None when it is not one we know (UNKNOWN)."""
    word = normalize_slurm_state(raw)
    return _ACTIVE_MAP.get(word) or _FINAL_MAP.get(word)


def is_final_slurm_state(raw: str) -> bool:
    return normalize_slurm_state(raw) in _FINAL_MAP


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """SLURM's `EXIT:SIGNAL` (e.g. `3:0`, `0:15`) as (exit code, signal); (None, None) if unreadable."""
    parts = text.strip().split(":")
    try:
        code = int(parts[0])
        sig = int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None, None
    return code, (sig or None)


@dataclass(frozen=True)
class FinalState:
    """How a SLURM job ended and which source said so (sacct, scontrol, marker, log)."""

    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    source: str = ""


def final_from_slurm(raw_state: str, exit_text: str, source: str, reason: str = "") -> FinalState | None:
    """A final state from sacct/scontrol fields, or None when the job is not final there yet."""
    if not is_final_slurm_state(raw_state):
        return None
    state = _FINAL_MAP[normalize_slurm_state(raw_state)]
    code, sig = parse_exit_code(exit_text)
    if state is JobState.COMPLETED and code not in (0, None):
        state = JobState.FAILED  # never trust "completed" over a non-zero exit code
    if state is JobState.FAILED and code == 0 and sig:
        state = JobState.CANCELLED
    detail = reason if reason and reason != "None" else ""
    return FinalState(state, code, sig, detail, source)


# The sbatch template writes `exit=<rc> signal=<NAME or empty>` into the exit marker from its trap.
_SIGNALS = {"TERM": 15, "INT": 2, "HUP": 1, "USR1": 10, "USR2": 12, "KILL": 9, "XCPU": 24}


def final_from_marker(text: str) -> FinalState | None:
    """The exit marker's content as a final state; None when it is missing or unreadable.

    A marker with a signal only says "terminated": the log may know better (time limit, OOM), so the
    caller consults the log first for those (see `final_from_log`).
    """
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    try:
        code = int(fields["exit"])
    except (KeyError, ValueError):
        return None
    sig_name = fields.get("signal", "")
    if sig_name:
        return FinalState(
            JobState.CANCELLED, code, _SIGNALS.get(sig_name), f"terminated by SIG{sig_name}", "marker"
        )
    if code == 0:
        return FinalState(JobState.COMPLETED, 0, None, "", "marker")
    if code > 128 and code - 128 in (9,):
        return FinalState(JobState.KILLED, code, code - 128, "killed (SIGKILL)", "marker")
    return FinalState(JobState.FAILED, code, None, "", "marker")


def final_from_log(text: str) -> FinalState | None:
    """slurmstepd's own lines in the job's output: time limit, cancellation, OOM, node failure."""
    for line in reversed(text.splitlines()[-200:]):
        if "slurmstepd" not in line:
            continue
        upper = line.upper()
        if "DUE TO TIME LIMIT" in upper:
            return FinalState(JobState.TIMEOUT, None, None, "time limit reached", "log")
        if "OOM-KILL" in upper or "OUT OF MEMORY" in upper or "OUT-OF-MEMORY" in upper:
            return FinalState(JobState.OUT_OF_MEMORY, None, None, "out of memory", "log")
        if "DUE TO NODE FAILURE" in upper:
            return FinalState(JobState.NODE_FAIL, None, None, "node failure", "log")
        if "DUE TO PREEMPTION" in upper:
            return FinalState(JobState.CANCELLED, None, None, "preempted", "log")
        if " CANCELLED AT " in upper:
            return FinalState(JobState.CANCELLED, None, None, "cancelled", "log")
    return None


def next_poll_interval(active_jobs: int, idle_polls: int, base: float = 2.0, ceiling: float = 60.0) -> float:
    """Seconds until the next squeue for one cluster: `base` while jobs are active, doubling per idle
    poll up to `ceiling` when nothing is."""
    if active_jobs > 0:
        return base
    return min(ceiling, base * float(2 ** min(idle_polls + 1, 10)))


def reconnect_delay(failures: int, base: float = 1.0, ceiling: float = 60.0) -> float:
    """Backoff between reconnect attempts: 1, 2, 4, ... seconds, at most `ceiling`."""
    return min(ceiling, base * float(2 ** max(0, failures - 1)))
