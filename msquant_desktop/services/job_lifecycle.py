"""The life of a local job, decided in one place.

Qt-free on purpose: the app's `JobService` (a thin QtCore adapter that turns these results into
signals), the `jobs` CLI and the supervisor (`_supervise`) all call these functions, so a job ends in
the same state with the same reason whoever happens to be watching — the way pueue's daemon is the
only writer of task state.  Every function takes the caller's `JobRepository` (one connection per
thread) and returns what happened as a value; nothing here emits, sleeps on the GUI's behalf or
decides what a caller shows.

The steps of a job's life and who calls them:

    claim()                 app / supervisor / CLI  QUEUED -> STARTING (claimer recorded), or rejected
    prepare_launch()        app / `jobs run`        run folder + launch.json; refuses a cancelled job
    spawn_supervisor()      app (thread) / `jobs run`  the supervisor in its own session, or why it cannot start
    fail_to_start()         app / `jobs run`        the supervisor could not be spawned
    mark_running()          supervisor (app too)    STARTING -> RUNNING with the supervisor's identity
    finish_from_exit()      supervisor / app / any  the exit record -> the final state
    inspect()               app / every CLI read    an active job nobody here watches: adopt, wait, settle
    request_cancel()        app / `jobs cancel`     QUEUED -> CANCELLED, or CANCELLING + TERM to the supervisor
    cancel_unsupervised()   app (thread) / CLI      no supervisor: stop the marked processes, then CANCELLED
    delete()                app                     forget a final job; the caller removes its folder
    advance_queue()         supervisor / CLI        start queued jobs while slots are free, detached
                                                    (the app claims and spawns its own on a launcher
                                                    thread: services/job_launcher.py)

Blocking work (waiting out a grace period, removing folders) is handed back as a value, so the app can
run it on a thread and the CLI inline.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.config.paths import AppPaths
from msquant_desktop.domain.jobs import JobRecord, JobState, JobTarget
from msquant_desktop.domain.runfiles import SUPERVISOR_FILE
from msquant_desktop.domain.runs import ExitRecord, outcome_from_exit
from msquant_desktop.domain.secrets import extra_patterns, release_secrets
from msquant_desktop.domain.settings import Settings
from msquant_desktop.procs import identity, kill, tree
from msquant_desktop.runtime import self_command
from msquant_desktop.store import StoreError
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.store.run_folders import (
    full_disk_words,
    last_event_of_type,
    log_end_offset,
    prepare_run,
    read_events,
    read_exit_record,
)
from msquant_desktop.supervisor import control

LEFTOVER_GRACE_SECONDS = 1.0
"""Processes left by a vanished supervisor get TERM, this long, then KILL (nobody asked for them)."""


# -- identities --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessIdentity:
    """A live process as the store keeps it: pid and start time (never the pid alone)."""

    pid: int
    start_time: float | None

    @classmethod
    def of_this_process(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(pid, identity.start_time(pid))

    def alive(self) -> bool:
        """Still the same process (a reused pid has another start time)."""
        return identity.alive(self.pid) and identity.same_start(
            identity.start_time(self.pid), self.start_time
        )


# -- claiming and launching --------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """A STARTING job whose run folder is ready: spawn `supervisor_argv` with `env` in `run_dir`."""

    record: JobRecord
    run_dir: Path
    env: dict[str, str]


def claim(
    repo: JobRepository,
    max_running: int,
    gpu_count: int,
    claimer: ProcessIdentity,
    only_job: int | None = None,
) -> JobRecord | None:
    """Take the head of the local queue in one store transaction, or None when nothing may start.

    `only_job`: claim only when the queue's decision is about that job — decided inside the same
    transaction, so two claimers cannot both win.  A head that
    can never run comes back FAILED_TO_START (the queue moves on); callers launch only STARTING ones.
    """
    _decision, record = repo.claim_next(
        max_running, gpu_count, claimer=(claimer.pid, claimer.start_time), only_job=only_job
    )
    return record


def prepare_launch(
    repo: JobRepository,
    record: JobRecord,
    runs_dir: Path,
    store_path: Path,
    grace_seconds: float,
    base_env: dict[str, str],
    secret_patterns: tuple[str, ...] = (),
    held_secrets: Mapping[str, str] | None = None,
) -> Launch | JobRecord:
    """Make the run folder and launch files of a claimed job.

    Returns the Launch, or the job's final record when it must not start: the run folder could not
    be made or a secret typed for it is no longer held (FAILED_TO_START), or the user cancelled it
    while it was being claimed (CANCELLED).  `held_secrets` are the values the queuing process
    kept out of the store (domain/secrets.hold_secrets).
    """
    current = repo.get(record.id)
    if current.state is JobState.CANCELLING:
        return _finish(repo, record.id, JobState.CANCELLED, "cancelled before it started")
    if current.state is not JobState.STARTING:
        return current
    env_pairs, missing = release_secrets(current.spec.env, held_secrets or {}, base_env)
    if missing:
        names = ", ".join(missing)
        return _finish(
            repo,
            record.id,
            JobState.FAILED_TO_START,
            f"the value of {names} was typed for this job and held only in the memory of the app that"
            " queued it, which has closed since (secrets are never stored); run it again and type it,"
            " or set it in the environment the app starts in",
        )
    current = dataclasses.replace(current, spec=dataclasses.replace(current.spec, env=env_pairs))
    try:
        prepared, env = prepare_run(
            repo, current, runs_dir, store_path, grace_seconds, base_env, secret_patterns
        )
    except OSError as exc:
        return _finish(repo, record.id, JobState.FAILED_TO_START, f"could not create the run folder: {exc}")
    except ValueError as exc:  # e.g. its GPU slots are not in this process's CUDA_VISIBLE_DEVICES
        return _finish(repo, record.id, JobState.FAILED_TO_START, str(exc))
    return Launch(prepared, Path(str(prepared.run_dir)), env)


def supervisor_problem(argv: list[str]) -> str | None:
    """Why the supervisor command cannot be executed (checked the same way by the app and the CLI,
    so both record the same reason), or None when it looks runnable."""
    program = argv[0]
    path = program if os.sep in program else shutil.which(program)
    if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
        return f"{program} is not an executable file"
    return None


# -- the queue without a window ------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueLimits:
    """What starting a queued job needs to know: the same limits and files the app uses."""

    max_running: int
    gpu_count: int
    runs_dir: Path
    store_path: Path
    grace_seconds: float
    secret_patterns: tuple[str, ...] = ()


def queue_limits(paths: AppPaths, settings: Settings, gpu_count: int) -> QueueLimits:
    """The limits of the store under `paths`, as the app applies them (its settings file)."""
    return QueueLimits(
        max_running=settings.max_concurrent_jobs,
        gpu_count=gpu_count,
        runs_dir=paths.runs_dir,
        store_path=paths.database,
        grace_seconds=settings.cancel_grace_seconds,
        secret_patterns=extra_patterns(settings.secret_env_names),
    )


Spawn = Callable[[Launch], str | None]
"""Starts the supervisor of a prepared launch; returns why it could not, or None."""

HANDOVER_TIMEOUT_S = 20.0
"""How long a detached launcher waits for its supervisor to announce itself (supervisor.json)."""


def advance_queue(
    repo: JobRepository,
    limits: QueueLimits,
    claimer: ProcessIdentity,
    base_env: dict[str, str],
    spawn: Spawn | None = None,
) -> list[JobRecord]:
    """Start queued local jobs while the limits allow: the queue moves on without an open window.

    Called by a supervisor once its job has ended (and no app reads it) and by the CLI commands that
    queue or wait for jobs; the app runs the same claims from its own loop.  Every claim is one store
    transaction (`claim`), so any number of these callers never exceed the limits together.  Returns
    each job it claimed, as it stands afterwards (STARTING/RUNNING, or final when it could not start).
    """
    launched: list[JobRecord] = []
    while True:
        queued = repo.queued()
        if queued and _needs_held_secrets(queued[0], base_env):
            # A value typed for it in the app lives only in the app's memory: the app starts it
            # (or, opened again after closing, ends it with the reason), never a process without it.
            return launched
        claimed = claim(repo, limits.max_running, limits.gpu_count, claimer)
        if claimed is None:
            return launched
        if claimed.state is JobState.STARTING:
            claimed = start_claimed(repo, claimed, limits, base_env, spawn or spawn_detached)
        launched.append(claimed)


def _needs_held_secrets(record: JobRecord, base_env: dict[str, str]) -> bool:
    """True when the job's env refers to a value held by the app that queued it (domain.secrets)."""
    return bool(release_secrets(record.spec.env, {}, base_env)[1])


