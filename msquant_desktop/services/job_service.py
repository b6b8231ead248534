"""The local job engine as the GUI sees it: queue, launch, live output, cancel, re-adoption.

Every state change goes through the store first and is then announced by a signal.  Decisions about
what starts next are made inside one store transaction (`JobRepository.claim_next`), so the limits
hold across the app and `jobs run` in a terminal.  Jobs written by other processes or other areas
(SLURM) are noticed by a cheap fingerprint poll of the jobs table.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from msquant_desktop.config.paths import AppPaths
from msquant_desktop.domain.jobs import JobRecord, JobSpec, JobState, JobSummary, JobTarget, StateTransition
from msquant_desktop.domain.logformat import DecodedChunk
from msquant_desktop.domain.queue import StartJob
from msquant_desktop.domain.runs import LOG_FILE, ExitRecord, outcome_from_exit
from msquant_desktop.procs import kill
from msquant_desktop.runtime import self_command
from msquant_desktop.services.job_recovery import adopt_or_settle
from msquant_desktop.services.job_runtime import AdoptedRuntime, JobRuntime, SupervisedRuntime
from msquant_desktop.store import StoreError
from msquant_desktop.store.jobs_repo import JobRepository, utcnow
from msquant_desktop.store.run_folders import last_event_of_type, prepare_run, read_events, read_log_tail
from msquant_desktop.supervisor.control import detect_gpu_count

log = logging.getLogger(__name__)

SYNC_INTERVAL_MS = 500
LAUNCH_SETTLE_SECONDS = 10.0
_FINAL_VALUES = frozenset(s.value for s in JobState if s.is_final)

ExitExplainer = Callable[[JobRecord, ExitRecord | None], str | None]
"""Per-kind hook: a better reason for how a job ended (None keeps the generic one)."""
RemoteCanceller = Callable[[JobRecord], None]
"""Cancels a SLURM job (the Clusters area plugs this in)."""


class JobService(QObject):
    sig_job_added = Signal(int)
    """A job appeared in the store (submitted here, by `jobs run`, or by another area)."""
    sig_job_changed = Signal(int)
    """A job's state or fields changed."""
    sig_job_removed = Signal(int)
    """A job was deleted."""
    sig_log_text = Signal(int, str, bool)
    """(job id, complete line(s) of output, is_stderr), in order."""
    sig_job_event = Signal(int, object)
    """(job id, dict) from a `@@MSQUANT-EVENT@@ {json}` stdout line."""
    sig_running_count_changed = Signal(int)
    """How many local jobs are active now."""

    def __init__(
        self,
        repo: JobRepository,
        paths: AppPaths,
        settings: Any,
        gpu_count: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._repo = repo
        self._paths = paths
        self._settings = settings  # SettingsService: .settings and sig_settings_changed
        self.gpu_count = detect_gpu_count() if gpu_count is None else gpu_count
        self._runtimes: dict[int, JobRuntime] = {}
        self._progress: dict[int, dict[str, Any]] = {}
        self._explainers: dict[str, ExitExplainer] = {}
        self._remote_canceller: RemoteCanceller | None = None
        self._signatures = repo.signatures()
        self._seen_version: tuple[int, int] = (-1, -1)
        self._running_count = -1
        self._sync_timer = QTimer(self)
        self._sync_timer.setObjectName("job-service-sync")
        self._sync_timer.setInterval(SYNC_INTERVAL_MS)
        self._sync_timer.timeout.connect(self.sync)
        if hasattr(settings, "sig_settings_changed"):
            settings.sig_settings_changed.connect(lambda _s: self.schedule())

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Re-adopt what the store calls active, start what can start, then watch the store."""
        for record in self._repo.active(target=JobTarget.LOCAL):
            if self._should_adopt(record):
                self._adopt(record)
        self.schedule()
        self._sync_timer.start()
        self._update_running_count()

    def shutdown(self, cancel_running: bool = False) -> None:
        """Stop watching.  Running jobs keep running (their supervisors record their end) unless
        `cancel_running`, in which case each supervisor is asked to stop its tree first."""
        self._sync_timer.stop()
        for job_id, runtime in list(self._runtimes.items()):
            if cancel_running:
                self.cancel(job_id)
            runtime.detach()
        self._runtimes.clear()

    # -- public API --------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> JobRecord:
        """Queue a local job; it starts at once when a slot (and its GPUs) are free."""
        if spec.target is not JobTarget.LOCAL:
            raise ValueError("SLURM jobs are submitted through the Clusters area, not the local engine")
        record = self._repo.create(spec, JobState.QUEUED, "submitted in the app")
        self._note(record.id, added=True)
        self.schedule()
        return self._repo.get(record.id)

    def cancel(self, job_id: int) -> None:
        record = self._repo.get(job_id)
        if record.spec.target is JobTarget.SLURM:
            if self._remote_canceller is None:
                raise StoreError("no SLURM connection is set up to cancel this job")
            self._remote_canceller(record)
            return
        if record.state is JobState.QUEUED:
            self._repo.transition(
                job_id, JobState.CANCELLED, "removed from the queue", reason="removed from the queue"
            )
            self._note(job_id)
            return
        if not record.state.is_active or record.state is JobState.CANCELLING:
            return
        runtime = self._runtimes.get(job_id)
        asked = runtime.stop() if runtime else False
        self._repo.transition(job_id, JobState.CANCELLING, "cancel requested")
        self._note(job_id)
        if not asked:
            self._kill_unsupervised(self._repo.get(job_id))

    def rerun(self, job_id: int) -> JobRecord:
        return self.submit(self._repo.get(job_id).spec)

    def delete(self, job_id: int) -> None:
        """Forget a finished or queued job and its run folder.  StoreError while it is active."""
        record = self._repo.get(job_id)
        self._repo.delete(job_id)
        runtime = self._runtimes.pop(job_id, None)
        if runtime is not None:  # its supervisor already recorded the end and is exiting
            runtime.detach()
            runtime.deleteLater()
        if record.run_dir:
            run_dir = Path(record.run_dir)
            if run_dir.parent == self._paths.runs_dir and run_dir.is_dir():
                shutil.rmtree(run_dir, ignore_errors=True)
        self._progress.pop(job_id, None)
        self._signatures.pop(job_id, None)
        self.sig_job_removed.emit(job_id)
        self._update_running_count()

    def get(self, job_id: int) -> JobRecord:
        return self._repo.get(job_id)

    def list_jobs(self) -> list[JobRecord]:
        """Every job, newest first (local and SLURM)."""
        return self._repo.list()

    def summaries(self) -> list[JobSummary]:
        """Every job as a light table row, newest first (local and SLURM)."""
        return self._repo.summaries()

    def summary(self, job_id: int) -> JobSummary:
        return self._repo.summary(job_id)

    def running_count(self) -> int:
        return self._repo.count([JobState.STARTING, JobState.RUNNING, JobState.CANCELLING])

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

    def set_exit_explainer(self, kind: str, explainer: ExitExplainer) -> None:
        """Let an area explain how its kind of job ended (e.g. quantization's memory estimate)."""
        self._explainers[str(kind)] = explainer

    def notify_changed(self, job_id: int) -> None:
        """For areas that write jobs through their own repository: announce the change now."""
        self._note(job_id, added=job_id not in self._signatures)

    # -- scheduling ----------------------------------------------------------------------------------------
    @Slot()
    def schedule(self) -> None:
        """Start queued jobs while slots and GPUs allow (event-driven; also on every sync)."""
        settings = self._settings.settings
        while True:
            decision, record = self._repo.claim_next(settings.max_concurrent_jobs, self.gpu_count)
            if record is None:
                break
            self._note(record.id)
            if isinstance(decision, StartJob):
                self._launch(record)

    def _launch(self, record: JobRecord) -> None:
        settings = self._settings.settings
        try:
            record, launch = prepare_run(
                self._repo,
                record,
                self._paths.runs_dir,
                self._paths.database,
                settings.cancel_grace_seconds,
                dict(os.environ),
            )
        except OSError as exc:
            self._finish(record.id, JobState.FAILED_TO_START, f"could not create the run folder: {exc}")
            return
        run_dir = Path(str(record.run_dir))
        runtime = SupervisedRuntime(
            record.id, run_dir, self_command("_supervise", "--run-dir", str(run_dir)), launch["env"], self
        )
        self._attach(runtime)
        if not runtime.start():
            return  # sig_ended (FailedToStart) already settled it
        self._repo.update(record.id, pid=runtime.pid, pid_start_time=runtime.pid_start_time)
        self._note(record.id)

    def _attach(self, runtime: JobRuntime) -> None:
        self._runtimes[runtime.job_id] = runtime
        runtime.sig_output.connect(lambda chunk, job_id=runtime.job_id: self._on_output(job_id, chunk))
        runtime.sig_ended.connect(lambda rec, why, job_id=runtime.job_id: self._on_ended(job_id, rec, why))

    def _should_adopt(self, record: JobRecord) -> bool:
        if record.id in self._runtimes:
            return False
        if record.pid or record.state is not JobState.STARTING:
            return True
        # Another process (`jobs run`) may be launching it this very moment: give it time.
        last = self._repo.transitions(record.id)[-1].at
        return (utcnow() - last).total_seconds() > LAUNCH_SETTLE_SECONDS

    def _adopt(self, record: JobRecord) -> None:
        """Take over an active job started by an earlier app or another process."""
        if record.id in self._runtimes:
            return
        decision = adopt_or_settle(self._repo, record)
        if decision is None:  # settled from its exit record, or LOST
            self._note(record.id)
            return
        pid, start, offset, events = decision
        self._progress[record.id] = last_event_of_type(events, "progress") or {}
        if not self._progress[record.id]:
            del self._progress[record.id]
        runtime = AdoptedRuntime(record.id, Path(str(record.run_dir)), pid, start, offset, self)
        self._attach(runtime)
        if record.state is JobState.STARTING:
            self._repo.transition(record.id, JobState.RUNNING, "re-adopted")
        self._note(record.id)

    # -- runtime events --------------------------------------------------------------------------------------
    def _on_output(self, job_id: int, chunk: DecodedChunk) -> None:
        for meta in chunk.metas:
            if meta.get("type") == "started":
                record = self._repo.get(job_id)
                if record.state is JobState.STARTING:
                    self._repo.transition(job_id, JobState.RUNNING, f"job pid {meta.get('job_pid')}")
                    self._note(job_id)
        for text, is_err in chunk.texts:
            self.sig_log_text.emit(job_id, text, is_err)
        for event in chunk.events:
            kind = event.get("type")
            if kind == "progress":
                self._progress[job_id] = event
                self.sig_job_changed.emit(job_id)
            elif kind == "result":
                self._repo.update(job_id, result=event)
                self._note(job_id)
            self.sig_job_event.emit(job_id, event)

    def _on_ended(self, job_id: int, record: ExitRecord | None, why: str) -> None:
        runtime = self._runtimes.pop(job_id, None)
        if runtime is not None:
            runtime.deleteLater()
        self._progress.pop(job_id, None)
        job = self._repo.find(job_id)
        if job is None:
            self.schedule()
            return
        if record is None:
            if runtime is not None and runtime.never_started:
                # Nothing ran, so nothing can be left over; same state as `jobs run` records.
                self._finish(job_id, JobState.FAILED_TO_START, why)
            else:
                self._kill_unsupervised(job)
                self._finish(job_id, JobState.LOST, why)
        else:
            outcome = outcome_from_exit(record)
            reason = outcome.reason
            explainer = self._explainers.get(job.spec.kind.value)
            if explainer is not None:
                try:
                    reason = explainer(job, record) or reason
                except Exception:
                    log.exception("exit explainer for %s failed", job.spec.kind.value)
            result = (
                last_event_of_type(read_events(Path(str(job.run_dir))), "result") if job.run_dir else None
            )
            fields: dict[str, Any] = {
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "reason": reason,
            }
            if result is not None:
                fields["result"] = result
            if self._repo.finish_if_active(job_id, outcome.state, "job ended", **fields) is None:
                # The supervisor recorded the end first; keep its state, add our explanation.
                self._repo.update(job_id, reason=reason)
            self._note(job_id)
        self.schedule()

    def _finish(self, job_id: int, state: JobState, reason: str) -> None:
        self._repo.finish_if_active(job_id, state, reason, reason=reason)
        self._note(job_id)

    def _kill_unsupervised(self, record: JobRecord) -> None:
        """The supervisor is gone but the job's processes may not be: stop them off the GUI thread."""
        if not record.run_dir:
            return
        grace = self._settings.settings.cancel_grace_seconds
        run_dir = record.run_dir
        threading.Thread(
            target=kill.stop_marked,
            args=(run_dir, grace),
            name=f"kill-job-{record.id}",
            daemon=True,
        ).start()

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
        for record in self._repo.active(target=JobTarget.LOCAL):
            if self._should_adopt(record):
                self._adopt(record)  # e.g. started by `jobs run`: follow it live
        self.schedule()
