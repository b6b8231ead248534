"""SLURM submissions and states.  Standard library only.

The Clusters area (slurm/ adapter, ClusterService) owns the behaviour; this module fixes the shape of
a submission so Projects (launch on a cluster) and Clusters agree on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from msquant_desktop.domain import slurm_log
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
    no_repo: bool = False
    """A job without a repository: `command` runs in the job's own folder (no clone, no commit)."""
    uploads: tuple[tuple[str, str], ...] = ()
    """(local file, name in the job's folder) copied by SFTP before sbatch runs (`no_repo` jobs)."""
    project_id: int | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default=())
    array: str | None = None  # a job array's task expression, e.g. "0-9%2": one task per index
    account: str | None = None  # --account; None: the profile's (if any)
    qos: str | None = None  # --qos; None: the profile's
    constraint: str | None = None  # --constraint; None: the profile's
    sbatch_lines: tuple[str, ...] = ()  # extra `#SBATCH --opt[=value]` lines, after the profile's
    edited_script: str | None = None  # the preview as the user edited it (see slurm.script)
    task_overrides: tuple[tuple[str, ...], ...] = ()
    """A sweep as one job array: task i runs `command` with `task_overrides[i]` (and `overrides` is
    empty).  The script reads them from a file uploaded with the job, never from its own text."""


# ------------------------------------------------------------------------------------------------
# Submission steps: how far a submission got, so nothing is sent twice or behind the user's back
# ------------------------------------------------------------------------------------------------

SUBMIT_STORED = "stored"
"""The job is in the store; nothing has been sent to the cluster."""
SUBMIT_UPLOADED = "uploaded"
"""The script is on the cluster; sbatch has not been run."""
SUBMIT_SBATCH_SENT = "sbatch-sent"
"""Recorded (durably) just before sbatch is run: from here on the job may exist on the cluster."""
SUBMIT_ANSWERED = "answered"
"""sbatch answered: with a job id (submitted) or a refusal (never submitted)."""
SUBMIT_STEPS = (SUBMIT_STORED, SUBMIT_UPLOADED, SUBMIT_SBATCH_SENT, SUBMIT_ANSWERED)


def sbatch_may_have_run(step: str | None) -> bool:
    """Whether a submission that reached `step` may have created a job on the cluster.

    The step is stored before it is taken, so the stored step is never behind what happened: a job
    recorded `stored` or `uploaded` has certainly not been given to sbatch.  A job without a step (stored
    by an older version) may have been.
    """
    return step not in (SUBMIT_STORED, SUBMIT_UPLOADED)


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
    python: str | None = None
    """A Python on the cluster that has llmcompressor (quantization and evaluation jobs)."""
    accounting: str = "auto"
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_lines: tuple[str, ...] = ()
    signal_lead_s: int = 300
    """`--signal=B:USR1@N`: the batch shell hears SIGUSR1 this many seconds before the time limit
    (0: no signal)."""
    serve_template: str | None = None
    """The serve command of a serving replica on this cluster (`{model}`, `{tp}`, `{port}`,
    `{replica}` filled in; services/serve_placement.py); None: `vllm serve` with those."""


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
    """How a SLURM job ended, which source said so and what the other sources said.

    `source` is the source whose answer was kept ("sacct", "scontrol", "squeue", "marker", "log");
    `decided_by` says it in words for the details ("sacct", "exit marker", "log: oom_kill");
    `evidence` lists what every source that answered said, in the order they were asked.
    """

    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    source: str = ""
    decided_by: str = ""
    evidence: tuple[str, ...] = ()


def final_from_slurm(raw_state: str, exit_text: str, source: str, reason: str = "") -> FinalState | None:
    """A final state from sacct/scontrol/squeue fields, or None when the job is not final there yet."""
    if not is_final_slurm_state(raw_state):
        return None
    word = normalize_slurm_state(raw_state)
    state = _FINAL_MAP[word]
    code, sig = parse_exit_code(exit_text)
    if state is JobState.COMPLETED and code not in (0, None):
        state = JobState.FAILED  # never trust "completed" over a non-zero exit code
    if state is JobState.FAILED and code == 0 and sig:
        state = JobState.CANCELLED
    detail = reason if reason and reason not in ("None", "(null)") else ""
    if word == "PREEMPTED" and not detail:
        detail = "preempted"
    said = f"{source}: {raw_state.strip()} {exit_text.strip()}".rstrip()
    return FinalState(state, code, sig, detail, source, source, (said,))


