"""The local job engine as the GUI sees it: queue, launch, live output, cancel, re-adoption.

A thin QtCore adapter over `services/job_lifecycle.py`, which decides every step of a job's life for
the app, the CLI and the supervisor alike: this class calls it, turns its results into signals, runs
its blocking parts (stopping unsupervised processes, removing folders) on threads, and never waits
on the GUI thread.  Jobs written by other processes or other areas (SLURM) are noticed by a cheap
fingerprint poll of the jobs table.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from msquant_desktop.config.paths import AppPaths
from msquant_desktop.domain.jobs import (
    ACTIVE_STATES,
    JobRecord,
    JobSpec,
    JobState,
    JobSummary,
    JobTarget,
    StateTransition,
)
from msquant_desktop.domain.logformat import DecodedChunk
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.domain.runs import ExitRecord
from msquant_desktop.domain.secrets import HELD, REDACTED, extra_patterns, hold_secrets
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.services.job_launcher import JobLauncher, LaunchInputs, Spawned
from msquant_desktop.services.job_runtime import AdoptedRuntime, JobRuntime, SupervisedRuntime
from msquant_desktop.services.protocols import SettingsSource
from msquant_desktop.store import StoreError
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.store.run_folders import read_log_tail
from msquant_desktop.supervisor.control import detect_gpu_count

log = logging.getLogger(__name__)

SYNC_INTERVAL_MS = 500
_FINAL_VALUES = frozenset(s.value for s in JobState if s.is_final)

RemoteCanceller = Callable[[JobRecord], None]
"""Cancels a SLURM job (the Clusters area plugs this in)."""


class JobService(QObject):
    sig_job_added = Signal(int)
    """A job appeared in the store (submitted here, by `jobs run`, or by another area)."""
    sig_job_changed = Signal(int)
    """A job's state or fields changed."""
    sig_job_removed = Signal(int)
    """A job was deleted."""
    sig_job_submitted = Signal(int)
    """A job was submitted in this app (by the user, after its `sig_job_added`): views select it."""
    sig_log_text = Signal(int, str, bool)
    """(job id, complete line(s) of output, is_stderr), in order."""
    sig_job_event = Signal(int, object)
    """(job id, dict) from a `@@MSQUANT-EVENT@@ {json}` stdout line."""
    sig_job_progress = Signal(int, object)
    """(job id, the progress event dict): a running job's progress; views update from the event
    itself (no store read), so it is not also announced as a job change."""
    sig_log_skipped = Signal(int, int)
    """(job id, lines): the supervisor could not hand this many lines to a busy app; they are in the
    run folder's log."""
    sig_running_count_changed = Signal(int)
    """How many local jobs are active now."""
    sig_deletes_pending = Signal(int)
    """How many deleted jobs' folders are still being removed (0: all gone)."""
    _sig_done_on_thread = Signal(object)
    _sig_launched = Signal(object)
    """Internal: a callable from the launcher thread (a job claimed or started)."""
    """Internal: a callable to run on the GUI thread when blocking work on a thread has finished."""

    def __init__(
        self,
        repo: JobRepository,
        paths: AppPaths,
        settings: SettingsSource,
        gpu_count: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._repo = repo
        self._paths = paths
        self._settings = settings
        self.gpu_count = detect_gpu_count() if gpu_count is None else gpu_count
        self._runtimes: dict[int, JobRuntime] = {}
        self._held_secrets: dict[int, dict[str, str]] = {}
        self._held_lock = threading.Lock()
        """Secret values typed for queued jobs, kept out of the store (domain/secrets.hold_secrets)."""
        self._typed_secrets: dict[int, dict[str, str]] = {}
        """Every job's typed secret values, for this app's lifetime (memory only, never the store):
        `_held_secrets` lets go of them when the job starts, Re-run needs them again later."""
        self._progress: dict[int, dict[str, Any]] = {}
        self._remote_canceller: RemoteCanceller | None = None
        self._identity = lifecycle.ProcessIdentity.of_this_process()
        self._deletes_pending = 0
        self._closed = False
        self._sig_done_on_thread.connect(lambda done: None if self._closed else done())
        self._sig_launched.connect(lambda done: done())  # also after shutdown: it lets go of pipes
        self._launcher = JobLauncher(
            self._launch_inputs,
            self._identity,
            self._take_held_secrets,
            self._sig_launched.emit,
            self._note,
            self._on_spawned,
        )
        self._signatures = repo.signatures()
        self._seen_version: tuple[int, int] = (-1, -1)
        self._running_count = -1
        self._sync_timer = QTimer(self)
        self._sync_timer.setObjectName("job-service-sync")
        self._sync_timer.setInterval(SYNC_INTERVAL_MS)
        self._sync_timer.timeout.connect(self.sync)
        settings.sig_settings_changed.connect(lambda _s: self.schedule())

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Re-adopt what the store calls active, start what can start, then watch the store."""
        self._adopt_unwatched()
        self.schedule()
        self._sync_timer.start()
        self._update_running_count()

    def shutdown(self, cancel_running: bool = False) -> None:
        """Stop watching.  Running jobs keep running (their supervisors record their end) unless
        `cancel_running`, in which case each supervisor is asked to stop its tree first."""
        self._sync_timer.stop()
        self._launcher.stop()
        self._closed = True
        for job_id, runtime in list(self._runtimes.items()):
            if cancel_running:
                self.cancel(job_id)
            runtime.detach()
        self._runtimes.clear()

    def _take_held_secrets(self, job_id: int) -> dict[str, str] | None:
        """The launcher thread's look-up, once per start (the values leave with the job)."""
        with self._held_lock:
            return self._held_secrets.pop(job_id, None)

    # -- public API --------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobRecord:
        """Queue a local job; it starts at once when a slot (and its GPUs) are free (the launcher
        thread claims it: the record returned is the QUEUED one)."""
        if spec.target is not JobTarget.LOCAL:
            raise ValueError("SLURM jobs are submitted through the Clusters area, not the local engine")
        # Secret values typed for the job stay in this process until it starts (never in the store).
        public_env, held = hold_secrets(spec.env, extra_patterns(self._settings.settings.secret_env_names))
        # The launcher thread may claim the job the moment it is stored: its values are held under
        # the same lock it takes to look them up, so it never finds the job without them.
        with self._held_lock:
            record = self._repo.create(replace(spec, env=public_env), JobState.QUEUED, "submitted in the app")
            if held:
                self._held_secrets[record.id] = held
                self._typed_secrets[record.id] = dict(held)
        self._note(record.id, added=True)
        self.sig_job_submitted.emit(record.id)
        self.schedule()
        return record

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobRecord]:
        """Queue several local jobs (a sweep's members) in one store transaction: all or none, back
        to back in the queue; then they start as `submit` says, under the concurrency limit."""
        if any(spec.target is not JobTarget.LOCAL for spec in specs):
            raise ValueError("SLURM jobs are submitted through the Clusters area, not the local engine")
        records = self._repo.create_many(specs, JobState.QUEUED, "submitted in the app")
        for record in records:
            self._note(record.id, added=True)
        if records:
            self.schedule()
        return records

    def cancel(self, job_id: int) -> None:
        """Cancel a queued or running job (never waits: stopping happens in the supervisor or on a
        thread).  SLURM jobs go to the Clusters area's canceller."""
        record = self._repo.get(job_id)
        if record.spec.target is JobTarget.SLURM:
            if self._remote_canceller is None:
                raise StoreError("no SLURM connection is set up to cancel this job")
            self._remote_canceller(record)
            return
        result = lifecycle.request_cancel(self._repo, job_id)
        self._note(job_id)
        if result.stop_unsupervised is not None:
            run_dir, grace = result.stop_unsupervised, self._settings.settings.cancel_grace_seconds
            self._on_thread(f"cancel-job-{job_id}", lambda: lifecycle.cancel_unsupervised(run_dir, grace))

    def rerun(self, job_id: int) -> JobRecord:
        """Queue the job's spec again.  Its stored secret values are only references (HELD): the
        values typed for it in this app session go with it; when they are not known here (queued
        by an earlier session or the CLI) nothing is queued and ValueError names what to type."""
        spec = self._repo.get(job_id).spec
        typed = self._typed_secrets.get(job_id, {})
        missing = [
            name
            for name, value in spec.env
            if value in (HELD, REDACTED) and name not in typed and name not in os.environ
        ]
        if missing:
            names = ", ".join(missing)
            raise ValueError(
                f"job {job_id} cannot be re-run as it is: the value of {names} was typed in an earlier "
                "session or on the command line and is not kept; type it again (Re-run with changes… "
                "in Projects, or New command)"
            )
        env = tuple((name, typed.get(name, value)) for name, value in spec.env)
        return self.submit(replace(spec, env=env))

    def delete(self, job_id: int, also_remove: tuple[Path, ...] = ()) -> None:
        """Forget a job that is not active; its run folder (and `also_remove`, e.g. the quantized
        model it made) is removed on a thread.  StoreError while it is active."""
        run_dir = lifecycle.delete(self._repo, job_id, self._paths.runs_dir)
        runtime = self._runtimes.pop(job_id, None)
        if runtime is not None:  # its supervisor already recorded the end and is exiting
            runtime.detach()
            runtime.deleteLater()
        self._progress.pop(job_id, None)
        self._signatures.pop(job_id, None)
        self._typed_secrets.pop(job_id, None)  # no Re-run of a deleted job: its values can go
        self.sig_job_removed.emit(job_id)
        self._update_running_count()
        folders = [*also_remove, *([run_dir] if run_dir else [])]
        if folders:
            self._deletes_pending += 1
            self.sig_deletes_pending.emit(self._deletes_pending)

            def remove() -> None:
                for folder in folders:
                    lifecycle.remove_folder(folder)

            self._on_thread(f"delete-job-{job_id}", remove, self._delete_finished)

    def _delete_finished(self) -> None:
        self._deletes_pending -= 1
        self.sig_deletes_pending.emit(self._deletes_pending)

    def deletes_pending(self) -> int:
        return self._deletes_pending

    def get(self, job_id: int) -> JobRecord:
        return self._repo.get(job_id)

    def list_jobs(self) -> list[JobRecord]:
        """Every job, newest first (local and SLURM)."""
        return self._repo.list_jobs()

    def summaries(self) -> list[JobSummary]:
        """Every job as a light table row, newest first (local and SLURM)."""
        return self._repo.summaries()

    def summary(self, job_id: int) -> JobSummary:
        return self._repo.summary(job_id)

    def running_count(self) -> int:
        return self._repo.count(ACTIVE_STATES)

    def local_active_ids(self) -> list[int]:
        return [r.id for r in self._repo.active(target=JobTarget.LOCAL)]

    def run_dir(self, job_id: int) -> Path | None:
        record = self._repo.find(job_id)
        return Path(record.run_dir) if record and record.run_dir else None

    def log_tail(self, job_id: int, max_lines: int) -> tuple[list[tuple[str, bool]], int]:
        """The last `max_lines` output lines of a job ([(text, is_stderr)]) and how many are older."""
        run_dir = self.run_dir(job_id)
        if run_dir is None:
            return [], 0
        lines, hidden, _end = read_log_tail(run_dir, max_lines)
        return lines, hidden

    def log_file(self, job_id: int) -> Path | None:
        run_dir = self.run_dir(job_id)
        return run_dir / LOG_FILE if run_dir else None

    def transitions(self, job_id: int) -> list[StateTransition]:
        return self._repo.transitions(job_id)

    def progress(self, job_id: int) -> dict[str, Any] | None:
        """The last progress event of an active job (None when it sent none)."""
        return self._progress.get(job_id)

    def move_in_queue(self, job_id: int, delta: int) -> None:
        """Move a queued job up (delta < 0) or down in the local queue."""
        ids = [r.id for r in self._repo.queued()]
        if job_id not in ids:
            return
        i = ids.index(job_id)
        j = max(0, min(len(ids) - 1, i + delta))
        ids.insert(j, ids.pop(i))
        self._repo.reorder_queue(ids)
        for other in ids:
            self._note(other)

    def set_remote_canceller(self, canceller: RemoteCanceller | None) -> None:
        self._remote_canceller = canceller

    def notify_changed(self, job_id: int) -> None:
        """For areas that write jobs through their own repository: announce the change now."""
        self._note(job_id, added=job_id not in self._signatures)

    # -- scheduling ----------------------------------------------------------------------------------------
    @Slot()
    def schedule(self) -> None:
        """Start the next queued jobs if slots and GPUs allow (event-driven; also on every sync).

        The launcher thread claims and spawns them one after another (services/job_launcher.py);
        the GUI thread only takes each running supervisor in (`_on_spawned`)."""
        if not self._closed:
            self._launcher.request()

    def _launch_inputs(self) -> LaunchInputs:
        settings = self._settings.settings
        return LaunchInputs(
            max_running=settings.max_concurrent_jobs,
            gpu_count=self.gpu_count,
            runs_dir=self._paths.runs_dir,
            store_path=self._paths.database,
            grace_seconds=settings.cancel_grace_seconds,
            base_env=dict(os.environ),
            secret_patterns=extra_patterns(settings.secret_env_names),
        )

    def _on_spawned(self, spawned: Spawned) -> None:
        runtime = SupervisedRuntime(spawned, self)
        if self._closed or spawned.job_id in self._runtimes:  # quitting, or adopted meanwhile
            runtime.detach()
            runtime.deleteLater()
            return
        self._attach(runtime)
        self._note(spawned.job_id)

    def _attach(self, runtime: JobRuntime) -> None:
        self._runtimes[runtime.job_id] = runtime
        runtime.sig_output.connect(lambda chunk, job_id=runtime.job_id: self._on_output(job_id, chunk))
        runtime.sig_ended.connect(lambda rec, why, job_id=runtime.job_id: self._on_ended(job_id, rec, why))

    def _adopt_unwatched(self) -> None:
        """Every active local job this app does not follow yet: adopt, leave to its launcher, or
        settle (as `job_lifecycle.inspect` decides)."""
        for record in self._repo.active(target=JobTarget.LOCAL):
            if record.id in self._runtimes or self._launcher.launching(record.id):
                continue
            found = lifecycle.inspect(self._repo, record)
            if isinstance(found, lifecycle.Adopt):
                if found.progress:
                    self._progress[record.id] = found.progress
                runtime = AdoptedRuntime(
                    record.id,
                    Path(str(record.run_dir)),
                    found.supervisor.pid,
                    found.supervisor.start_time,
                    found.log_offset,
                    self,
                )
                self._attach(runtime)
            elif isinstance(found, lifecycle.Settled):
                self._cleanup_on_thread(found)
            self._note(record.id)

    # -- runtime events --------------------------------------------------------------------------------------
    def _on_output(self, job_id: int, chunk: DecodedChunk) -> None:
        # In stream order: a chunk ends with the supervisor's message when it holds one
        # (JobRuntime._emit_lines), so its lines come before the message.
        for text, is_err in chunk.texts:
            self.sig_log_text.emit(job_id, text, is_err)
        for event in chunk.events:
            kind = event.get("type")
            if kind == "progress":
                self._progress[job_id] = event
                self.sig_job_progress.emit(job_id, event)
            elif kind == "result":
                self._repo.update(job_id, result=event)
                self._note(job_id)
            self.sig_job_event.emit(job_id, event)
        for meta in chunk.metas:
            kind = meta.get("type")
            if kind == "started":
                runtime = self._runtimes.get(job_id)
                if runtime is not None and runtime.pid is not None:
                    # The supervisor records RUNNING too (from a thread, so usually later): the first
                    # writer wins.  Cancelled while it started: make sure the supervisor heard of it.
                    identity = lifecycle.ProcessIdentity(runtime.pid, runtime.pid_start_time)
                    state = lifecycle.mark_running(self._repo, job_id, identity, meta.get("job_pid"))
                    if state is JobState.CANCELLING:
                        lifecycle.request_cancel(self._repo, job_id)
                self._note(job_id)
            elif kind == "skipped":
                self.sig_log_skipped.emit(job_id, int(meta.get("lines", 0)))

    def _on_ended(self, job_id: int, exit_record: ExitRecord | None, why: str) -> None:
        runtime = self._runtimes.pop(job_id, None)
        if runtime is not None:
            runtime.deleteLater()
        self._progress.pop(job_id, None)
        job = self._repo.find(job_id)
        if job is not None and job.state.is_active:
            if exit_record is not None:
                lifecycle.finish_from_exit(self._repo, job, exit_record, "job ended")
            else:
                found = lifecycle.inspect(self._repo, job)
                if isinstance(found, lifecycle.Settled):
                    self._cleanup_on_thread(found)
                elif isinstance(found, lifecycle.Pending):  # our own supervisor died before it began
                    lifecycle.fail_to_start(self._repo, job_id, why)
                elif isinstance(found, lifecycle.Adopt):  # e.g. a second look found it alive after all
                    log.warning("job %d: %s, but its supervisor is alive; following it", job_id, why)
            self._note(job_id)
        self.schedule()  # at once: a job ending frees its slot now

    # -- blocking work, off the GUI thread ---------------------------------------------------------------
    def _cleanup_on_thread(self, settled: lifecycle.Settled) -> None:
        if settled.cleanup is not None:
            self._on_thread(f"cleanup-job-{settled.record.id}", settled.cleanup)

    def _on_thread(
        self, name: str, work: Callable[[], object], done: Callable[[], None] | None = None
    ) -> None:
        """Run `work` on a thread; `done` afterwards on the GUI thread (by a queued signal)."""

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("%s failed", name)
            if done is not None:
                self._sig_done_on_thread.emit(done)

        threading.Thread(target=run, name=name, daemon=True).start()

    # -- noticing changes -------------------------------------------------------------------------------------
    def _note(self, job_id: int, added: bool = False) -> None:
        """Refresh one job's fingerprint and announce it."""
        if self._repo.find(job_id) is None:
            return
        self._signatures[job_id] = self._repo.signatures_of([job_id]).get(job_id, ())
        (self.sig_job_added if added else self.sig_job_changed).emit(job_id)
        self._update_running_count()

    def _update_running_count(self) -> None:
        count = self.running_count()
        if count != self._running_count:
            self._running_count = count
            self.sig_running_count_changed.emit(count)

    def _diff_signatures(self) -> None:
        """Announce jobs added, changed or removed by anyone since the last look."""
        known = self._signatures
        watch = [job_id for job_id, sig in known.items() if sig[0] not in _FINAL_VALUES]
        fresh = self._repo.signatures_live(max(known, default=0), watch)
        total = self._repo.count()
        if total != len(known) + len(fresh.keys() - known.keys()):
            fresh = self._repo.signatures()  # something was deleted: compare everything once
            for job_id in sorted(known.keys() - fresh.keys()):
                del known[job_id]
                self.sig_job_removed.emit(job_id)
        for job_id, signature in sorted(fresh.items()):
            if job_id not in known:
                known[job_id] = signature
                self.sig_job_added.emit(job_id)
            elif known[job_id] != signature:
                known[job_id] = signature
                self.sig_job_changed.emit(job_id)
        self._update_running_count()

    @Slot()
    def sync(self) -> None:
        """Notice jobs written by other processes (CLI, supervisors) or other connections."""
        conn = self._repo.connection
        version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        if version != self._seen_version:
            self._seen_version = version
            self._diff_signatures()
        self._adopt_unwatched()  # e.g. started by `jobs run`: follow it live
        self.schedule()
