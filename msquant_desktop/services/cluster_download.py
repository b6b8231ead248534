"""Downloading a cluster quantization's output folder: the one rule the `slurm download` CLI and the
Results view's "Download…" both call.

Qt-free (it joins the store and `slurm/`): the caller gives a way to open a connection, and runs
this on a thread of its own when it must not block (the app does).

- *Where to*: the user's folder.  An empty or new folder is fine; a non-empty one only when it is an
  earlier download of the same result — cut short (it holds `MARKER`, naming the cluster and the
  output) or the complete copy the result records (`LOCAL_COPY_KEY`, checked again).  Anything else
  is refused with one line, before anything is written.
- *Each file* (`plan_download`, pure over real files): whole already → skipped; `NAME.partial`
  shorter than the remote file → continued from its size; longer → started again; else fetched.
  A file gets its name only once whole, so a cut only costs the bytes in flight.
- *A cut*: the connection is opened again after `reconnect_delay` backoff (cancellable waits) and the
  plan made again from the files on disk, up to `retries` times.
- *The end*: every file's size is compared with the cluster's; then `MARKER` goes and the caller
  records the folder on the result (`record_local_copy`), so Results, Open folder and a local
  Evaluate use it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState
from msquant_desktop.domain.results import LOCAL_COPY_KEY, local_copy_of
from msquant_desktop.domain.slurm import reconnect_delay
from msquant_desktop.slurm.connection import NEEDS_THE_USER, SshConnection, SshError
from msquant_desktop.slurm.remote_tools import CHUNK, RemoteFile, fetch_file, list_tree
from msquant_desktop.store import JobRepository

MARKER = ".msquant-download.json"
"""In a download folder while the download is not complete: which result it is a copy of."""
PARTIAL_SUFFIX = ".partial"
RETRIES = 10
BACKOFF_CEILING_S = 30.0


class DownloadError(RuntimeError):
    """The download cannot start or stopped; one line saying why (and what to do)."""


class DownloadCancelled(Exception):
    """The user stopped it; what was copied stays and the next download resumes from it."""


@dataclass(frozen=True)
class DownloadSource:
    """A completed quantization's output folder on its cluster."""

    job_id: int
    cluster: str
    output: str
    local_copy: str | None = None

    @property
    def label(self) -> str:
        return f"{self.cluster}:{self.output}"


def source_of(record: JobRecord) -> DownloadSource:
    """The folder to download for a job; DownloadError unless it is a completed cluster quantization."""
    output = record.result.get("output")
    if (
        record.spec.kind is not JobKind.QUANTIZE
        or record.spec.cluster is None
        or record.state is not JobState.COMPLETED
        or not output
    ):
        raise DownloadError(f"job {record.id} is not a completed quantization with an output on a cluster")
    return DownloadSource(record.id, record.spec.cluster, str(output), local_copy_of(record.result))