_done_starting: set[tuple[int, str]] = set()
"""Jobs this process claimed and gave up starting (set.add is atomic under the GIL).
While this process lives, its other claims count as being started (Pending); one in here whose
record still says STARTING without a supervisor is settled like any other, so a failed start whose
FAILED_TO_START could not be written (a full disk) never waits forever for its own claimer.  Keyed
by id and creation time: a process (a test run) may open more than one store."""


def _start_key(record: JobRecord) -> tuple[int, str]:
    return record.id, record.created_at.isoformat()


def done_starting(record: JobRecord) -> None:
    """This process gave up starting the job and started no supervisor for it: called by every
    claimer on its failure paths (start_claimed, the app's launcher thread).  Never after a spawn:
    until the supervisor announces itself, its claim must stay Pending (a cancel meanwhile is
    left for the supervisor to find, never settled as a failed start)."""
    _done_starting.add(_start_key(record))


def start_claimed(
    repo: JobRepository, record: JobRecord, limits: QueueLimits, base_env: dict[str, str], spawn: Spawn
) -> JobRecord:
    """Run folder, launch files and a supervisor for a job this process claimed; its record after."""
    try:
        prepared = prepare_launch(
            repo,
            record,
            limits.runs_dir,
            limits.store_path,
            limits.grace_seconds,
            base_env,
            limits.secret_patterns,
        )
    except BaseException:
        done_starting(record)  # no supervisor: whoever looks next may settle it
        raise
    if not isinstance(prepared, Launch):
        return prepared
    problem = spawn(prepared)
    if problem is not None:
        done_starting(record)  # before the write, which a full disk can refuse
        return fail_to_start(repo, record.id, problem)
    return repo.get(record.id)


