"""One running local job as the app sees it: started here (its pipes) or adopted (run folder tail).

Both kinds turn the supervisor's stream-tagged output into `sig_output` batches and report the end
once with `sig_ended(exit_record_or_None, why)`.  The JobService owns them and maps them to states.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal, Slot

from msquant_desktop.domain.logformat import META_TAG, DecodedChunk, LineSplitter, decode_tagged
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.domain.runs import ExitRecord
from msquant_desktop.services.job_launcher import Spawned
from msquant_desktop.store.run_folders import read_exit_record
from msquant_desktop.supervisor import control

log = logging.getLogger(__name__)

ADOPTED_POLL_MS = 100
READ_LIMIT = 4 << 20
"""At most this much output is read per turn of the event loop (a pipe's readiness, a poll of an
adopted job's log), so a flood never stalls the loop."""
PIPE_READ = 1 << 16
PIPE_BURST = 1 << 20
"""At most this much of a supervisor's pipe is taken per turn of the event loop (in 64 KiB reads,
decoded at once): enough to keep up with a flood (1M lines: 1.3x a raw read), small enough that
the log view and input get their turn between bursts (GUI thread busy ~12 ms at most)."""


class JobRuntime(QObject):
    sig_output = Signal(object)
    """A DecodedChunk of complete lines (text runs per stream, events, supervisor messages)."""
    sig_ended = Signal(object, str)
    """(ExitRecord or None, why it ended without one).  Emitted exactly once."""

    def __init__(self, job_id: int, run_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job_id = job_id
        self.run_dir = run_dir
        self.pid: int | None = None
        self.pid_start_time: float | None = None
        self._ended = False
        self._exited: ExitRecord | None = None
        """The exit record as the supervisor's `exited` message carried it (exit.json may be missing
        when the disk was full: the message still tells how the job ended)."""

    def _emit_lines(self, lines: bytes) -> None:
        """Hand complete tagged lines on, cut after each supervisor message, so that a message
        ("N lines skipped here") keeps its place among the lines around it however much is read
        at once (after the app was frozen, megabytes)."""
        if not lines.startswith(META_TAG) and b"\n" + META_TAG not in lines:
            self._emit_chunk(decode_tagged(lines))
            return
        start, size = 0, len(lines)
        while start < size:
            if lines.startswith(META_TAG, start):
                message_at = start
            else:
                found = lines.find(b"\n" + META_TAG, start)
                if found < 0:
                    self._emit_chunk(decode_tagged(lines[start:]))
                    return
                message_at = found + 1
            end = lines.find(b"\n", message_at) + 1 or size
            self._emit_chunk(decode_tagged(lines[start:end]))
            start = end

    def _emit_chunk(self, chunk: DecodedChunk) -> None:
        for meta in chunk.metas:
            if meta.get("type") == "exited":
                self._exited = ExitRecord.from_dict({k: v for k, v in meta.items() if k != "type"})
        self.sig_output.emit(chunk)

    def detach(self) -> None:
        """Forget the job without touching it (the app quits; the supervisor carries on)."""

    def _end(self, record: ExitRecord | None, why: str) -> None:
        if not self._ended:
            self._ended = True
            self.sig_ended.emit(record, why)


class SupervisedRuntime(JobRuntime):
    """A job whose supervisor the app's launcher started (services/job_launcher.py): output arrives
    on the supervisor's stdout pipe, its exit through a pidfd, both watched by QSocketNotifiers, so
    the GUI thread only ever reads what is already there."""

    def __init__(self, spawned: Spawned, parent: QObject | None = None) -> None:
        super().__init__(spawned.job_id, spawned.run_dir, parent)
        self._splitter = LineSplitter()
        self._process = spawned.process
        self.pid = spawned.process.pid
        self.pid_start_time = spawned.start_time
        self._pidfd = spawned.pidfd
        stdout, stderr = spawned.process.stdout, spawned.process.stderr
        assert stdout is not None and stderr is not None  # the launcher spawns it piped
        self._out_fd, self._err_fd = stdout.fileno(), stderr.fileno()
        os.set_blocking(self._out_fd, False)
        os.set_blocking(self._err_fd, False)
        self._notifiers = [
            self._notifier(self._out_fd, self._on_stdout),
            self._notifier(self._err_fd, self._on_stderr),
            self._notifier(self._pidfd, self._on_exited),
        ]

    def _notifier(self, fd: int, slot: Callable[[], object]) -> QSocketNotifier:
        notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        notifier.activated.connect(lambda *_args: slot())
        return notifier

    def detach(self) -> None:
        """Let go of the pipes; the supervisor (and the job) outlive the app as intended (a
        supervisor never blocks on a reader that went away)."""
        if not self._ended:
            _DETACHED.append(self._process)  # never reaped here: no "still running" warning
        self._close()
        self._ended = True

    def _close(self) -> None:
        for notifier in self._notifiers:
            notifier.setEnabled(False)
            notifier.deleteLater()
        self._notifiers = []
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def _read(self, fd: int, limit: int) -> tuple[bytes, bool]:
        """What the pipe holds now (up to `limit`), and whether it reached the end."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            try:
                data = os.read(fd, PIPE_READ)
            except BlockingIOError:
                return b"".join(parts), False
            except OSError:
                return b"".join(parts), True
            if not data:
                return b"".join(parts), True
            parts.append(data)
            size += len(data)
        return b"".join(parts), False

    def _on_stdout(self, everything: bool = False) -> None:
        if self._ended:
            return
        while True:
            # At most PIPE_BURST per turn of the event loop: the log view gets its turn between.
            data, at_end = self._read(self._out_fd, PIPE_BURST)
            lines = self._splitter.feed(data)
            if lines:
                self._emit_lines(lines)
            if at_end:
                self._notifiers[0].setEnabled(False)
            if at_end or not everything or not data:
                return

    def _on_stderr(self) -> None:
        if self._ended:
            return
        data, at_end = self._read(self._err_fd, READ_LIMIT)
        if at_end:
            self._notifiers[1].setEnabled(False)
        text = data.decode("utf-8", "replace").strip()
        if text:
            log.warning("job %d supervisor: %s", self.job_id, text)

    def _on_exited(self) -> None:
        if self._ended:
            return
        self._on_stdout(everything=True)
        self._on_stderr()
        rest = self._splitter.flush()
        if rest:
            self._emit_lines(rest)
        code = self._process.wait()  # it has exited: reaps it at once
        self._close()
        record = read_exit_record(self.run_dir) or self._exited
        if record is None:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            self._end(None, f"the job's supervisor {how} without recording the job's end")
        else:
            self._end(record, "")


_DETACHED: list[subprocess.Popen[bytes]] = []
"""Supervisors let go of while running (the app quits; they carry on)."""


class AdoptedRuntime(JobRuntime):
    """A job started elsewhere (an earlier app, `jobs run`): the log is tailed from the run folder,
    the end is read from `exit.json`, and the supervisor is watched by pid + start time + marker."""

    def __init__(
        self,
        job_id: int,
        run_dir: Path,
        pid: int | None,
        pid_start_time: float | None,
        log_offset: int,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(job_id, run_dir, parent)
        self.pid = pid
        self.pid_start_time = pid_start_time
        self._offset = log_offset
        self._splitter = LineSplitter()
        self._timer = QTimer(self)
        self._timer.setObjectName(f"adopted-job-{job_id}-poll")
        self._timer.setInterval(ADOPTED_POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()

    def detach(self) -> None:
        self._timer.stop()
        self._ended = True

    @Slot()
    def poll(self) -> None:
        if self._ended:
            return
        self._read_log()
        record = read_exit_record(self.run_dir)
        if record is not None:
            self._read_log(everything=True)
            self._timer.stop()
            self._end(record, "")
            return
        if not control.supervisor_alive(self.pid, self.pid_start_time, self.run_dir):
            # Gone between two polls: the exit record may have landed just now.
            record = read_exit_record(self.run_dir)
            self._read_log(everything=True)
            self._timer.stop()
            self._end(
                record, "" if record else "the job's supervisor disappeared without recording the job's end"
            )

    def _read_log(self, everything: bool = False) -> None:
        try:
            with (self.run_dir / LOG_FILE).open("rb") as fh:
                while True:
                    fh.seek(self._offset)
                    data = fh.read(READ_LIMIT)
                    self._offset += len(data)
                    lines = self._splitter.feed(data)
                    if lines:
                        self._emit_lines(lines)
                    if not everything or len(data) < READ_LIMIT:
                        break
        except OSError:
            return
