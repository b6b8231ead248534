"""Claiming and starting the app's local jobs, on a thread of their own.

A launch is a store transaction (claim), a run folder with its launch files (prepare_launch) and a
process start; on the GUI thread those took up to a frame at a time (16-20 ms measured: the fork of a
GUI-sized process, an fsync'd write, the claim).  Here they run on one launcher thread with its own
store connection (connections are per thread), one job after another with LAUNCH_SPACING_S between
launches, and each outcome is handed to the GUI thread as a callable through `deliver`, where the
JobService only wraps the already running supervisor's pipes.  The decisions are job_lifecycle's,
the same the CLI makes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.jobs import JobRecord, JobState
from msquant_desktop.procs import identity
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.store import StoreError, connect
from msquant_desktop.store.jobs_repo import JobRepository

log = logging.getLogger(__name__)

LAUNCH_SPACING_S = 0.1
"""Between two launches in a row: each starts two Python processes (the supervisor, often the job),
~60 ms of CPU; 25 ms spacing kept a 2-core machine saturated while twenty started and the GUI
thread waited for a core (60-230 ms lag); at 100 ms they take under one core (20 jobs: ~2 s)."""


@dataclass(frozen=True)
class LaunchInputs:
    """What one claim-and-start needs, read afresh for each launch (settings can change)."""

    max_running: int
    gpu_count: int
    runs_dir: Path
    store_path: Path
    grace_seconds: float
    base_env: dict[str, str]
    secret_patterns: tuple[str, ...]


@dataclass(frozen=True)
class Spawned:
    """A supervisor the launcher started, its pipes not yet read by anyone."""

    job_id: int
    run_dir: Path
    process: subprocess.Popen[bytes]
    start_time: float | None
    pidfd: int
    """Readable once the supervisor has exited (os.pidfd_open), for a QSocketNotifier."""


class JobLauncher:
    """Claims queued local jobs and starts their supervisors, one at a time, off the GUI thread.

    `request()` (any thread, cheap) asks it to start whatever the queue and the limits allow.
    `deliver(callback)` runs `callback` on the GUI thread later; the callbacks are `on_claimed(job_id)`
    for a job that changed state (claimed, or settled without starting) and `on_spawned(spawned)`.
    """

    def __init__(
        self,
        inputs: Callable[[], LaunchInputs],
        claimer: lifecycle.ProcessIdentity,
        held_secrets: Callable[[int], dict[str, str] | None],
        deliver: Callable[[Callable[[], None]], None],
        on_claimed: Callable[[int], None],
        on_spawned: Callable[[Spawned], None],
    ) -> None:
        self._inputs = inputs
        self._claimer = claimer
        self._held_secrets = held_secrets
        self._deliver = deliver
        self._on_claimed = on_claimed
        self._on_spawned = on_spawned
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._launching: set[int] = set()
        self._thread: threading.Thread | None = None

    def launching(self, job_id: int) -> bool:
        """True while the job is claimed or spawned here and not yet handed to the GUI thread (so
        nothing else adopts it meanwhile)."""
        with self._lock:
            return job_id in self._launching

    def handed_over(self, job_id: int) -> None:
        with self._lock:
            self._launching.discard(job_id)

    def request(self) -> None:
        if self._stopping.is_set():
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="job-launcher", daemon=True)
            self._thread.start()
        self._wanted.set()

    def stop(self) -> None:
        """No more launches; a launch under way finishes on its own (its supervisor keeps running,
        whoever looks next adopts it).  Never waits."""
        self._stopping.set()
        self._wanted.set()

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            repo = JobRepository(connect(self._inputs().store_path))
        except (StoreError, OSError) as exc:
            log.error("the job launcher cannot open the store: %s", exc)
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping.is_set():
                    return
                while not self._stopping.is_set() and self._launch_next_safely(repo):
                    self._stopping.wait(LAUNCH_SPACING_S)
        finally:
            repo.connection.close()

    def _launch_next_safely(self, repo: JobRepository) -> bool:
        """`_launch_next`, and the thread outlives whatever it raises: one launch going wrong in a
        way nobody foresaw must not stop every later one until the app is restarted."""
        try:
            return self._launch_next(repo)
        except Exception:  # logged whole; the job it concerned is settled in _start
            log.exception("the job launcher hit an unexpected error; it goes on with the next job")
            return False

    def _launch_next(self, repo: JobRepository) -> bool:
        """Claim and start one job; True when one was claimed (there may be more)."""
        inputs = self._inputs()
        try:
            record = lifecycle.claim(repo, inputs.max_running, inputs.gpu_count, self._claimer)
        except StoreError as exc:
            log.error("claiming the next job failed: %s", exc)
            return False
        if record is None:
            return False
        with self._lock:
            self._launching.add(record.id)
        if record.state is JobState.STARTING:
            self._start(repo, record, inputs)
        else:
            self._claimed(record.id)
        return True

    def _start(self, repo: JobRepository, record: JobRecord, inputs: LaunchInputs) -> None:
        try:
            prepared = lifecycle.prepare_launch(
                repo,
                record,
                inputs.runs_dir,
                inputs.store_path,
                inputs.grace_seconds,
                inputs.base_env,
                inputs.secret_patterns,
                self._held_secrets(record.id),
            )
            if not isinstance(prepared, lifecycle.Launch):
                self._claimed(record.id)
                return
            child = lifecycle.spawn_supervisor(prepared, piped=True)
            if isinstance(child, str):
                lifecycle.done_starting(record)  # no supervisor; the write below may fail
                lifecycle.fail_to_start(repo, record.id, child)
                self._claimed(record.id)
                return
        except StoreError as exc:
            log.error("job %d: starting it failed: %s", record.id, exc)
            lifecycle.done_starting(record)  # still STARTING: the next look settles it
            self._claimed(record.id)
            return
        except Exception as exc:  # no supervisor was started: the claim must not stay STARTING
            log.exception("job %d: starting it failed unexpectedly", record.id)
            lifecycle.done_starting(record)
            self._fail_claimed(repo, record.id, f"{type(exc).__name__}: {exc}")
            return
        try:
            pidfd = os.pidfd_open(child.pid)
        except OSError as exc:
            # The supervisor runs and records its own start and end; without a pidfd this process
            # cannot watch its exit, so it lets go of the pipes (as a closed app does) and the job is
            # adopted from its run folder like any job this app did not start.
            log.warning(
                "job %d: cannot watch its supervisor (pid %d) directly: %s", record.id, child.pid, exc
            )
            _let_go(child)
            self._claimed(record.id)
            return
        spawned = Spawned(record.id, prepared.run_dir, child, identity.start_time(child.pid), pidfd)
        self._deliver(lambda: self._hand_over(spawned))

    def _fail_claimed(self, repo: JobRepository, job_id: int, detail: str) -> None:
        try:
            lifecycle.fail_to_start(repo, job_id, detail)
        except StoreError as exc:  # whoever looks next settles it (its claimer, this app, is alive)
            log.error("job %d: recording its failed start failed: %s", job_id, exc)
        self._claimed(job_id)

    def _claimed(self, job_id: int) -> None:
        def hand() -> None:
            self.handed_over(job_id)
            self._on_claimed(job_id)

        self._deliver(hand)

    def _hand_over(self, spawned: Spawned) -> None:
        self.handed_over(spawned.job_id)
        self._on_spawned(spawned)


def _let_go(child: subprocess.Popen[bytes]) -> None:
    """Close this side of a supervisor's pipes without waiting for it: it keeps running, writes its
    log to the run folder, and once it exits `subprocess` reaps it (a dropped running Popen is kept
    in its list of children to reap)."""
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()