# The sbatch template writes `exit=<rc> signal=<NAME or empty> stage=<step> at=<UTC>` from its trap.
_SIGNALS = {"TERM": 15, "INT": 2, "HUP": 1, "USR1": 10, "USR2": 12, "KILL": 9, "XCPU": 24}
# The step of the script that was running when it exited (older markers have none).
MARKER_STAGES = {
    "clone": "cloning the repository failed",
    "checkout": "checking out the commit failed",
    "preamble": "the cluster profile's preamble failed",
    "command": "",
}


TIME_LIMIT_WARNED = "stopped at its time-limit warning (SIGUSR1 from --signal=B:USR1@N)"
"""The reason of a job whose batch shell got the USR1 that the profile's `signal_lead_s` asks SLURM to
send before the time limit (the template's trap then exits 138)."""


def final_from_marker(text: str) -> FinalState | None:
    """The exit marker's content as a final state; None when it is missing or unreadable.

    A marker with a signal only says "terminated": the log may know better (time limit, OOM), see
    `decide_final`.
    """
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    try:
        code = int(fields["exit"])
    except (KeyError, ValueError):
        return None
    said = (
        "exit marker: " + " ".join(f"{k}={fields[k]}" for k in ("exit", "signal", "stage") if k in fields),
    )
    sig_name = fields.get("signal", "")
    stage_reason = MARKER_STAGES.get(fields.get("stage", ""), "")
    if sig_name == "USR1":  # only our `--signal=B:USR1@N` sends it: the time limit was near
        return FinalState(
            JobState.TIMEOUT, code, _SIGNALS["USR1"], TIME_LIMIT_WARNED, "marker", "exit marker", said
        )
    if sig_name:
        return FinalState(
            JobState.CANCELLED,
            code,
            _SIGNALS.get(sig_name),
            f"terminated by SIG{sig_name}",
            "marker",
            "exit marker",
            said,
        )
    if code == 0:
        return FinalState(JobState.COMPLETED, 0, None, "", "marker", "exit marker", said)
    if code > 128 and code - 128 in (9,):
        return FinalState(
            JobState.KILLED, code, code - 128, "killed (SIGKILL)", "marker", "exit marker", said
        )
    return FinalState(JobState.FAILED, code, None, stage_reason, "marker", "exit marker", said)


_LOG_STATES = {
    slurm_log.OOM: JobState.OUT_OF_MEMORY,
    slurm_log.TIME_LIMIT: JobState.TIMEOUT,
    slurm_log.PREEMPTION: JobState.CANCELLED,
    slurm_log.NODE_FAILURE: JobState.NODE_FAIL,
    slurm_log.TASK_FAILURE: JobState.FAILED,
    slurm_log.CANCEL: JobState.CANCELLED,
}


def _from_evidence(evidence: slurm_log.LogEvidence) -> FinalState:
    return FinalState(
        _LOG_STATES[evidence.cause],
        None,
        None,
        slurm_log.REASONS[evidence.cause],
        "log",
        f"log: {evidence.cause}",
        (f"log: {evidence.line}",),
    )


def final_from_log(text: str) -> FinalState | None:
    """What Slurm's own lines in the job's output say, weighing the whole tail (see slurm_log)."""
    best = slurm_log.strongest(slurm_log.read_evidence(text))
    return _from_evidence(best) if best is not None else None


# Controller states that name their cause themselves: nothing we hold knows better.
_CONTROLLER_KNOWS_CAUSE = (JobState.TIMEOUT, JobState.OUT_OF_MEMORY, JobState.NODE_FAIL)
# Log causes that explain a cancelled, failed or killed job better than those words do.
_LOG_EXPLAINS_END = (slurm_log.OOM, slurm_log.TIME_LIMIT, slurm_log.NODE_FAILURE)


