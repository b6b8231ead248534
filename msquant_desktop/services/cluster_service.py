"""ClusterService: the GUI's one door to SLURM clusters.

Owns the cluster profiles, one `ClusterWorker` thread per cluster (each with its persistent
connection), the poll timers, and every store change of SLURM jobs (on the main thread's
connection).  Submit returns at once with a STARTING job; the worker's answers move it on.

A submission is sent once, when the user asks, or not at all: a job left STARTING by a worker that
stopped, or by an earlier run of the app, is never sent again.  If its stored step says sbatch never
ran it is FAILED_TO_START at once; if sbatch may have run it is looked up on the cluster by its
unique name (with backoff, for as long as the cluster does not answer) and adopted, or found never
submitted (see cluster_jobs).

A changed or removed profile retires its worker without waiting for it: the worker is asked to stop,
its thread ends on its own (a connection attempt to a server that never answers is cut) and both
free themselves.  Only `shutdown()`, at process exit, waits for cluster threads, and only briefly.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, QTimer, Signal, Slot

from msquant_desktop.domain.evaluate import EvaluateRequest
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState, JobTarget
from msquant_desktop.domain.quantize import QuantizeRequest
from msquant_desktop.domain.slurm import (
    ClusterProfile,
    FinalState,
    SlurmSubmission,
    next_poll_interval,
    reconnect_delay,
    sbatch_may_have_run,
)
from msquant_desktop.services import cluster_jobs, cluster_quantize
from msquant_desktop.services.cluster_quantize import ClusterResources
from msquant_desktop.services.cluster_worker import CancelRequest, ClusterWorker, JobCheck, StepGate
from msquant_desktop.services.result_downloads import ResultDownloads
from msquant_desktop.slurm.client import CHECK_ABSENT, CHECK_UNKNOWN, PollResult, SlurmClient, SubmitCheck
from msquant_desktop.slurm.connection import accept_host_key, target_for_profile
from msquant_desktop.slurm.profiles import load_profiles, save_profiles
from msquant_desktop.slurm.script import RemotePaths, validate
from msquant_desktop.store import JobRepository

log = logging.getLogger(__name__)

LOST_AFTER_POLLS = cluster_jobs.LOST_AFTER_POLLS
SHUTDOWN_WAIT_S = 2.0
"""At exit: how long the cluster threads together may take to end before commands in flight are cut."""
CUT_WAIT_S = 1.0
"""At exit, after cutting commands: how much longer they may take."""


class _WorkerHandle(QObject):
    """Main-thread signals wired to one worker's slots (queued: they run on the worker's thread)."""

    req_start = Signal()
    req_connect = Signal()
    req_test = Signal()
    req_gpus = Signal()
    req_submit = Signal(object)
    req_reconcile = Signal(object)
    req_poll = Signal(object)
    req_cancel = Signal(object)
    req_passphrase = Signal(str)
    req_check_job = Signal(object)

    def __init__(self, parent: QObject, on_thread_finished: Callable[[_WorkerHandle], None]) -> None:
        super().__init__(parent)
        self._on_thread_finished = on_thread_finished

    @Slot()
    def thread_finished(self) -> None:
        """Queued from the worker's thread as it ends; runs on the main thread and says which
        worker it was by itself.  Never `QObject.sender()` there: it takes Qt's signal lock while
        holding the GIL, and the ending thread deletes the worker (holding that lock) in a
        destructor that waits for the GIL (a deadlock seen in the lag test)."""
        self._on_thread_finished(self)


@dataclass
class _Cluster:
    profile: ClusterProfile
    worker: ClusterWorker
    thread: QThread
    handle: _WorkerHandle
    timer: QTimer
    status: str = "connecting"
    route: str = ""
    """How it was reached: the hops and which parser read the ssh config (shown by the UI)."""
    polling: bool = False
    idle_polls: int = 0
    ended: bool = False
    """Its thread ended and was cleaned up (see `_retired_thread_ended`)."""


class ClusterService(QObject):
    sig_cluster_status = Signal(str, str)
    """(cluster name, "connected" | "connecting" | "waiting: for the user" | "failed: reason")"""
    sig_job_changed = Signal(int)
    """A SLURM job's record changed (state, SLURM id, links); read it from the store."""
    sig_log_text = Signal(int, str, bool)
    """(job id, new log text, True when the job has ended and its log is complete)"""
    sig_gpus = Signal(str, object)
    """(cluster, GpuView or an error message)"""
    sig_unknown_host_key = Signal(str, str, str, str, str)
    """(cluster, host, SHA256 fingerprint, key type, base64 key): the UI asks the user."""
    sig_passphrase_needed = Signal(str, str)
    """(cluster, why): the UI prompts and answers with `provide_passphrase` (never stored in files)."""
    sig_tested = Signal(str, str)
    """(cluster, result line of "Test connection")"""
    sig_profiles_changed = Signal()
    sig_error = Signal(str)
    sig_job_checked = Signal(int, object)
    """(token from `check_quantize`/`check_evaluate`, PreparedJob or a line saying why not): the
    cluster was asked; nothing is stored or sent until `submit_prepared`."""
    sig_job_progress = Signal(int, object)
    """(job id, progress event) of a quantization or evaluation running on a cluster, as read from
    its log: the same events a local job's progress bar takes."""
    """Something the user should read (a cancel that failed, a submit refused)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        runs_dir: Path,
        clusters_file: Path,
        ssh_config: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._repo = JobRepository(conn)
        self._runs_dir = runs_dir
        self._clusters_file = clusters_file
        self._ssh_config = ssh_config
        self._host_key_files: dict[tuple[str, str], Path] = {}
        """(cluster, host label) -> the known_hosts file its unknown key is saved to when accepted."""
        self._clusters: dict[str, _Cluster] = {}
        self._retiring: dict[int, _Cluster] = {}
        """Workers asked to stop whose threads still exist (their wrappers must outlive them)."""
        self._submitting: dict[int, _Cluster] = {}
        """Jobs handed to a worker for submission, and to which one."""
        self._checking: set[int] = set()
        """Jobs whose lost sbatch answer a worker is looking up now."""
        self._check_due: dict[int, float] = {}
        """When (monotonic) to look up a lost answer next; `_check_tries` counts the looks."""
        self._check_tries: dict[int, int] = {}
        self._unknown_polls: dict[int, int] = {}
        self._check_tokens = 0
        self._cancel_sent: set[int] = set()
        """CANCELLING jobs whose scancel this run has sent (others, e.g. from an earlier run, get one)."""
        self._passphrases: dict[str, str] = {}
        """What the user typed for a cluster's key (memory only), lent to its downloads."""
        self.downloads = ResultDownloads(self._repo, self.profile, ssh_config, self, self._passphrases.get)
        """Cluster results copied here (each on its own thread and connection)."""
        self.downloads.sig_job_changed.connect(self.sig_job_changed)
        self.profile_error: str | None = None
        try:
            profiles = load_profiles(clusters_file)
        except ValueError as exc:
            self.profile_error = str(exc)
            log.error("cluster profiles not loaded: %s", exc)
            profiles = []
        for profile in profiles:
            self._start_cluster(profile)

    # -- profiles -----------------------------------------------------------------------------------
    @property
    def repo(self) -> JobRepository:
        return self._repo

    def profiles(self) -> list[ClusterProfile]:
        return [c.profile for c in self._clusters.values()]

    def profile(self, name: str) -> ClusterProfile:
        try:
            return self._clusters[name].profile
        except KeyError:
            raise ValueError(
                f"no cluster named {name!r} (known: {', '.join(self._clusters) or 'none'})"
            ) from None

    def status(self, name: str) -> str:
        return self._clusters[name].status if name in self._clusters else "unknown"

    def set_profiles(self, profiles: list[ClusterProfile]) -> None:
        """Save and apply: changed or removed clusters get a fresh worker, unchanged ones keep theirs."""
        save_profiles(self._clusters_file, profiles)
        self.profile_error = None
        wanted = {p.name: p for p in profiles}
        for name in list(self._clusters):
            if name not in wanted or wanted[name] != self._clusters[name].profile:
                self._stop_cluster(name)
        for profile in profiles:
            if profile.name not in self._clusters:
                self._start_cluster(profile)
        self.sig_profiles_changed.emit()

    def _start_cluster(self, profile: ClusterProfile) -> None:
        thread = QThread(self)
        thread.setObjectName(f"cluster-{profile.name}")
        worker = ClusterWorker(profile, self._ssh_config)
        worker.moveToThread(thread)
        handle = _WorkerHandle(self, self._on_thread_finished)
        handle.req_start.connect(worker.start)
        handle.req_connect.connect(worker.connect_now)
        handle.req_test.connect(worker.test)
        handle.req_gpus.connect(worker.fetch_gpus)
        handle.req_submit.connect(worker.submit)
        handle.req_reconcile.connect(worker.reconcile)
        handle.req_poll.connect(worker.poll)
        handle.req_cancel.connect(worker.cancel)
        handle.req_passphrase.connect(worker.set_passphrase)
        handle.req_check_job.connect(worker.check_job)
        worker.sig_job_checked.connect(self.sig_job_checked)
        # Cleanup runs in the worker's own thread as it ends (its timer may only be stopped there);
        # `stop` then hands the worker to this thread, which deletes it (`_retired_thread_ended`).
        thread.finished.connect(worker.stop, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(handle.thread_finished)  # queued: runs here, after its last answer
        for signal, slot in self._cluster_wiring(worker):
            signal.connect(slot)  # type: ignore[attr-defined]
        worker.sig_submit_step.connect(self._on_submit_step)
        worker.sig_submitted.connect(self._on_submitted)
        worker.sig_submit_failed.connect(self._on_submit_failed)
        worker.sig_submit_unsure.connect(self._on_submit_unsure)
        worker.sig_reconciled.connect(self._on_reconciled)
        worker.sig_cancelled.connect(self._on_cancelled)
        timer = QTimer(self)
        timer.setObjectName(f"cluster-poll-{profile.name}")
        timer.setSingleShot(True)
        timer.timeout.connect(lambda name=profile.name: self.poll_now(name))
        self._clusters[profile.name] = _Cluster(profile, worker, thread, handle, timer)
        thread.start()
        handle.req_start.emit()
        timer.start(0)  # resume tracking of jobs left from an earlier run at once

    def _cluster_wiring(self, worker: ClusterWorker) -> list[tuple[object, object]]:
        """What a worker says about its cluster: cut when it retires, so a stopping worker cannot
        speak for its successor.  Answers about jobs (submitted, failed, cancelled) stay wired."""
        return [
            (worker.sig_status, self._on_status),
            (worker.sig_route, self._on_route),
            (worker.sig_unknown_host_key, self._on_unknown_host_key),
            (worker.sig_tested, self.sig_tested),
            (worker.sig_passphrase_needed, self.sig_passphrase_needed),
            (worker.sig_gpus, self.sig_gpus),
            (worker.sig_polled, self._on_polled),
        ]

    def _stop_cluster(self, name: str) -> None:
        """Retire a cluster's worker without waiting for it (never blocks the GUI thread)."""
        cluster = self._clusters.pop(name)
        cluster.timer.stop()
        cluster.timer.deleteLater()
        for signal, slot in self._cluster_wiring(cluster.worker):
            signal.disconnect(slot)  # type: ignore[attr-defined]
        cluster.worker.request_stop()  # thread-safe; cuts a connection attempt in flight
        cluster.thread.quit()
        key = id(cluster)
        self._retiring[key] = cluster
        # The worker (handed back to this thread as its thread ends) and the QThread are deleted
        # here, by deleteLater in _retired_thread_ended: from then on dropping our Python
        # references cannot delete either of them a second time.
        cluster.thread.destroyed.connect(lambda *_args, key=key: self._retiring.pop(key, None))

    def _on_thread_finished(self, handle: _WorkerHandle) -> None:
        cluster = next((c for c in self._retiring.values() if c.handle is handle), None)
        if cluster is not None:
            self._retired_thread_ended(cluster)

    def _retired_thread_ended(self, cluster: _Cluster) -> None:
        """A retired worker's thread ended: free it.  What it was still submitting is never handed
        to the next worker to send: not sent if sbatch never ran, else looked up by name."""
        if cluster.ended:
            return
        cluster.ended = True
        released = [job_id for job_id, owner in self._submitting.items() if owner is cluster]
        for job_id in released:
            del self._submitting[job_id]
            self._settle_leftover(job_id, "the cluster's profile changed while it was being sent")
        self._checking -= {
            job_id for job_id in list(self._checking) if self._is_on(job_id, cluster.profile.name)
        }
        cluster.handle.deleteLater()
        cluster.worker.deleteLater()
        cluster.thread.deleteLater()
        if released:
            self._schedule(cluster.profile.name, 0)

    def _is_on(self, job_id: int, cluster: str) -> bool:
        job = self._repo.find(job_id)
        return job is not None and job.spec.cluster == cluster

    def _settle_leftover(self, job_id: int, why: str) -> None:
        """A submission nobody is sending: FAILED_TO_START if sbatch never ran (else left to the lookup)."""
        job = self._repo.find(job_id)
        if job is None or not cluster_jobs.awaits_answer(job):
            return
        if cluster_jobs.settle_unsent_leftover(self._repo, job, why) is not None:
            self.sig_job_changed.emit(job_id)
            self.sig_error.emit(f"job {job_id} was not submitted: {why}; submit it again to run it")

    def shutdown(self, timeout_s: float = SHUTDOWN_WAIT_S) -> list[str]:
        """Stop every worker; at process exit, so this is the one place that waits for them.

        Waits `timeout_s` in all, then cuts commands still running and waits CUT_WAIT_S more.
        Returns the names of threads still running (stuck in a TCP connect or a DNS lookup, which
        nothing can cut short): Qt must never destroy those, so the app exits without them.
        """
        self.downloads.shutdown()
        for name in list(self._clusters):
            self._stop_cluster(name)
        left = self._wait_retiring(timeout_s)
        if left:
            for cluster in left:
                cluster.worker.request_stop(cut_commands=True)
            left = self._wait_retiring(CUT_WAIT_S)
        for cluster in left:
            log.error("the worker of cluster %s did not stop; leaving it behind", cluster.profile.name)
        # The ended workers' last answers (a submission answered as the app quits) are stored now,
        # and what the ended threads leave is freed now, not from an event loop that may never run
        # again: a service dropped with these still posted crashes the next event loop (seen in tests).
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        for cluster in [c for c in self._retiring.values() if c not in left]:
            self._retired_thread_ended(cluster)
            for obj in (cluster.timer, cluster.handle, cluster.worker, cluster.thread):
                QCoreApplication.sendPostedEvents(obj, QEvent.Type.DeferredDelete)
        return [cluster.thread.objectName() for cluster in left]

    def workers_stopping(self) -> int:
        """Retired workers whose threads have not ended yet."""
        return len(self._retiring)

    def _wait_retiring(self, seconds: float) -> list[_Cluster]:
        deadline = time.monotonic() + seconds
        left = []
        for cluster in list(self._retiring.values()):
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not cluster.thread.wait(remaining_ms):
                left.append(cluster)
        return left

    # -- connection -----------------------------------------------------------------------------------
    @Slot(str, str)
    def _on_status(self, name: str, status: str) -> None:
        if name in self._clusters:
            self._clusters[name].status = status
            if status != "connected":
                self._clusters[name].polling = False
        self.sig_cluster_status.emit(name, status)

    @Slot(str, str)
    def _on_route(self, name: str, route: str) -> None:
        if name in self._clusters:
            self._clusters[name].route = route

    def route(self, name: str) -> str:
        """The last connection's route and resolver ("" before the first connection)."""
        return self._clusters[name].route if name in self._clusters else ""

    @Slot(str, str, str, str, str, str)
    def _on_unknown_host_key(
        self, name: str, host_label: str, fingerprint: str, key_type: str, key_b64: str, known_hosts: str
    ) -> None:
        """Remember which file the key goes to (the hop's own), then ask the user."""
        self._host_key_files[(name, host_label)] = Path(known_hosts)
        self.sig_unknown_host_key.emit(name, host_label, fingerprint, key_type, key_b64)

    def reconnect(self, name: str) -> None:
        self._clusters[name].handle.req_connect.emit()

    def test_connection(self, name: str) -> None:
        self._clusters[name].handle.req_test.emit()

    def refresh_gpus(self, name: str) -> None:
        self._clusters[name].handle.req_gpus.emit()

    def provide_passphrase(self, name: str, passphrase: str) -> None:
        if passphrase:
            self._passphrases[name] = passphrase
        else:
            self._passphrases.pop(name, None)
        self._clusters[name].handle.req_passphrase.emit(passphrase)

    def accept_host_key(self, name: str, host_label: str, key_type: str, key_base64: str) -> None:
        """The user saw the fingerprint and accepted: record the key, then connect."""
        known_hosts = self._host_key_files.pop((name, host_label), None)
        if known_hosts is None:  # not asked by a worker (tests): the cluster's own file
            known_hosts = target_for_profile(self.profile(name), self._ssh_config).known_hosts
        accept_host_key(known_hosts, host_label, key_type, key_base64)
        self.reconnect(name)

    def drop_connection(self, name: str) -> None:
        """Simulate a network failure (tests): the worker reconnects with backoff on its next use."""
        self._clusters[name].worker.drop_connection()

    # -- submit ---------------------------------------------------------------------------------------
    def preview(self, request: SlurmSubmission) -> str:
        """The script as it will be sent (the workspace as written in the profile)."""
        from msquant_desktop.slurm.script import render_preview

        return render_preview(request, self.profile(request.cluster))

    def submit(
        self, request: SlurmSubmission, kind: JobKind | None = None, meta: dict[str, Any] | None = None
    ) -> JobRecord:
        """Store the job (STARTING, with its run folder) and hand it to the cluster's worker, which
        sends it now, once.  `kind`/`meta`: a job of ours (see `submit_prepared`).

        Raises ValueError (nothing stored) for an unknown cluster or a request the profile refuses.
        """
        profile = self.profile(request.cluster)
        validate(request, profile)
        from msquant_desktop.slurm.script import edit_diff

        # An edited preview is audited here (rendering it), before anything is stored.
        diff = edit_diff(request, profile)
        job = cluster_jobs.create_job(self._repo, self._runs_dir, request, kind, meta, script_diff=diff)
        cluster = self._clusters[request.cluster]
        self._submitting[job.id] = cluster
        cluster.handle.req_submit.emit(job)
        self.sig_job_changed.emit(job.id)
        return job

    def check_quantize(
        self, cluster: str, request: QuantizeRequest, python: str, resources: ClusterResources
    ) -> int:
        """Ask the cluster (its worker thread) whether this quantization can run there; the answer
        comes as `sig_job_checked(token, ...)`.  Raises ValueError for an unknown cluster or no Python."""
        profile = self.profile(cluster)
        python = cluster_quantize.python_for(profile, python)
        bundle_dir = self._runs_dir.parent / "workers"
        return self._check_job(
            cluster, lambda c: cluster_quantize.prepare_quantize(c, request, python, resources, bundle_dir)
        )

    def check_evaluate(
        self,
        cluster: str,
        request: EvaluateRequest,
        python: str,
        resources: ClusterResources,
        evaluates: int | None = None,
    ) -> int:
        """As `check_quantize`, for an evaluation (linked to quantization `evaluates` in Results; when
        not given, to the quantization on `cluster` whose output the model is, as `slurm evaluate`)."""
        profile = self.profile(cluster)
        python = cluster_quantize.python_for(profile, python)
        if evaluates is None:
            evaluates = cluster_quantize.quantization_of(self._repo, cluster, request.model)
        bundle_dir = self._runs_dir.parent / "workers"
        return self._check_job(
            cluster,
            lambda c: cluster_quantize.prepare_evaluate(c, request, python, resources, bundle_dir, evaluates),
        )

    def _check_job(self, cluster: str, prepare: Callable[[SlurmClient], cluster_quantize.PreparedJob]) -> int:
        self._check_tokens += 1
        self._clusters[cluster].handle.req_check_job.emit(JobCheck(self._check_tokens, prepare))
        return self._check_tokens

    def submit_prepared(self, prepared: cluster_quantize.PreparedJob) -> JobRecord:
        """Store and send a job the cluster has checked (`sig_job_checked`)."""
        return self.submit(prepared.submission, prepared.kind, prepared.meta)

    @Slot(object)
    def _on_submit_step(self, gate: StepGate) -> None:
        """Store the step a worker is about to take, then let it go on (or not: cancelled)."""
        try:
            remote = RemotePaths(gate.remote_dir) if gate.remote_dir else None
            gate.allowed = cluster_jobs.record_step(self._repo, gate.job_id, gate.step, gate.script, remote)
            if not gate.allowed:
                gate.reason = "not sent: cancelled before sbatch ran"
        except Exception as exc:  # the worker must hear back whatever happened here
            gate.allowed = False
            gate.reason = f"not sent: the step could not be recorded ({exc})"
            log.exception("recording submit step %s of job %s failed", gate.step, gate.job_id)
        finally:
            gate.done.set()

    @Slot(int, str, str, str)
    def _on_submitted(self, job_id: int, slurm_id: str, script: str, remote_dir: str) -> None:
        self._submitting.pop(job_id, None)
        job = cluster_jobs.record_submitted(self._repo, job_id, slurm_id, script, RemotePaths(remote_dir))
        self.sig_job_changed.emit(job_id)
        if job.state is JobState.CANCELLING:  # cancelled while sbatch ran: scancel now that the id is known
            self.cancel(job_id)
        self._schedule(job.spec.cluster or "", 0)

    @Slot(int, str, str)
    def _on_submit_failed(self, job_id: int, reason: str, script: str) -> None:
        self._submitting.pop(job_id, None)
        if cluster_jobs.record_not_sent(self._repo, job_id, reason, script or None) is not None:
            self.sig_job_changed.emit(job_id)
            self.sig_error.emit(f"job {job_id}: {reason}")

    @Slot(int, str)
    def _on_submit_unsure(self, job_id: int, reason: str) -> None:
        """sbatch ran and its answer was lost: never failed while it may run; look it up by name."""
        self._submitting.pop(job_id, None)
        job = cluster_jobs.record_answer_lost(self._repo, job_id, reason)
        self.sig_job_changed.emit(job_id)
        self.sig_error.emit(
            f"job {job_id}: {reason}; looking for {job.spec.meta.get('slurm_name', '')} on the cluster "
            "(it is never submitted twice)"
        )
        self._check_due[job_id] = time.monotonic()
        self._schedule(job.spec.cluster or "", 0)

    @Slot(int, object, str)
    def _on_reconciled(self, job_id: int, check: SubmitCheck, remote_dir: str) -> None:
        self._checking.discard(job_id)
        before = self._repo.find(job_id)
        if before is None:
            return
        job, message = cluster_jobs.apply_check(self._repo, job_id, check, RemotePaths(remote_dir))
        if job != before:
            self.sig_job_changed.emit(job_id)
        if message:
            self.sig_error.emit(message)
        if not cluster_jobs.awaits_answer(job):
            self._check_due.pop(job_id, None)
            self._check_tries.pop(job_id, None)
            if job.state is JobState.CANCELLING and job.slurm_job_id:
                self.cancel(job_id)
        else:
            tries = self._check_tries.get(job_id, 0) + 1
            self._check_tries[job_id] = tries
            if check.outcome == CHECK_ABSENT:
                delay = cluster_jobs.ABSENT_CONFIRM_S
            else:  # the cluster did not answer (or sbatch still runs): back off, up to a minute
                delay = reconnect_delay(tries) if check.outcome == CHECK_UNKNOWN else 1.0
            self._check_due[job_id] = time.monotonic() + delay
        self._schedule(job.spec.cluster or "", 0)

    # -- tracking -------------------------------------------------------------------------------------
    def _schedule(self, name: str, seconds: float) -> None:
        if name in self._clusters:
            self._clusters[name].timer.start(int(seconds * 1000))

    def poll_now(self, name: str) -> None:
        cluster = self._clusters.get(name)
        if cluster is None:
            return
        jobs = cluster_jobs.open_jobs(self._repo, name)
        now = time.monotonic()
        waiting = [j for j in jobs if cluster_jobs.awaits_answer(j) and j.id not in self._submitting]
        for job in waiting:  # never sent again: settled if sbatch never ran, else looked up by name
            if cluster_jobs.sent_by_another_process(job):
                continue
            if not sbatch_may_have_run(cluster_jobs.submit_step(job)):
                self._settle_leftover(job.id, "the app stopped before it was sent")
            elif job.id not in self._checking and self._check_due.setdefault(job.id, now) <= now:
                self._checking.add(job.id)
                cluster.handle.req_reconcile.emit(job)
        for job in jobs:  # a cancel asked before a restart, or before the SLURM id was known
            if job.state is JobState.CANCELLING and job.slurm_job_id and job.id not in self._cancel_sent:
                self.cancel(job.id)
        tracked = [t for t in (cluster_jobs.tracked(j) for j in jobs) if t is not None]
        if tracked and not cluster.polling:
            cluster.polling = True
            cluster.handle.req_poll.emit(tracked)
        cluster.idle_polls = 0 if tracked else cluster.idle_polls + 1
        delay = next_poll_interval(len(tracked), cluster.idle_polls)
        due = [
            self._check_due[j.id] for j in waiting if j.id in self._check_due and j.id not in self._checking
        ]
        if due:
            delay = max(0.2, min(delay, min(due) - now))
        self._schedule(name, delay)

    @Slot(str, object)
    def _on_polled(self, name: str, result: PollResult) -> None:
        if name in self._clusters:
            self._clusters[name].polling = False
        for update in result.updates:
            before = self._repo.find(update.job_id)
            if before is None or before.state.is_final:
                continue
            job, text = cluster_jobs.apply_update(self._repo, update)
            if update.state is None and update.final is None and update.slurm_state == "":
                count = self._unknown_polls.get(job.id, 0) + 1
                self._unknown_polls[job.id] = count
                if count >= LOST_AFTER_POLLS:
                    job = cluster_jobs.mark_lost(
                        self._repo,
                        job.id,
                        "left the queue; neither sacct, scontrol, an exit marker nor the log "
                        "says how it ended",
                    )
            if text or job.state.is_final:
                self.sig_log_text.emit(job.id, text, job.state.is_final)
            progress = job.result.get("progress")
            if progress and progress != before.result.get("progress"):
                # Also on the poll that finds it ended: a job faster than the polls still shows
                # where it got to (views ignore progress of a job that is no longer active).
                self.sig_job_progress.emit(job.id, progress)
            if job != before:
                self.sig_job_changed.emit(job.id)

    # -- cancel ---------------------------------------------------------------------------------------
    def cancel(self, job_id: int) -> None:
        """scancel a SLURM job; the state is changed only when the cluster confirms it.

        A job not sent yet (sbatch never ran) is CANCELLED at once, and its sending stops before
        sbatch.  One whose sbatch may have run goes CANCELLING: scancel follows as soon as its id is
        known (answered or found by name); if it turns out never submitted, it ends CANCELLED.
        """
        job = self._repo.get(job_id)
        if job.spec.target is not JobTarget.SLURM:
            raise ValueError(f"job {job_id} is not a SLURM job")
        if job.state.is_final:
            return
        if not job.slurm_job_id:
            if cluster_jobs.cancel_if_unsent(self._repo, job_id):
                pass  # the worker, if still sending it, stops before sbatch (its next step is refused)
            elif job.state is JobState.STARTING:
                self._repo.transition(
                    job_id, JobState.CANCELLING, note="cancel asked while sbatch's answer is awaited"
                )
                self._check_due[job_id] = time.monotonic()
                self._schedule(job.spec.cluster or "", 0)
            self.sig_job_changed.emit(job_id)
            return
        if job.state is JobState.RUNNING:
            self._repo.transition(job_id, JobState.CANCELLING, note="scancel sent")
            self.sig_job_changed.emit(job_id)
        name = job.spec.cluster or ""
        if name not in self._clusters:  # quitting, or the cluster was removed: sent again on the next start
            return
        self._cancel_sent.add(job_id)
        tasks = cluster_jobs.tracked(job)
        self._clusters[name].handle.req_cancel.emit(
            CancelRequest(
                job_id,
                job.slurm_job_id,
                job.result.get("remote_run_dir", ""),
                tasks.tasks if tasks is not None else (),
            )
        )

    @Slot(int, object)
    def _on_cancelled(self, job_id: int, outcome: object) -> None:
        job = self._repo.get(job_id)
        if isinstance(outcome, FinalState):
            if not job.state.is_final:
                cluster_jobs.apply_final(self._repo, job, outcome)
                self.sig_job_changed.emit(job_id)
        else:
            self.sig_error.emit(f"cancel of job {job_id}: {outcome}")
        self._schedule(job.spec.cluster or "", 0)

    def summary(self) -> str:
        """One line for the status bar."""
        if not self._clusters:
            return "Clusters: none configured"
        parts = [f"{n}: {c.status.split(':', 1)[0]}" for n, c in self._clusters.items()]
        return "Clusters: " + ", ".join(parts)