def spawn_supervisor(launch: Launch, *, piped: bool) -> subprocess.Popen[bytes] | str:
    """Start the job's supervisor in its own session (the job outlives whoever started it); the
    Popen, or why it could not start.  `piped`: its stdout and stderr come back through pipes (the
    app reads them live), else they go nowhere (the log is in the run folder either way).

    The same argv, check and session for the app and the CLI, so both record the same reasons.
    CPython starts it with vfork, so a caller on a thread does not hold the GIL while the page
    tables of a GUI-sized process are copied."""
    argv = self_command("_supervise", "--run-dir", str(launch.run_dir))
    problem = supervisor_problem(argv)
    if problem is not None:
        return problem
    output = subprocess.PIPE if piped else subprocess.DEVNULL
    try:
        return subprocess.Popen(  # detached on purpose: the job outlives this process
            argv,
            cwd=str(launch.run_dir),
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    except OSError as exc:
        return str(exc)


def spawn_detached(launch: Launch) -> str | None:
    """Start the supervisor (`spawn_supervisor`) and wait until it has announced itself in the run
    folder: until then this process is the job's only claimer, and a claimer that ended before its
    supervisor appeared means a failed start (`inspect`)."""
    child = spawn_supervisor(launch, piped=False)
    if isinstance(child, str):
        return child
    deadline = time.monotonic() + HANDOVER_TIMEOUT_S
    while control.supervisor_identity(launch.run_dir) is None:
        code = child.poll()
        if code is not None:
            return f"the supervisor exited at once (status {code})"
        if time.monotonic() > deadline:
            return None  # slow, not failed: its own start will be recorded when it comes
        time.sleep(0.02)
    return None


def fail_to_start(repo: JobRepository, job_id: int, detail: str) -> JobRecord:
    """The supervisor could not be started: nothing ran, so nothing can be left over."""
    return _finish(repo, job_id, JobState.FAILED_TO_START, f"the supervisor could not be started: {detail}")


def mark_running(
    repo: JobRepository, job_id: int, supervisor: ProcessIdentity, job_pid: int | None
) -> JobState:
    """The supervisor has started the job: STARTING -> RUNNING with the supervisor's identity.

    Called by the supervisor itself (so every job that ran has a RUNNING step and a start time,
    however fast it ends and whoever watches) and, as a fallback, by the app when it sees the
    supervisor's `started` message.  Returns the job's state afterwards; CANCELLING means the user
    cancelled while it was starting and the supervisor should stop the job now.
    """
    record = repo.find(job_id)
    if record is None:
        return JobState.LOST
    if record.state is JobState.STARTING:
        note = f"job pid {job_pid}" if job_pid else "supervisor started"
        record = repo.transition(
            job_id, JobState.RUNNING, note, pid=supervisor.pid, pid_start_time=supervisor.start_time
        )
    elif record.state is JobState.CANCELLING and record.pid is None:
        repo.update(job_id, pid=supervisor.pid, pid_start_time=supervisor.start_time, started_at=_now())
    return record.state


# -- the end ------------------------------------------------------------------------------------------
def finish_from_exit(repo: JobRepository, job: JobRecord, exit_record: ExitRecord, note: str) -> JobRecord:
    """Record the final state an exit record means (the first writer wins; later ones change nothing).

    The only place where "exit record -> final state" is decided: `domain.runs.outcome_from_exit`
    gives the state and its reason (with the job kind's own explanation), the run folder's last
    `result` event is kept with it.
    """
    outcome = outcome_from_exit(exit_record, job.spec.kind)
    reason = "; ".join(r for r in (outcome.reason, storage_words(exit_record)) if r)
    fields: dict[str, Any] = {"exit_code": outcome.exit_code, "signal": outcome.signal, "reason": reason}
    if job.run_dir:
        result = last_event_of_type(read_events(Path(job.run_dir)), "result")
        if result is not None:
            fields["result"] = result
    started = _parse_time(exit_record.started_at) if exit_record.started_at else None
    if job.state is JobState.STARTING and exit_record.job_pid:
        # It ran, and ended before anyone recorded RUNNING: the step is kept all the same.
        try:
            repo.transition(job.id, JobState.RUNNING, f"job pid {exit_record.job_pid}", started_at=started)
        except StoreError:
            pass  # somebody else moved it on meanwhile
    elif job.started_at is None and started is not None:
        fields["started_at"] = started
    repo.finish_if_active(job.id, outcome.state, note, **fields)
    return repo.get(job.id)


def storage_words(exit_record: ExitRecord) -> str:
    """What the run folder could not keep (a full disk), for the job's reason; "" when all was kept."""
    extra = exit_record.extra
    words = []
    lost = int(extra.get("log_lines_lost", 0) or 0)
    if lost:
        words.append(
            f"{lost:,} output line(s) could not be written to the run folder ({extra.get('log_error', '')})"
        )
    if extra.get("exit_record_error"):
        words.append(
            f"exit.json could not be written ({extra['exit_record_error']}); the end was told directly"
        )
    return "; ".join(words)


@dataclass(frozen=True)
class Adopt:
    """The job runs under a live supervisor: follow it (log from `log_offset`)."""

    record: JobRecord
    supervisor: ProcessIdentity
    log_offset: int
    progress: dict[str, Any] | None


@dataclass(frozen=True)
class Pending:
    """A live claimer (this app, another app, `jobs run`) is starting it right now: leave it."""

    record: JobRecord


@dataclass(frozen=True)
class Settled:
    """The job was given its final state.  `cleanup` (blocking: TERM, a short grace, KILL) stops
    processes it left behind; run it on a thread in the GUI, inline in the CLI."""

    record: JobRecord
    cleanup: Callable[[], int] | None = None


Inspection = Adopt | Pending | Settled


def inspect(repo: JobRepository, record: JobRecord) -> Inspection:
    """Decide the fate of an active local job that the caller does not watch itself.

    Used when the app starts (re-adoption), on every sync for jobs other processes run, and by every
    CLI command that reads jobs (so a job whose supervisor is gone never stays RUNNING for want of an
    open app).  Alive is pid + start time + the run-folder marker, never the pid alone.
    """
    if not record.state.is_active:
        return Settled(record)
    run_dir = Path(record.run_dir) if record.run_dir else None
    if run_dir is not None:
        exit_record = read_exit_record(run_dir)
        if exit_record is not None:  # decides first: a supervisor may linger a moment after writing it
            return Settled(finish_from_exit(repo, record, exit_record, "ended while nobody was watching"))
        supervisor = _supervisor_of(record, run_dir)
        if supervisor is not None and control.supervisor_alive(
            supervisor.pid, supervisor.start_time, run_dir
        ):
            if record.state is JobState.STARTING:
                mark_running(repo, record.id, supervisor, None)
            elif record.pid is None:
                repo.update(record.id, pid=supervisor.pid, pid_start_time=supervisor.start_time)
            current = repo.get(record.id)
            events = read_events(run_dir)
            return Adopt(current, supervisor, log_end_offset(run_dir), last_event_of_type(events, "progress"))
    if record.state is JobState.STARTING and record.pid is None and _claim_in_progress(record):
        return Pending(record)
    return _settle_without_supervisor(repo, record, run_dir)


def _settle_without_supervisor(repo: JobRepository, record: JobRecord, run_dir: Path | None) -> Settled:
    leftovers = tree.pids_with_marker(str(run_dir)) if run_dir is not None else []
    announced = run_dir is not None and (run_dir / SUPERVISOR_FILE).exists()
    if record.state is JobState.STARTING and record.pid is None and not announced:
        who = _claimer_words(record)
        where = "before its run folder was made" if run_dir is None else "before starting its supervisor"
        ended = "gave up" if record.claimer_pid == os.getpid() else "ended"
        state, reason = JobState.FAILED_TO_START, f"{who} {ended} {where}"
    else:
        # Also when it was being cancelled: without an exit record nobody knows how the job ended,
        # and the state must not depend on whether the cancel or the death was noticed first.  A
        # supervisor that announced itself started the job's run even if the store never heard of it.
        state, reason = JobState.LOST, "its supervisor vanished without recording the job's end"
        if run_dir is not None:
            reason += full_disk_words(run_dir)
    if leftovers:
        reason += f"; {len(leftovers)} unsupervised process(es) of the job were stopped"
    final = _finish(repo, record.id, state, reason)
    cleanup = None
    if leftovers and run_dir is not None:
        marker = str(run_dir)
        cleanup = lambda: len(kill.stop_marked(marker, LEFTOVER_GRACE_SECONDS).targets)  # noqa: E731
    return Settled(final, cleanup)


def settle_unwatched(repo: JobRepository) -> list[Settled]:
    """`inspect` every active local job; the ones that were settled (cleanups already run).

    For commands without an event loop (the CLI): blocking is fine there, and it means that reading
    the jobs is enough to settle a job whose supervisor is gone.
    """
    settled = []
    for record in repo.active(target=JobTarget.LOCAL):
        found = inspect(repo, record)
        if isinstance(found, Settled) and found.record.state.is_final:
            if found.cleanup is not None:
                found.cleanup()
            settled.append(found)
    return settled


# -- cancel --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cancel:
    """What a cancel request did.  `stop_unsupervised` is set when no supervisor is there to stop the
    tree: the caller must call `cancel_unsupervised` (blocking) and then `finish_cancel`."""

    record: JobRecord
    words: str
    stop_unsupervised: Path | None = None


def request_cancel(repo: JobRepository, job_id: int, note_suffix: str = "") -> Cancel:
    """Cancel a local job: the one rule for the app and `jobs cancel`.

    QUEUED -> CANCELLED at once.  Otherwise CANCELLING, and the supervisor (checked by identity) gets
    SIGTERM: it stops the tree (TERM, the grace, KILL) and records CANCELLED.  A job that is still
    being claimed stays CANCELLING and its launcher refuses to start it.  With no supervisor at all
    the caller stops the marked processes itself.
    """
    record = repo.get(job_id)
    if record.spec.target is not JobTarget.LOCAL:
        raise ValueError("SLURM jobs are cancelled by the Clusters area (scancel on the cluster)")
    if record.state is JobState.QUEUED:
        final = repo.transition(
            job_id,
            JobState.CANCELLED,
            "removed from the queue" + note_suffix,
            reason="removed from the queue",
        )
        return Cancel(final, "removed from the queue")
    if not record.state.is_active:
        return Cancel(record, f"already ended: {record.state.value}")
    found = inspect(repo, record)
    if isinstance(found, Settled):  # its supervisor was gone: the job already has its final state
        if found.cleanup is not None:
            return Cancel(found.record, f"already ended: {found.record.state.value}", _run_dir(found.record))
        return Cancel(found.record, f"already ended: {found.record.state.value}")
    record = found.record
    if record.state is not JobState.CANCELLING:
        record = repo.transition(job_id, JobState.CANCELLING, "cancel requested" + note_suffix)
    if isinstance(found, Pending):
        return Cancel(record, "cancelled before it started")
    if control.request_stop(found.supervisor.pid, found.supervisor.start_time, Path(str(record.run_dir))):
        return Cancel(record, "cancelling")
    # The supervisor ended between the two looks: its exit record (if any) decides.
    again = inspect(repo, repo.get(job_id))
    if isinstance(again, Settled):
        return Cancel(again.record, f"ended: {again.record.state.value}", _run_dir(again.record))
    return Cancel(again.record, "cancelling")


def cancel_unsupervised(run_dir: Path, grace_seconds: float) -> int:
    """TERM -> grace -> KILL every process carrying the job's run-folder marker (blocking)."""
    return len(kill.stop_marked(str(run_dir), grace_seconds).targets)


def cancel_now(repo: JobRepository, job_id: int, grace_seconds: float, note_suffix: str = "") -> Cancel:
    """`request_cancel` plus, where no supervisor can do it, stopping the processes right here."""
    result = request_cancel(repo, job_id, note_suffix)
    if result.stop_unsupervised is not None:
        cancel_unsupervised(result.stop_unsupervised, grace_seconds)
    return result


# -- delete ---------------------------------------------------------------------------------------------
def delete(repo: JobRepository, job_id: int, runs_dir: Path) -> Path | None:
    """Forget a job that is not active; returns its run folder for the caller to remove (our own
    folders only: one directly under `runs_dir`).  StoreError while the job is active."""
    record = repo.get(job_id)
    repo.delete(job_id)
    if record.run_dir:
        run_dir = Path(record.run_dir)
        if run_dir.parent == runs_dir and run_dir.is_dir():
            return run_dir
    return None


def remove_folder(path: Path) -> None:
    """Remove a run folder (blocking; a thread in the GUI).  Errors leave what could not go."""
    shutil.rmtree(path, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------------
def _finish(repo: JobRepository, job_id: int, state: JobState, reason: str) -> JobRecord:
    repo.finish_if_active(job_id, state, reason, reason=reason)
    return repo.get(job_id)


def _supervisor_of(record: JobRecord, run_dir: Path) -> ProcessIdentity | None:
    if record.pid is not None:
        return ProcessIdentity(record.pid, record.pid_start_time)
    found = control.supervisor_identity(run_dir)
    return ProcessIdentity(*found) if found is not None else None


def _claim_in_progress(record: JobRecord) -> bool:
    """The process that claimed the job may still be starting it: it is alive and, when it is this
    very process, has not finished its attempt (`done_starting`)."""
    if record.claimer_pid is None:
        return False
    if record.claimer_pid == os.getpid() and _start_key(record) in _done_starting:
        return False
    return ProcessIdentity(record.claimer_pid, record.claimer_start_time).alive()


def _claimer_words(record: JobRecord) -> str:
    if record.claimer_pid is None:
        return "the process starting it"
    return f"the process starting it (pid {record.claimer_pid})"


def _run_dir(record: JobRecord) -> Path | None:
    return Path(record.run_dir) if record.run_dir else None


def _now() -> Any:
    from msquant_desktop.store.jobs_repo import utcnow

    return utcnow()


def _parse_time(text: str) -> Any:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
