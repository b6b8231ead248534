"""One worker per cluster, on its own QThread, owning that cluster's persistent SSH connection.

Every request arrives as a queued signal and is served in order (one serialized executor per
cluster); every answer leaves as a signal that Qt delivers on the main thread.  The worker never
touches the store or a widget.

Stopping never makes the GUI thread wait: `request_stop()` (thread-safe) cuts a connection attempt
in flight and makes every later request a no-op, then the thread's event loop ends on its own.  An
interrupted request reports nothing (no "submit failed" for a job whose submission merely stopped);
the service settles what was left (a submission that never reached sbatch is not sent later).

A submission asks the main thread to store each step before taking it (`sig_submit_step` with a
`StepGate` the service answers): sbatch runs only once the store says it may have run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from msquant_desktop.domain.jobs import JobRecord
from msquant_desktop.domain.slurm import ClusterProfile, reconnect_delay
from msquant_desktop.services.cluster_jobs import (
    AnswerLost,
    NotSent,
    StepRecorder,
    remote_of,
    send_submission,
)
from msquant_desktop.services.cluster_quantize import ClusterCheckError, PreparedJob
from msquant_desktop.slurm.client import (
    CHECK_UNKNOWN,
    PollResult,
    SlurmClient,
    SlurmError,
    SubmitCheck,
    TrackedJob,
)
from msquant_desktop.slurm.connection import (
    HOST_KEY_PROBLEMS,
    PassphraseRequired,
    SshConnection,
    SshError,
    UnknownHostKey,
    target_for_profile,
)
from msquant_desktop.slurm.script import RemotePaths

log = logging.getLogger(__name__)
T = TypeVar("T")

STEP_ACK_TIMEOUT_S = 30.0
"""How long a submission waits for the main thread to store its next step before giving up (not sent)."""


@dataclass
class StepGate:
    """A submission step the worker asks the main thread to store before taking it.

    The main thread sets `allowed` (False: the job was cancelled meanwhile, with `reason`) and then
    `done`; the worker waits on `done` (never the other way round, so neither thread blocks the GUI).
    """

    job_id: int
    step: str
    script: str | None
    remote_dir: str | None
    allowed: bool = False
    reason: str = ""
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class JobCheck:
    """Check a quantization or evaluation on the cluster before it is stored (`prepare` is one of
    `services.cluster_quantize.prepare_*` with its request bound); answered with `sig_job_checked`."""

    token: int
    prepare: Callable[[SlurmClient], PreparedJob]


@dataclass(frozen=True)
class CancelRequest:
    job_id: int
    slurm_id: str
    remote_dir: str
    tasks: tuple[str, ...] = ()


class ClusterWorker(QObject):
    sig_status = Signal(str, str)
    """(cluster, "connected" | "connecting" | "waiting: for the user" | "failed: reason")"""
    sig_unknown_host_key = Signal(str, str, str, str, str, str)
    """(cluster, host label, SHA256 fingerprint, key type, base64 key, known_hosts file): ask the user
    before saving (the label may be a jump host's; the file is that hop's)."""
    sig_passphrase_needed = Signal(str, str)
    """(cluster, why): the SSH key is encrypted; answer with `set_passphrase`.  Only ever in answer
    to the user (Test connection), never from a connection the app opened on its own."""
    sig_route = Signal(str, str)
    """(cluster, the route and which parser read the ssh config), sent just before "connected"."""
    sig_tested = Signal(str, str)
    """(cluster, a line for the user: latency and SLURM version, or the failure)"""
    sig_gpus = Signal(str, object)
    """(cluster, GpuView or an error string)"""
    sig_submit_step = Signal(object)
    """A StepGate: store this step of a submission (before it is taken) and answer."""
    sig_submitted = Signal(int, str, str, str)
    """(job id, SLURM job id, script, remote run dir)"""
    sig_submit_failed = Signal(int, str, str)
    """(job id, reason, script or ""): nothing was submitted."""
    sig_submit_unsure = Signal(int, str)
    """(job id, reason): sbatch was run and its answer lost; the job may exist."""
    sig_reconciled = Signal(int, object, str)
    """(job id, SubmitCheck, remote run dir): what the cluster says about a lost answer."""
    sig_polled = Signal(str, object)
    """(cluster, PollResult)"""
    sig_cancelled = Signal(int, object)
    """(job id, FinalState or an error string)"""
    sig_job_checked = Signal(int, object)
    """(token of a JobCheck, PreparedJob or a line saying why it cannot run there)"""

    def __init__(self, profile: ClusterProfile, ssh_config: Path | None = None) -> None:
        super().__init__()
        self.profile = profile
        self._ssh_config = ssh_config
        self._passphrase: str | None = None
        self._client: SlurmClient | None = None
        self._failures = 0
        self._blocked = False  # a host-key problem: no retries until the user decides
        self._reconnect_timer: QTimer | None = None
        self._stopping = False
        self._connecting: SshConnection | None = None
        self._last_error = ""
        self._awaiting_passphrase = ""  # why, while an encrypted key waits for the user
        self._route = ""

    # -- connection ---------------------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        """Runs in the worker thread: create the timer there, then connect."""
        self._reconnect_timer = QTimer(self)
        self._reconnect_timer.setObjectName(f"cluster-reconnect-{self.profile.name}")
        self._reconnect_timer.setSingleShot(True)
        self._reconnect_timer.timeout.connect(self.connect_now)
        self.connect_now()

    @Slot()
    def connect_now(self) -> None:
        self._blocked = False
        self._ensure()

    def request_stop(self, cut_commands: bool = False) -> None:
        """From any thread: serve no more requests and give up a connection attempt in flight.

        With `cut_commands` a command already running on an open connection is cut as well (the
        app is quitting); otherwise it may finish (bounded by its own timeout).
        """
        self._stopping = True
        connecting = self._connecting
        if connecting is not None:
            connecting.abort()
        client = self._client
        if cut_commands and client is not None:
            client.connection.abort()

    @Slot(str)
    def set_passphrase(self, passphrase: str) -> None:
        self._passphrase = passphrase or None
        self._awaiting_passphrase = ""
        self.connect_now()

    def _ensure(self) -> SlurmClient | None:
        if self._client is not None and self._client.connection.is_open:
            return self._client
        if self._blocked or self._stopping:
            return None
        self.sig_status.emit(self.profile.name, "connecting")
        connection: SshConnection | None = None
        try:
            # Resolving runs `ssh -G` (a child process): here on the worker's thread, never the GUI's.
            target = target_for_profile(self.profile, self._ssh_config)
            connection = SshConnection(target, self._passphrase)
            self._connecting = connection
            if self._stopping:  # request_stop() may have looked before `_connecting` was set
                raise SshError(f"connection to {self.profile.name} given up")
            connection.connect()
        except UnknownHostKey as exc:
            self._blocked = True
            self._last_error = str(exc)
            key = exc.key
            # Waiting for the user's answer in the host-key dialog: not a failure (yet).
            self.sig_status.emit(
                self.profile.name, f"waiting: confirm the host key of {exc.host_label} ({exc.fingerprint})"
            )
            self.sig_unknown_host_key.emit(
                self.profile.name,
                exc.host_label,
                exc.fingerprint,
                key.get_name(),
                key.get_base64(),
                str(exc.known_hosts),
            )
            return None
        except PassphraseRequired as exc:
            # Never a prompt from a connection the app opened by itself (start-up, reconnects): the
            # user is asked when they press Test connection (`test`).
            self._blocked = True
            self._last_error = "the SSH key needs its passphrase"
            self._awaiting_passphrase = str(exc)
            self.sig_status.emit(
                self.profile.name, "waiting: the SSH key needs its passphrase (Test connection asks for it)"
            )
            return None
        except SshError as exc:
            self._last_error = str(exc)
            if self._stopping:
                return None
            self._failures += 1
            delay = reconnect_delay(self._failures)
            self._blocked = isinstance(exc, HOST_KEY_PROBLEMS)
            suffix = "" if self._blocked else f" (retry in {delay:.0f} s)"
            self.sig_status.emit(self.profile.name, f"failed: {exc}{suffix}")
            if not self._blocked and self._reconnect_timer is not None:
                self._reconnect_timer.start(int(delay * 1000))
            return None
        finally:
            self._connecting = None
        assert connection is not None  # every failure above returned
        if self._stopping:
            connection.close()
            return None
        self._failures = 0
        self._route = connection.target.describe()
        self.sig_route.emit(self.profile.name, self._route)
        self._client = SlurmClient(self.profile, connection)
        self.sig_status.emit(self.profile.name, "connected")
        return self._client

    def _lost(self, exc: Exception) -> None:
        if self._client is not None:
            self._client.connection.close()
        self._client = None
        if self._stopping:
            return
        self._failures += 1
        self.sig_status.emit(self.profile.name, f"failed: {exc} (reconnecting)")
        if self._reconnect_timer is not None:
            self._reconnect_timer.start(int(reconnect_delay(self._failures) * 1000))

    def _call(self, operation: Callable[[SlurmClient], T]) -> T:
        """Run `operation`; if the connection turns out dead, reconnect at once and try once more
        (every operation here is safe to repeat: reads, and scancel of an ended job is a no-op)."""
        client = self._ensure()
        if client is None:
            raise SshError(f"not connected to {self.profile.name}")
        try:
            return operation(client)
        except SshError:
            client.connection.close()
            self._client = None
            client = self._ensure()
            if client is None:
                raise
            return operation(client)

    @Slot()
    def stop(self) -> None:
        """Run on the worker's own thread as it ends (its timer may only be stopped there); then
        the worker is pushed to the main thread, to be deleted there: a Python-wrapped QObject
        destroyed on this thread would wait for the GIL inside Qt's signal lock while the main
        thread, holding the GIL, may want that lock (one such deadlock hung a test run)."""
        if self._reconnect_timer is not None:
            self._reconnect_timer.stop()
        if self._client is not None:
            self._client.connection.close()
            self._client = None
        app = QCoreApplication.instance()
        if app is not None and self.thread() is not app.thread():
            # Requests still queued for a retired worker are dropped, never run on the GUI thread.
            QCoreApplication.removePostedEvents(self)
            self.moveToThread(app.thread())

    def drop_connection(self) -> None:
        """Cut the socket as a network failure would (used by tests of the reconnect path)."""
        if self._client is not None:
            self._client.connection.drop()

    # -- requests ------------------------------------------------------------------------------------
    @Slot()
    def test(self) -> None:
        if self._stopping:
            return
        if self._awaiting_passphrase:  # the user asked: now is the time to ask for the passphrase
            self.sig_passphrase_needed.emit(self.profile.name, self._awaiting_passphrase)
            return
        try:
            started = time.perf_counter()
            version = self._call(lambda client: client.version())
            latency_ms = (time.perf_counter() - started) * 1000
            self.sig_tested.emit(
                self.profile.name,
                f"connected; SLURM {version}; command latency {latency_ms:.0f} ms; route {self._route}",
            )
        except (SshError, SlurmError) as exc:
            self.sig_tested.emit(self.profile.name, f"failed: {exc}")

    @Slot()
    def fetch_gpus(self) -> None:
        if self._stopping:
            return
        try:
            self.sig_gpus.emit(self.profile.name, self._call(lambda client: client.gpu_view()))
        except SshError as exc:
            self._lost(exc)
            if self._stopping:
                return
            self.sig_gpus.emit(self.profile.name, str(exc))
        except SlurmError as exc:
            self.sig_gpus.emit(self.profile.name, str(exc))

    def _step_recorder(self, job_id: int) -> StepRecorder:
        """Each step is stored by the main thread before it is taken (see StepGate)."""

        def record(step: str, script: str | None, remote: RemotePaths | None) -> None:
            gate = StepGate(job_id, step, script, remote.run_dir if remote is not None else None)
            self.sig_submit_step.emit(gate)
            deadline = time.monotonic() + STEP_ACK_TIMEOUT_S
            while not gate.done.wait(0.05):
                if self._stopping:
                    raise NotSent("not sent: the app stopped before sbatch ran")
                if time.monotonic() > deadline:
                    raise NotSent(
                        f"not sent: the step {step!r} was not recorded within {STEP_ACK_TIMEOUT_S:.0f} s"
                    )
            if not gate.allowed:
                raise NotSent(gate.reason or "not sent: cancelled before sbatch ran")

        return record

    @Slot(object)
    def submit(self, job: JobRecord) -> None:
        """Send one submission, once: answered (submitted or refused), not sent, or answer lost."""
        if self._stopping:  # left STARTING at `stored`: the service settles it (never sent later)
            return
        client = self._ensure()
        if client is None:
            if not self._stopping:
                why = f" ({self._last_error})" if self._last_error else ""
                self.sig_submit_failed.emit(job.id, f"not sent: cannot reach {self.profile.name}{why}", "")
            return
        try:
            slurm_id, script, remote = send_submission(client, job, self._step_recorder(job.id))
        except NotSent as exc:
            if isinstance(exc.__cause__, SshError):
                self._lost(exc.__cause__)
            if not self._stopping:
                self.sig_submit_failed.emit(job.id, str(exc), "")
        except AnswerLost as exc:
            if isinstance(exc.__cause__, SshError):
                self._lost(exc.__cause__)
            self.sig_submit_unsure.emit(job.id, str(exc))
        else:
            self.sig_submitted.emit(job.id, slurm_id, script, remote.run_dir)

    @Slot(object)
    def check_job(self, request: JobCheck) -> None:
        """The cluster's Python, its llmcompressor and the paths, asked over this connection."""
        if self._stopping:
            return
        try:
            answer: PreparedJob | str = self._call(request.prepare)
        except ClusterCheckError as exc:
            answer = str(exc)
        except (SshError, SlurmError) as exc:
            if isinstance(exc, SshError):
                self._lost(exc)
            if self._stopping:
                return
            answer = f"cannot check {self.profile.name}: {exc}"
        except OSError as exc:  # the worker bundle could not be written here
            answer = f"cannot prepare the worker: {exc}"
        self.sig_job_checked.emit(request.token, answer)

    @Slot(object)
    def reconcile(self, job: JobRecord) -> None:
        """Ask the cluster about a submission whose sbatch answer was lost (read-only, never sbatch)."""
        if self._stopping:
            return
        name = job.spec.meta.get("slurm_name", "")
        client = self._ensure()
        if client is None:
            if not self._stopping:
                check = SubmitCheck(CHECK_UNKNOWN, detail=f"cannot reach {self.profile.name}")
                self.sig_reconciled.emit(job.id, check, "")
            return

        def look(c: SlurmClient) -> tuple[SubmitCheck, RemotePaths]:
            remote = remote_of(job, c.workspace())
            return c.check_submission(remote, name), remote

        try:
            check, remote = self._call(look)
        except SshError as exc:
            self._lost(exc)
            if not self._stopping:
                self.sig_reconciled.emit(job.id, SubmitCheck(CHECK_UNKNOWN, detail=str(exc)), "")
        except SlurmError as exc:
            self.sig_reconciled.emit(job.id, SubmitCheck(CHECK_UNKNOWN, detail=str(exc)), "")
        else:
            self.sig_reconciled.emit(job.id, check, remote.run_dir)

    @Slot(object)
    def poll(self, jobs: list[TrackedJob]) -> None:
        if self._stopping:
            return
        try:
            self.sig_polled.emit(self.profile.name, self._call(lambda client: client.poll(jobs)))
        except SshError as exc:
            self._lost(exc)
            self.sig_polled.emit(self.profile.name, PollResult())
        except SlurmError as exc:
            log.warning("poll of %s failed: %s", self.profile.name, exc)
            self.sig_polled.emit(self.profile.name, PollResult())

    @Slot(object)
    def cancel(self, request: CancelRequest) -> None:
        if self._stopping:
            return
        job_id = request.job_id
        try:
            final = self._call(
                lambda client: client.cancel(
                    request.slurm_id, RemotePaths(request.remote_dir), tasks=request.tasks
                )
            )
            self.sig_cancelled.emit(job_id, final if final is not None else "not confirmed yet")
        except SshError as exc:
            self._lost(exc)
            if not self._stopping:
                self.sig_cancelled.emit(job_id, str(exc))
        except SlurmError as exc:
            self.sig_cancelled.emit(job_id, str(exc))