@dataclass(frozen=True)
class FileStep:
    """What to do with one remote file: "skip" (whole here), "continue" (its `.partial` from
    `offset`), "restart" (a `.partial` longer than the file: dropped) or "fetch" (nothing here)."""

    path: str
    size: int
    action: str
    offset: int = 0


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _marker_source(dest: Path) -> tuple[str, str] | None:
    try:
        data = json.loads((dest / MARKER).read_text())
        return str(data["cluster"]), str(data["output"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_destination(dest: Path, source: DownloadSource) -> None:
    """Refuse (DownloadError, one line) a folder that is neither empty nor an earlier download of
    `source`: one cut short (its marker names the same cluster and output) or its recorded copy."""
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest} is a file: choose a folder")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    marked = _marker_source(dest)
    if marked == (source.cluster, source.output):
        return
    if marked is not None:
        raise DownloadError(
            f"{dest} holds a download of {marked[0]}:{marked[1]}, not of {source.label}: choose another folder"
        )
    if source.local_copy and Path(source.local_copy).resolve() == dest.resolve():
        return  # the complete copy recorded on the result: checked file by file again
    raise DownloadError(
        f"{dest} is not empty and is not an earlier download of job {source.job_id}: "
        "choose an empty or new folder"
    )


def plan_download(files: list[RemoteFile], dest: Path) -> list[FileStep]:
    """What to do with each remote file, from what is on disk under `dest` now."""
    steps = []
    for remote in files:
        target = dest / remote.path
        if _size(target) == remote.size:
            steps.append(FileStep(remote.path, remote.size, "skip"))
            continue
        partial = _size(target.with_name(target.name + PARTIAL_SUFFIX))
        if partial is None:
            steps.append(FileStep(remote.path, remote.size, "fetch"))
        elif partial > remote.size:
            steps.append(FileStep(remote.path, remote.size, "restart"))
        else:
            steps.append(FileStep(remote.path, remote.size, "continue", partial))
    return steps


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands: bytes here of all, files whole of all, bytes sent this time."""

    done: int
    total: int
    files_done: int
    files: int
    copied: int


@dataclass(frozen=True)
class DownloadDone:
    source: DownloadSource
    dest: Path
    files: int
    total: int
    copied: int
    """Bytes that crossed the network in this download (every attempt): resumed bytes are not here."""
    attempts: int


@dataclass
class _Tally:
    """A download's running counts, for its progress and its end."""

    progress: Callable[[DownloadProgress], None] | None
    stop: threading.Event
    total: int = 0
    files: int = 0
    here: int = 0
    whole: int = 0
    copied: int = 0

    def start(self, steps: list[FileStep]) -> None:
        self.total = sum(step.size for step in steps)
        self.files = len(steps)
        self.here = sum(step.size if step.action == "skip" else step.offset for step in steps)
        self.whole = sum(step.action == "skip" for step in steps)

    def add(self, n: int, whole: int = 0) -> None:
        """`n` more bytes here, `whole` more files whole; raises DownloadCancelled once asked to stop."""
        self.copied += n
        self.here += n
        self.whole += whole
        if self.progress is not None:
            self.progress(DownloadProgress(self.here, self.total, self.whole, self.files, self.copied))
        if self.stop.is_set():
            raise DownloadCancelled()


def _copy(
    connection: SshConnection,
    source: DownloadSource,
    dest: Path,
    files: list[RemoteFile],
    tally: _Tally,
    chunk: int,
) -> None:
    """One attempt: every file not yet whole, in order."""
    steps = plan_download(files, dest)
    tally.start(steps)
    if any(step.action != "skip" for step in steps):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / MARKER).write_text(json.dumps({"cluster": source.cluster, "output": source.output}))
    for step in steps:
        if step.action == "skip":
            continue
        target = dest / step.path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + PARTIAL_SUFFIX)
        if step.action == "restart":
            partial.unlink()
        offset = step.offset if step.action == "continue" else 0
        fetch_file(connection, f"{source.output}/{step.path}", partial, offset, tally.add, chunk)
        if _size(partial) == step.size:
            partial.replace(target)
            tally.add(0, whole=1)


def _verify(dest: Path, files: list[RemoteFile], source: DownloadSource) -> None:
    wrong = [f.path for f in files if _size(dest / f.path) != f.size]
    if wrong:
        raise DownloadError(
            f"{len(wrong)} file(s) in {dest} differ in size from {source.label} ({', '.join(wrong[:3])}): "
            "the folder changed on the cluster while it was copied; download it again"
        )


def download_result(
    connect: Callable[[], SshConnection],
    source: DownloadSource,
    dest: Path,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    notice: Callable[[str], None] | None = None,
    retries: int = RETRIES,
    chunk: int = CHUNK,
) -> DownloadDone:
    """Copy `source`'s folder into `dest`, resuming what an earlier download left, reconnecting
    after a cut (`notice` hears each retry).  Raises DownloadError (refused, or gave up: run it again
    to resume) or DownloadCancelled (`cancel` set: checked between pieces and during waits)."""
    dest = dest.expanduser()
    check_destination(dest, source)
    tally = _Tally(progress, cancel or threading.Event())
    failures = 0
    attempts = 0
    files: list[RemoteFile] = []
    while True:
        if tally.stop.is_set():
            raise DownloadCancelled()
        attempts += 1
        connection: SshConnection | None = None
        try:
            connection = connect()
            files = list_tree(connection, source.output)
            if not files:
                raise DownloadError(f"{source.label} holds no files")
            _copy(connection, source, dest, files, tally, chunk)
            break
        except NEEDS_THE_USER as exc:  # a reconnect cannot mend it
            raise DownloadError(f"download of {source.label} cannot start: {exc}") from exc
        except (SshError, EOFError) as exc:
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"download of {source.label} stopped: {exc}; start it again to resume"
                ) from exc
            delay = reconnect_delay(failures, ceiling=BACKOFF_CEILING_S)
            if notice is not None:
                notice(f"{source.cluster}: {exc}; resuming in {delay:.0f} s")
            if tally.stop.wait(delay):
                raise DownloadCancelled() from exc
        finally:
            if connection is not None:
                connection.close()
    _verify(dest, files, source)
    (dest / MARKER).unlink(missing_ok=True)
    total = sum(f.size for f in files)
    if progress is not None:
        progress(DownloadProgress(total, total, len(files), len(files), tally.copied))
    return DownloadDone(source, dest, len(files), total, tally.copied, attempts)


def record_local_copy(repo: JobRepository, job_id: int, dest: Path) -> JobRecord:
    """Record on the quantization's result that its output is whole in `dest` (Results shows it)."""
    job = repo.get(job_id)
    return repo.update(job_id, result={**job.result, LOCAL_COPY_KEY: str(dest.expanduser().resolve())})