def _with(final: FinalState, evidence: tuple[str, ...], **changes: Any) -> FinalState:
    return dataclasses.replace(final, evidence=evidence, **changes)


def _marker_failed(marker: FinalState | None) -> bool:
    return marker is not None and (marker.signal is not None or marker.exit_code not in (0, None))


def decide_final(
    controller: FinalState | None, marker: FinalState | None, log_text: str = ""
) -> FinalState | None:
    """The final state from all the evidence; None while nothing says the job is over.

    `controller` is the first of sacct, scontrol, squeue that knows the job's end (asked in that
    order by the caller); `marker` is our exit marker (the script's real exit status, written by its
    trap); `log_text` is the tail of the job's output.  The precedence, each rule tested on recorded
    real outputs (tests/slurm/test_final_state_chain.py):

    1. The controller's TIMEOUT, OUT_OF_MEMORY and NODE_FAIL stand: they name their own cause.
    2. A controller CANCELLED / FAILED / KILLED is refined by the log: an OOM kill, time limit or node
       failure there names the real cause; a task failure turns CANCELLED into FAILED; preemption
       becomes the reason.  A plain cancel line never turns FAILED into CANCELLED (srun prints one
       after any failed step).  A FAILED without an exit code (or 0) takes the marker's code: a git
       clone failure is "exit 128", not "exit 0".
       A marker that says the time-limit warning came (SIGUSR1, see `TIME_LIMIT_WARNED`) makes it
       TIMEOUT: sacct says FAILED (exit 10) for a script its trap ended early.
    3. A controller COMPLETED is corrected by the marker when the script exited non-zero or by a
       signal (sacct has been seen to say COMPLETED 0:0 for a script that ran `exit 1`); the log then
       names the cause if it has one.  Without a marker, only a job-wide log line (JOB …, the batch
       step) overrides COMPLETED.
    4. No controller answer (no accounting, aged out): a clean marker means COMPLETED; a marker
       with a signal or a non-zero exit takes the log's cause when the log has one (a plain cancel line
       does not explain a non-zero exit); without a marker the log alone decides.
    """
    verdict = slurm_log.strongest(slurm_log.read_evidence(log_text)) if log_text else None
    said_log = (f"log: {verdict.line}",) if verdict else ()
    said = (controller.evidence if controller else ()) + (marker.evidence if marker else ()) + said_log

    def from_log(base: FinalState | None) -> FinalState:
        assert verdict is not None
        code = base.exit_code if base else None
        sig = base.signal if base else None
        return _with(_from_evidence(verdict), said, exit_code=code, signal=sig)

    if controller is not None:
        state = controller.state
        if state in _CONTROLLER_KNOWS_CAUSE:
            if controller.exit_code in (0, None) and _marker_failed(marker):
                assert marker is not None
                return _with(controller, said, exit_code=marker.exit_code)
            return _with(controller, said)
        if state in (JobState.CANCELLED, JobState.FAILED, JobState.KILLED):
            if verdict and verdict.cause in _LOG_EXPLAINS_END:
                return from_log(controller)
            if verdict and verdict.cause == slurm_log.TASK_FAILURE and state is JobState.CANCELLED:
                return from_log(controller)
            if marker is not None and marker.state is JobState.TIMEOUT:  # warned of the time limit
                return _with(marker, said)
            if verdict and verdict.cause == slurm_log.PREEMPTION and state is JobState.CANCELLED:
                return _with(
                    controller, said, reason="preempted", decided_by=f"{controller.source} + log: preemption"
                )
            if (
                state is JobState.FAILED
                and controller.exit_code in (0, None)
                and marker is not None
                and marker.signal is None
                and marker.exit_code not in (0, None)
            ):
                return _with(
                    controller,
                    said,
                    exit_code=marker.exit_code,
                    reason=marker.reason or controller.reason,
                    source="marker",
                    decided_by="exit marker",
                )
            return _with(controller, said)
        if state is JobState.COMPLETED:
            if marker is not None and _marker_failed(marker):
                if verdict and verdict.cause in (*_LOG_EXPLAINS_END, slurm_log.PREEMPTION):
                    return from_log(marker)
                return _with(marker, said)
            if (
                marker is None
                and verdict
                and verdict.scope in ("job", "batch")
                and verdict.cause != slurm_log.CANCEL
            ):
                return from_log(controller)
            return _with(controller, said)
        return _with(controller, said)
    if marker is not None:
        if not _marker_failed(marker):
            return _with(marker, said)
        if verdict and (marker.signal is not None or verdict.cause != slurm_log.CANCEL):
            return from_log(marker)
        return _with(marker, said)
    if verdict is not None:
        return from_log(None)
    return None


