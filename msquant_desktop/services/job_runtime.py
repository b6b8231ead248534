"""One running local job as the app sees it: started here (QProcess) or adopted (run folder tail).

Both kinds turn the supervisor's stream-tagged output into `sig_output` batches and report the end
once with `sig_ended(exit_record_or_None, why)`.  The JobService owns them and maps them to states.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from msquant_desktop.domain.logformat import DecodedChunk, LineSplitter, decode_tagged
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.domain.runs import ExitRecord
from msquant_desktop.procs import identity
from msquant_desktop.store.run_folders import read_exit_record
from msquant_desktop.supervisor import control

log = logging.getLogger(__name__)

ADOPTED_POLL_MS = 100
READ_LIMIT = 4 << 20
"""At most this much log is read per poll of an adopted job, so a flood never stalls the loop."""


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
        self.never_started = False
        """The supervisor process could not even be started (so the job never ran)."""
        self._ended = False
        self._exited: ExitRecord | None = None
        """The exit record as the supervisor's `exited` message carried it (exit.json may be missing
        when the disk was full: the message still tells how the job ended)."""

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
    """A job whose supervisor this app started: output arrives on the supervisor's stdout pipe."""

    def __init__(
        self, job_id: int, run_dir: Path, argv: list[str], env: dict[str, str], parent: QObject | None = None
    ) -> None:
        super().__init__(job_id, run_dir, parent)
        self._splitter = LineSplitter()
        self.process = QProcess(self)
        self.process.setObjectName(f"supervisor-job-{job_id}")
        # Own session and process group: the job never shares the GUI's group (facts/qt-headless.md).
        # vfork: the GUI thread does not copy the page tables of a GUI-sized process for each launch
        # (measured ~3 ms instead of ~8-12 ms per start); nothing runs in the child before exec.
        self.process.setUnixProcessParameters(
            QProcess.UnixProcessFlag.CreateNewSession | QProcess.UnixProcessFlag.UseVFork
        )
        environment = QProcessEnvironment()
        for key, value in env.items():
            environment.insert(key, value)
        self.process.setProcessEnvironment(environment)
        self.process.setWorkingDirectory(str(run_dir))
        self.process.readyReadStandardOutput.connect(self._on_stdout)
        self.process.readyReadStandardError.connect(self._on_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.process.started.connect(self._on_started)
        self._argv = argv

    def start(self) -> None:
        """Start the supervisor; `started` (pid known) or `sig_ended` (could not start) follows.
        Never waits: the GUI thread does not block on a fork/exec."""
        self.process.start(self._argv[0], self._argv[1:])
        self._note_pid()  # known as soon as the fork happened (Qt's `started` may come after output)

    @Slot()
    def _on_started(self) -> None:
        self._note_pid()

    def _note_pid(self) -> None:
        pid = int(self.process.processId())
        if pid > 0 and pid != self.pid:
            self.pid = pid
            self.pid_start_time = identity.start_time(pid)

    def detach(self) -> None:
        # WORKAROUND: QProcess kills a running child when it is destroyed; marking it NotRunning
        # makes Qt let go, so the supervisor (and the job) outlive the app as intended.
        for signal in (self.process.readyReadStandardOutput, self.process.readyReadStandardError):
            signal.disconnect()
        self.process.finished.disconnect()
        self.process.errorOccurred.disconnect()
        self.process.started.disconnect()
        self.process.setProcessState(QProcess.ProcessState.NotRunning)
        self._ended = True

    @Slot()
    def _on_stdout(self) -> None:
        data = bytes(self.process.readAllStandardOutput().data())
        lines = self._splitter.feed(data)
        if lines:
            self._emit_chunk(decode_tagged(lines))

    @Slot()
    def _on_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace").strip()
        if text:
            log.warning("job %d supervisor: %s", self.job_id, text)

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        rest = self._splitter.flush()
        if rest:
            self._emit_chunk(decode_tagged(rest))
        record = read_exit_record(self.run_dir) or self._exited
        if record is None:
            how = "crashed" if status == QProcess.ExitStatus.CrashExit else f"exited with {code}"
            self._end(None, f"the job's supervisor {how} without recording the job's end")
        else:
            self._end(record, "")

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.never_started = True
            self._end(None, f"the supervisor could not be started: {self.process.errorString()}")


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
                        self._emit_chunk(decode_tagged(lines))
                    if not everything or len(data) < READ_LIMIT:
                        break
        except OSError:
            return
