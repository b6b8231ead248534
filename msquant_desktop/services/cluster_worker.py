"""One worker per cluster, on its own QThread, owning that cluster's persistent SSH connection.

Every request arrives as a queued signal and is served in order (one serialized executor per
cluster); every answer leaves as a signal that Qt delivers on the main thread.  The worker never
touches the store or a widget.

Stopping never makes the GUI thread wait: `request_stop()` (thread-safe) cuts a connection attempt
in flight and makes every later request a no-op, then the thread's event loop ends on its own.  An
interrupted request reports nothing (no "submit failed" for a job whose submission merely stopped);
whatever was left undone is picked up again by the next worker of that cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from msquant_desktop.domain.jobs import JobRecord
from msquant_desktop.domain.slurm import ClusterProfile, reconnect_delay
from msquant_desktop.services.cluster_jobs import submit_never_twice
from msquant_desktop.slurm.client import PollResult, SlurmClient, SlurmError, TrackedJob
from msquant_desktop.slurm.connection import (
    PassphraseRequired,
    SshConnection,
    SshError,
    UnknownHostKey,
    target_for_profile,
)
from msquant_desktop.slurm.script import RemotePaths, ScriptError

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClusterWorker(QObject):
    sig_status = Signal(str, str)
    """(cluster, "connected" | "connecting" | "failed: reason")"""
    sig_unknown_host_key = Signal(str, str, str, str, str)
    """(cluster, host label, SHA256 fingerprint, key type, base64 key): ask the user before saving."""
    sig_passphrase_needed = Signal(str, str)
    """(cluster, why): the SSH key is encrypted; answer with `set_passphrase`."""
    sig_tested = Signal(str, str)
    """(cluster, a line for the user: latency and SLURM version, or the failure)"""
    sig_gpus = Signal(str, object)
    """(cluster, GpuView or an error string)"""
    sig_submitted = Signal(int, str, str, str)
    """(job id, SLURM job id, script, remote run dir)"""
    sig_submit_failed = Signal(int, str, str)
    """(job id, reason, script or "")"""
    sig_polled = Signal(str, object)
    """(cluster, PollResult)"""
    sig_cancelled = Signal(int, object)
    """(job id, FinalState or an error string)"""

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
        self.connect_now()

    def _ensure(self) -> SlurmClient | None:
        if self._client is not None and self._client.connection.is_open:
            return self._client
        if self._blocked or self._stopping:
            return None
        self.sig_status.emit(self.profile.name, "connecting")
        connection = SshConnection(target_for_profile(self.profile, self._ssh_config), self._passphrase)
        self._connecting = connection
        try:
            if self._stopping:  # request_stop() may have looked before `_connecting` was set
                raise SshError(f"connection to {self.profile.name} given up")
            connection.connect()
        except UnknownHostKey as exc:
            self._blocked = True
            key = exc.key
            self.sig_status.emit(self.profile.name, f"failed: unknown host key {exc.fingerprint}")
            self.sig_unknown_host_key.emit(
                self.profile.name, exc.host_label, exc.fingerprint, key.get_name(), key.get_base64()
            )
            return None
        except PassphraseRequired as exc:
            self._blocked = True
            self.sig_status.emit(self.profile.name, "failed: the SSH key needs its passphrase")
            self.sig_passphrase_needed.emit(self.profile.name, str(exc))
            return None
        except SshError as exc:
            if self._stopping:
                return None
            self._failures += 1
            delay = reconnect_delay(self._failures)
            self._blocked = "CHANGED" in str(exc)
            suffix = "" if self._blocked else f" (retry in {delay:.0f} s)"
            self.sig_status.emit(self.profile.name, f"failed: {exc}{suffix}")
            if not self._blocked and self._reconnect_timer is not None:
                self._reconnect_timer.start(int(delay * 1000))
            return None
        finally:
            self._connecting = None
        if self._stopping:
            connection.close()
            return None
        self._failures = 0
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
        if self._reconnect_timer is not None:
            self._reconnect_timer.stop()
        if self._client is not None:
            self._client.connection.close()
            self._client = None

    def drop_connection(self) -> None:
        """Cut the socket as a network failure would (used by tests of the reconnect path)."""
        if self._client is not None:
            self._client.connection.drop()

    # -- requests ------------------------------------------------------------------------------------
    @Slot()
    def test(self) -> None:
        if self._stopping:
            return
        try:
            started = time.perf_counter()
            version = self._call(lambda client: client.version())
            latency_ms = (time.perf_counter() - started) * 1000
            self.sig_tested.emit(
                self.profile.name, f"connected; SLURM {version}; command latency {latency_ms:.0f} ms"
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

    @Slot(object)
    def submit(self, request: tuple[JobRecord, bool]) -> None:
        job, reconcile_first = request
        if self._stopping:  # left STARTING: the service hands it to the next worker (reconciled by name)
            return
        client = self._ensure()
        if client is None:
            if not self._stopping:
                self.sig_submit_failed.emit(job.id, f"cannot reach {self.profile.name}", "")
            return
        try:
            slurm_id, script, remote = submit_never_twice(client, job, reconcile_first)
        except SshError as exc:
            self._lost(exc)
            if not self._stopping:  # cut short: whether sbatch ran is unknown; reconciled by name later
                self.sig_submit_failed.emit(job.id, f"connection lost while submitting: {exc}", "")
        except (ScriptError, OSError) as exc:
            self.sig_submit_failed.emit(job.id, str(exc), "")
        except SlurmError as exc:
            self.sig_submit_failed.emit(job.id, str(exc), "")
        else:
            self.sig_submitted.emit(job.id, slurm_id, script, remote.run_dir)

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

    @Slot(int, str, str)
    def cancel(self, job_id: int, slurm_id: str, remote_dir: str) -> None:
        if self._stopping:
            return
        try:
            final = self._call(lambda client: client.cancel(slurm_id, RemotePaths(remote_dir)))
            self.sig_cancelled.emit(job_id, final if final is not None else "not confirmed yet")
        except SshError as exc:
            self._lost(exc)
            if not self._stopping:
                self.sig_cancelled.emit(job_id, str(exc))
        except SlurmError as exc:
            self.sig_cancelled.emit(job_id, str(exc))
