"""The app's downloads of cluster results: `cluster_download.download_result` on a thread of its own.

Each download opens its own SSH connection (a folder of gigabytes must not hold up the cluster
worker's polls) and reports through signals Qt delivers on the main thread; progress is sent at most
every PROGRESS_EVERY_S.  The store is written on the main thread only: when a download is whole its
folder is recorded on the quantization's result (`record_local_copy`) and the job is announced as
changed, so the Results row shows the copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.services.cluster_download import (
    DownloadCancelled,
    DownloadDone,
    DownloadError,
    DownloadProgress,
    download_result,
    record_local_copy,
    source_of,
)
from msquant_desktop.slurm.connection import PassphraseRequired, SshConnection, target_for_profile
from msquant_desktop.store import JobRepository

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.1


class ResultDownloads(QObject):
    sig_progress = Signal(int, object)
    """(quantize job id, DownloadProgress) while its output is copied here."""
    sig_notice = Signal(int, str)
    """(job id, line): the connection was cut and the download resumes after a pause."""
    sig_finished = Signal(int, str)
    """(job id, "" when the copy is whole and recorded on the result, else why it stopped)."""
    sig_job_changed = Signal(int)
    """(job id): the quantization's result now records its local copy."""
    _sig_ended = Signal(int, object)  # from the download's thread: DownloadDone or a line

    def __init__(
        self,
        repo: JobRepository,
        profile_of: Callable[[str], ClusterProfile],
        ssh_config: Path | None = None,
        parent: QObject | None = None,
        passphrase_of: Callable[[str], str | None] = lambda _cluster: None,
    ) -> None:
        super().__init__(parent)
        self._repo = repo
        self._profile_of = profile_of
        self._ssh_config = ssh_config
        self._passphrase_of = passphrase_of
        """The passphrase the user gave the Clusters tab for that cluster's key (never asked here)."""
        self._running: dict[int, threading.Event] = {}
        self._sig_ended.connect(self._on_ended)

    def is_running(self, job_id: int) -> bool:
        return job_id in self._running

    def start(self, job_id: int, dest: Path) -> None:
        """Copy job `job_id`'s output into `dest` on a thread.  Raises DownloadError (one line) when
        it is not a cluster result or already downloading; ValueError for a cluster not configured.
        A refused folder or a failure comes later, as `sig_finished`."""
        if job_id in self._running:
            raise DownloadError(f"job {job_id} is already being downloaded")
        source = source_of(self._repo.get(job_id))
        profile = self._profile_of(source.cluster)
        ssh_config = self._ssh_config
        cancel = threading.Event()
        self._running[job_id] = cancel
        last = [0.0]

        passphrase = self._passphrase_of(source.cluster)

        def connect() -> SshConnection:
            connection = SshConnection(target_for_profile(profile, ssh_config), passphrase)
            try:
                connection.connect()
            except PassphraseRequired as exc:
                raise PassphraseRequired(
                    f"{exc}: Test connection on the Clusters tab asks for it once for this session",
                    exc.key_path,
                ) from None
            return connection

        def progress(p: DownloadProgress) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or p.done == p.total:
                last[0] = now
                self.sig_progress.emit(job_id, p)

        def work() -> None:
            answer: DownloadDone | str
            try:
                answer = download_result(
                    connect,
                    source,
                    dest,
                    progress,
                    cancel,
                    notice=lambda line: self.sig_notice.emit(job_id, line),
                )
            except DownloadCancelled:
                answer = "stopped; Download… into the same folder resumes it"
            except DownloadError as exc:
                answer = str(exc)
            except OSError as exc:  # the local disk: full, not writable
                answer = f"cannot write into {dest}: {exc}"
            except Exception as exc:  # the main thread must hear of every end
                log.exception("download of job %s failed", job_id)
                answer = f"download failed: {exc}"
            try:
                self._sig_ended.emit(job_id, answer)
            except RuntimeError:  # the app closed meanwhile (the service is gone): nobody to tell
                log.info("download of job %s ended after shutdown: %s", job_id, answer)

        threading.Thread(target=work, name=f"download-job-{job_id}", daemon=True).start()

    def cancel(self, job_id: int) -> None:
        """Stop a download (what was copied stays; a new one into the same folder resumes it)."""
        event = self._running.get(job_id)
        if event is not None:
            event.set()

    def shutdown(self) -> None:
        for event in self._running.values():
            event.set()

    @Slot(int, object)
    def _on_ended(self, job_id: int, answer: object) -> None:
        self._running.pop(job_id, None)
        if isinstance(answer, DownloadDone):
            record_local_copy(self._repo, job_id, answer.dest)
            self.sig_job_changed.emit(job_id)
            self.sig_finished.emit(job_id, "")
        else:
            self.sig_finished.emit(job_id, str(answer))