# An array job ends as the worst of its tasks did: the first of these states that any task reached.
# Resource and node causes first (they name why work was lost), then a task's own failure, then what
# was done to it; COMPLETED only when every task completed.
ARRAY_PRECEDENCE = (
    JobState.OUT_OF_MEMORY,
    JobState.TIMEOUT,
    JobState.NODE_FAIL,
    JobState.FAILED,
    JobState.KILLED,
    JobState.LOST,
    JobState.CANCELLED,
    JobState.COMPLETED,
)


def _task_order(index: str) -> tuple[int, str]:
    return (int(index), "") if index.isdigit() else (1 << 62, index)


def decide_array_final(array_id: str, finals: dict[str, FinalState]) -> FinalState:
    """The final state of job array `array_id` from its tasks' final states (index -> FinalState).

    Call it once every task has ended.  All COMPLETED -> COMPLETED (exit 0); otherwise the first
    state of ARRAY_PRECEDENCE that some task reached, with the exit code and signal of the lowest
    such task, and a reason that names it and counts the rest ("task 46_1 FAILED (exit 3); 2 of 3
    tasks completed").  A state outside the precedence (none today) counts as FAILED.
    """
    if not finals:
        raise ValueError(f"array {array_id}: no task has ended")
    order = sorted(finals, key=_task_order)
    counts: dict[JobState, int] = {}
    for index in order:
        counts[finals[index].state] = counts.get(finals[index].state, 0) + 1
    rank = {state: i for i, state in enumerate(ARRAY_PRECEDENCE)}
    worst = min(counts, key=lambda state: rank.get(state, rank[JobState.FAILED]))
    completed = counts.get(JobState.COMPLETED, 0)
    tally = ", ".join(
        f"{n} {state.value}" for state, n in sorted(counts.items(), key=lambda i: rank.get(i[0], 99))
    )
    said = (f"tasks: {tally}",)
    if worst is JobState.COMPLETED:
        return FinalState(
            JobState.COMPLETED, 0, None, f"all {len(order)} tasks completed", "tasks", "tasks", said
        )
    first = next(index for index in order if finals[index].state is worst)
    task = finals[first]
    code = f" (exit {task.exit_code})" if task.exit_code not in (None, 0) else ""
    why = f": {task.reason}" if task.reason else ""
    reason = f"task {array_id}_{first} {worst.value}{code}{why}; {completed} of {len(order)} tasks completed"
    return FinalState(
        worst,
        task.exit_code,
        task.signal,
        reason,
        "tasks",
        f"tasks: {array_id}_{first} ({task.decided_by or task.source})",
        said + tuple(f"{array_id}_{first} {line}" for line in task.evidence),
    )


def next_poll_interval(active_jobs: int, idle_polls: int, base: float = 2.0, ceiling: float = 60.0) -> float:
    """Seconds until the next squeue for one cluster: `base` while jobs are active, doubling per idle
    poll up to `ceiling` when nothing is."""
    if active_jobs > 0:
        return base
    return min(ceiling, base * float(2 ** min(idle_polls + 1, 10)))


def reconnect_delay(failures: int, base: float = 1.0, ceiling: float = 60.0) -> float:
    """Backoff between reconnect attempts: 1, 2, 4, ... seconds, at most `ceiling`."""
    return min(ceiling, base * float(2 ** max(0, failures - 1)))
