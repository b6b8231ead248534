"""The job supervisor: one small Qt-free process per local job.

It makes itself a child subreaper (orphaned descendants, even `setsid` escapees, are re-parented to
it instead of PID 1), forks and execs the job in its own process group, writes every output line to
the run folder's stream-tagged log and forwards the same bytes on its stdout to the app, keeps events
in `events.jsonl`, and writes `exit.json` atomically when the job has ended — also when the app is
long gone.  On SIGTERM it stops the whole tree: TERM to every descendant, a grace period, KILL.

Deliberately NOT set: PR_SET_PDEATHSIG.  Jobs must survive the app crashing or quitting.
Never dies of a dead pipe: SIGPIPE is ignored and every write to the app is guarded.
Never waits for the app: its pipe is written without blocking (see `_AppPipe`).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import selectors
import signal
import stat
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from msquant_desktop.domain.logformat import (
    STDERR_TAG,
    STDOUT_TAG,
    LineSplitter,
    meta_line,
    parse_event,
    tag_lines,
)
from msquant_desktop.domain.markers import EVENT_PREFIX
from msquant_desktop.domain.runfiles import EVENTS_FILE, EXIT_FILE, LAUNCH_FILE, LOG_FILE, SUPERVISOR_FILE
from msquant_desktop.procs.identity import start_time
from msquant_desktop.procs.tree import descendants

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    StartedHook = Callable[[int], None]
    """Called once the job's process exists, with its pid (a cancel arrives as our own SIGTERM)."""
    from msquant_desktop.procs.kill import Stop

# Start-up time is on the click -> running path: this module avoids pathlib, dataclasses and typing
# at run time, the exit record is a plain dict (domain/runs.ExitRecord reads it back), and the stop
# routine (procs.kill) is imported when the job's end or a cancel needs it.

PR_SET_CHILD_SUBREAPER = 36
READ_SIZE = 65536
LINGER_SECONDS = 1.0
"""After the main process exits, how long its leftovers may keep the output open before they are
stopped (a job's processes end with the job, so nothing keeps holding GPU memory)."""
LEFTOVER_GRACE_SECONDS = 3.0
APP_BUFFER_BYTES = 4 << 20
"""How far the app may fall behind before whole lines are left out of its stream (never out of the log)."""
APP_DRAIN_SECONDS = 120.0
"""After the job's end is recorded, how long a slow (frozen) app gets to take the rest of its stream."""
_EVENT_BYTES = EVENT_PREFIX.encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def set_child_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


EXIT_RESERVE_BYTES = 65536
"""Blocks set aside for exit.json when the job starts, so a disk the job's output filled up still
has room for the one record that says how the job ended."""


def _reserve(path: str) -> None:
    """Allocate `path.partial` now; `_write_atomic` later overwrites it in place (no new blocks)."""
    try:
        fd = os.open(path + ".partial", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, EXIT_RESERVE_BYTES)
        finally:
            os.close(fd)
    except OSError:
        pass  # no room even now: the record is written the ordinary way, and may fail


def _write_atomic(path: str, data: dict[str, Any], durable: bool = True) -> None:
    """Write `path.partial` (into its reserved blocks when there are some), (fsync,) rename:
    readers see no file or the whole file."""
    tmp = path + ".partial"
    payload = json.dumps(data, indent=1).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # no O_TRUNC: keep the reserved blocks
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(payload))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _exit_record(
    returncode: int | None,
    started_at: str,
    cancelled: bool = False,
    spawn_error: str = "",
    job_pid: int | None = None,
    leftovers_killed: int = 0,
) -> dict[str, Any]:
    """The fields of domain/runs.ExitRecord."""
    return {
        "returncode": returncode,
        "cancelled": cancelled,
        "spawn_error": spawn_error,
        "started_at": started_at,
        "ended_at": _now(),
        "job_pid": job_pid,
        "leftovers_killed": leftovers_killed,
        "extra": {},
    }


class _AppPipe:
    """Our stdout towards the app.  It never blocks the job, whatever the app does.

    Writes are non-blocking.  What the app cannot take yet waits here, at most `limit` bytes, and goes
    out when the selector says the pipe is writable (the pipe is registered for EVENT_WRITE only while
    something waits).  Beyond the bound whole lines of job output are left out of the app's stream —
    output.log and events.jsonl still get every line — and counted; once the app has caught up (or
    just before the next supervisor message, whichever comes first) one line
    `M {"type": "skipped", "lines": N, "bytes": B}` says how many lines (and tagged bytes) are missing
    at that point, so the app can point at the full log.  Supervisor messages are never left out.
    The first hard write error (EPIPE: the app died) turns forwarding off for good.
    """

    def __init__(self, fd: int, limit: int = APP_BUFFER_BYTES) -> None:
        self.fd = _nonblocking_writer(fd)
        self.open = True
        self.limit = limit
        self.lines_skipped = 0
        """Lines left out of the app's stream so far, in total (exit.json's extra)."""
        self.bytes_skipped = 0
        self._gap_lines = 0  # left out since the last "skipped" message
        self._gap_bytes = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._selector: selectors.BaseSelector | None = None
        self._registered = False

    @property
    def waiting_bytes(self) -> int:
        return self._pending_bytes

    def send(self, data: bytes, droppable: bool = True) -> None:
        """Forward complete lines; `droppable=False` for supervisor messages."""
        if not self.open or not data:
            return
        if not self._pending:  # the common case: the app keeps up
            written = self._write(data)
            if written < len(data) and self.open:
                self._queue(data[written:])  # a line may be cut: its rest must follow, never dropped
            return
        if droppable and (self._gap_lines or self._pending_bytes + len(data) > self.limit):
            lines = data.count(b"\n")
            self._gap_lines += lines
            self._gap_bytes += len(data)
            self.lines_skipped += lines
            self.bytes_skipped += len(data)
            return
        self._close_gap()
        self._queue(data)

    def flush(self) -> None:
        """Write what waits, as far as the app takes it now (the selector said it is writable)."""
        while self.open and self._pending:
            head = self._pending[0]
            written = self._write(head)
            self._pending_bytes -= written
            if written < len(head):
                if self.open:
                    self._pending[0] = head[written:]
                break
            self._pending.popleft()
            if not self._pending:
                self._close_gap()  # caught up: say what was left out, then carry on
        self._sync_registration()

    def attach(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        self._sync_registration()

    def detach(self) -> None:
        if self._selector is not None and self._registered:
            self._selector.unregister(self.fd)
        self._selector = None
        self._registered = False

    def drain(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the app to take everything that waits; True when it has."""
        self.detach()
        self._close_gap()
        if not (self.open and self._pending):
            return True
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_WRITE)
            while self.open and self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                selector.select(left)
                self.flush()
        return not self._pending

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:  # EPIPE and friends: the app is gone
            self.open = False
            self._pending.clear()
            self._pending_bytes = 0
            self._sync_registration()
            return 0

    def _queue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._sync_registration()

    def _close_gap(self) -> None:
        if self._gap_lines:
            notice = meta_line({"type": "skipped", "lines": self._gap_lines, "bytes": self._gap_bytes})
            self._gap_lines = self._gap_bytes = 0
            self._queue(notice)

    def _sync_registration(self) -> None:
        want = self.open and bool(self._pending)
        if self._selector is None or want == self._registered:
            return
        if want:
            self._selector.register(self.fd, selectors.EVENT_WRITE)
        else:
            self._selector.unregister(self.fd)
        self._registered = want


def _nonblocking_writer(fd: int) -> int:
    """A non-blocking descriptor writing where `fd` writes, leaving `fd` itself as it was.

    O_NONBLOCK belongs to the open file description, which `fd` may share with other processes, so a
    pipe is opened afresh through /proc/self/fd; only when that fails is `fd` itself switched.  Files,
    terminals and /dev/null stay as they are (a regular file would be reopened at offset 0).
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return fd
    if stat.S_ISFIFO(mode):
        try:
            return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            pass
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.set_blocking(fd, False)
    return fd


class _FileSink:
    """An append-only run-folder file that survives a full disk.

    A write that fails (ENOSPC, EDQUOT, EIO) loses only that data: it is counted, the job goes on,
    and the next write tries again, so writing resumes by itself when space returns.  The first
    write after a loss records the gap in the file itself (`gap_line`), so a reader sees where.
    """

    def __init__(self, path: str, gap_line: Callable[[int, int, str], bytes]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._gap_line = gap_line
        self.lines_lost = 0
        self.bytes_lost = 0
        self.error = ""
        self._unreported = (0, 0)  # (lines, bytes) lost since the file last took a write
        self._mid_line = False  # the file ends inside a line (a write was torn by the full disk)

    def write(self, data: bytes) -> None:
        if self._unreported != (0, 0):
            lines, size = self._unreported
            # The note on a line of its own: after a torn write the file ends mid-line.
            note = (b"\n" if self._mid_line else b"") + self._gap_line(lines, size, self.error)
            if not self._try(note):
                self._lose(data)
                return
            self._unreported = (0, 0)
        if not self._try(data):
            self._lose(data)

    def _try(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                if len(view) < len(data):  # a torn line: what is missing is counted as lost
                    self._lose(bytes(view))
                    self._mid_line = data[len(data) - len(view) - 1] != 0x0A
                return len(view) < len(data)
            view = view[written:]
        self._mid_line = not data.endswith(b"\n")
        return True

    def _lose(self, data: bytes) -> None:
        lines = max(1, data.count(b"\n"))
        self.lines_lost += lines
        self.bytes_lost += len(data)
        self._unreported = (self._unreported[0] + lines, self._unreported[1] + len(data))

    def close(self) -> None:
        os.close(self.fd)


class Supervisor:
    def __init__(self, run_dir: str, app_fd: int = 1, on_started: StartedHook | None = None) -> None:
        self.run_dir = run_dir
        self.on_started = on_started
        with open(os.path.join(run_dir, LAUNCH_FILE), encoding="utf-8") as fh:
            launch = json.load(fh)
        self.argv: list[str] = [str(a) for a in launch["argv"]]
        self.cwd: str = str(launch.get("cwd") or run_dir)
        # Our own environment is the job's: launch.json keeps only a redacted record of what was added.
        self.env: dict[str, str] = dict(os.environ)
        self.grace = float(launch.get("grace_seconds", 10.0))
        self.run_dir_marker = self.env.get("MSQUANT_RUN_DIR", run_dir)
        self.app = _AppPipe(app_fd)
        self.log = _FileSink(
            os.path.join(run_dir, LOG_FILE),
            lambda n, size, why: meta_line({"type": "log_gap", "lines": n, "bytes": size, "error": why}),
        )
        self.events = _FileSink(
            os.path.join(run_dir, EVENTS_FILE),
            lambda n, size, why: (
                json.dumps({"type": "events_lost", "events": n, "error": why}) + "\n"
            ).encode(),
        )
        self.stop_requested = False
        self.stop_signals = 0
        self.exit_recorded = False
        """exit.json is written (else the record lives only in memory until the disk takes it)."""
        self.exit_record_error = ""
        self.child_pid = 0
        self.child_status: int | None = None

    # -- output --------------------------------------------------------------------------------------
    def _emit(self, tagged: bytes, droppable: bool = True) -> None:
        if not tagged:
            return
        self.log.write(tagged)
        self.app.send(tagged, droppable)

    def _handle_lines(self, tag: bytes, lines: bytes) -> None:
        if not lines:
            return
        if tag is STDOUT_TAG and _EVENT_BYTES in lines:
            events = [e for e in (parse_event(ln) for ln in lines.split(b"\n")) if e is not None]
            if events:
                self.events.write(b"".join(json.dumps(e).encode() + b"\n" for e in events))
        self._emit(tag_lines(tag, lines))

    def _meta(self, message: dict[str, Any]) -> None:
        self._emit(meta_line(message), droppable=False)

    # -- signals -------------------------------------------------------------------------------------
    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stop_requested = True
        self.stop_signals += 1

    def _install_signals(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda s, f: None)  # only to wake the select loop
        return wake_r

    # -- life ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started_at = _now()
        wake_r = self._install_signals()
        # Only now may others find us (and send SIGTERM to cancel): our handler is in place.
        _write_atomic(
            os.path.join(self.run_dir, SUPERVISOR_FILE),
            # start_time: seconds after boot (procs.identity), as the store keeps it
            {"pid": os.getpid(), "start_time": start_time(os.getpid()), "at": started_at},
            durable=False,  # only useful while this process lives
        )
        _reserve(os.path.join(self.run_dir, EXIT_FILE))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        exec_r, exec_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the job
            _exec_job(self.argv, self.cwd, self.env, out_w, err_w, exec_w)
        self.child_pid = pid
        for fd in (out_w, err_w, exec_w):
            os.close(fd)
        spawn_error = _read_all(exec_r).decode("utf-8", "replace")
        os.close(exec_r)
        if spawn_error:
            os.waitpid(pid, 0)
            self._emit(tag_lines(STDERR_TAG, f"msquant: could not start the job: {spawn_error}\n".encode()))
            return self._finish(_exit_record(None, started_at, spawn_error=spawn_error), [out_r, err_r])
        self._meta({"type": "started", "job_pid": pid, "at": started_at})
        if self.on_started is not None:
            self.on_started(pid)  # must not block: the job's output waits in the pipe meanwhile
        leftovers = self._pump(out_r, err_r, wake_r)
        status = self.child_status
        returncode = None if status is None else os.waitstatus_to_exitcode(status)
        record = _exit_record(
            returncode, started_at, self.stop_requested, job_pid=pid, leftovers_killed=leftovers
        )
        return self._finish(record, [])

    def _finish(self, record: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        for fd in fds:
            os.close(fd)
        extra = record["extra"]
        extra["app_lines_skipped"] = self.app.lines_skipped
        if self.log.lines_lost or self.events.lines_lost:
            extra["log_lines_lost"] = self.log.lines_lost
            extra["log_bytes_lost"] = self.log.bytes_lost
            extra["events_lost"] = self.events.lines_lost
            extra["log_error"] = self.log.error or self.events.error
        # The exit record first: nothing optional may use up the last bytes before it.
        if not self.retry_exit_record(record):
            extra["exit_record_error"] = self.exit_record_error
        # The app reads the record from this message when exit.json could not be written.
        self._meta({"type": "exited", **record})
        self.log.close()
        self.events.close()
        return record

    def retry_exit_record(self, record: dict[str, Any]) -> bool:
        """Write exit.json; False (and `exit_record_error`) when the disk refused it."""
        try:
            _write_atomic(os.path.join(self.run_dir, EXIT_FILE), record)
        except OSError as exc:
            self.exit_record_error = exc.strerror or str(exc)
            try:
                os.unlink(os.path.join(self.run_dir, EXIT_FILE + ".partial"))
            except OSError:
                pass
            return False
        self.exit_recorded = True
        return True

    def _reap(self) -> None:
        """Collect every exited child: ours, and orphans re-parented to us as subreaper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child_pid:
                self.child_status = status

    def _pump(self, out_r: int, err_r: int, wake_r: int) -> int:
        """Move output until the job and all its descendants are gone; returns leftovers stopped."""
        selector = selectors.DefaultSelector()
        splitters = {out_r: (STDOUT_TAG, LineSplitter()), err_r: (STDERR_TAG, LineSplitter())}
        for fd in (out_r, err_r, wake_r):
            selector.register(fd, selectors.EVENT_READ)
        self.app.attach(selector)  # EVENT_WRITE only while the app is behind
        app_fd = self.app.fd
        open_streams = {out_r, err_r}
        stop: Stop | None = None  # stopping the tree (a cancel, or leftovers after the end)
        exited_at: float | None = None
        leftovers = 0
        me = os.getpid()
        while True:
            busy = stop is not None or exited_at is not None
            for key, _ in selector.select(0.01 if busy else None):
                fd = int(key.fd)
                if fd == wake_r:
                    _drain(wake_r)
                    continue
                if fd == app_fd:
                    self.app.flush()
                    continue
                try:
                    data = os.read(fd, READ_SIZE)
                except InterruptedError:
                    continue
                tag, splitter = splitters[fd]
                if data:
                    self._handle_lines(tag, splitter.feed(data))
                else:
                    self._handle_lines(tag, splitter.flush())
                    selector.unregister(fd)
                    os.close(fd)
                    open_streams.discard(fd)
            self._reap()
            now = time.monotonic()
            if self.child_status is not None and exited_at is None:
                exited_at = now
            if self.stop_requested and stop is None:
                stop = self._tree_stop(me, self.grace)
            if exited_at is None and stop is None:
                continue  # the common case while output flows: no /proc walk per read
            if stop is None:
                tree = descendants(me)
                remaining = bool(tree)
                if tree and exited_at is not None and now - exited_at > LINGER_SECONDS:
                    # The main process is done but left processes behind: stop them like a cancel would.
                    leftovers = len(tree)
                    stop = self._tree_stop(me, min(self.grace, LEFTOVER_GRACE_SECONDS))
            if stop is not None:
                if self.child_status is not None:
                    stop.group = None  # the leader is reaped: its group id may be reused
                remaining = not stop.step()
            if exited_at is not None and not remaining:
                if not open_streams or now - exited_at > LINGER_SECONDS:
                    break  # (streams still open: someone outside our tree holds the pipe)
        # Last sweep: anything still carrying the marker (should be nothing) goes too.
        from msquant_desktop.procs.kill import stop_marked

        stray = stop_marked(self.run_dir_marker, 0.0, exclude={me}, kill_wait_s=0.0).targets
        self.app.detach()
        selector.close()
        for fd in open_streams:
            os.close(fd)
        return leftovers + len(stray)

    def _tree_stop(self, me: int, grace: float) -> Stop:
        """TERM to the job's group and every descendant of ours, KILL after `grace` (procs.kill)."""
        from msquant_desktop.procs.kill import Stop

        group = self.child_pid if self.child_status is None else None
        return Stop(lambda: descendants(me), grace, group=group)


def _exec_job(argv: list[str], cwd: str, env: dict[str, str], out_w: int, err_w: int, exec_w: int) -> None:
    """In the forked child: become the job.  Never returns."""
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGPIPE, signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        detail = f"{argv[0]}: {message}"
        if isinstance(exc, OSError) and exc.errno == errno.ENOENT and not os.path.isdir(cwd):
            detail = f"working directory {cwd} does not exist"
        try:
            os.write(exec_w, detail.encode("utf-8", "replace"))
        finally:
            os._exit(127)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


EXIT_RETRY_MAX_S = 30.0
"""Longest pause between two tries to record a job's end on a full disk."""


def _keep_until_recorded(
    supervisor: Supervisor,
    record: dict[str, Any],
    in_store: bool,
    after_exit: Callable[[dict[str, Any]], bool] | None,
) -> None:
    """The job's end is known only to this process when neither exit.json nor the store took it
    (one full disk holds both): wait for space, trying both again (1 s, doubling, at most
    EXIT_RETRY_MAX_S apart), so the end is recorded as it was once the disk has room, instead of
    the job becoming LOST.  Meanwhile the job shows as running; a SIGTERM ends the wait (whoever
    looks then settles it LOST, saying the disk was full)."""
    delay, signals = 1.0, supervisor.stop_signals
    while not supervisor.exit_recorded and not in_store and supervisor.stop_signals == signals:
        time.sleep(delay)
        delay = min(delay * 2, EXIT_RETRY_MAX_S)
        error = record["extra"].pop("exit_record_error", None)
        if supervisor.retry_exit_record(record):  # written late, but whole: no error to report
            if after_exit is not None:
                after_exit(record)
            return
        record["extra"]["exit_record_error"] = error or supervisor.exit_record_error
        if after_exit is not None:
            in_store = after_exit(record)


def supervise(
    run_dir: str,
    on_started: StartedHook | None = None,
    after_exit: Callable[[dict[str, Any]], bool] | None = None,
    after_drain: Callable[[bool], None] | None = None,
) -> dict[str, Any]:
    """Run the job described by `run_dir/launch.json` to its end (the `_supervise` subcommand).

    `on_started(job_pid)` runs once the job's process exists (it records RUNNING in the store);
    `after_exit(record)` once `exit.json` is written (it records the end); then a slow app gets up to
    APP_DRAIN_SECONDS to take the rest of its stream before we exit; `after_drain(app_still_reads)`
    last (the queue moves on from there when no app is left to move it).
    """
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()  # started without a new session (tests, a shell): make our own
        except OSError:
            pass
    set_child_subreaper()
    supervisor = Supervisor(run_dir, app_fd=sys.stdout.fileno(), on_started=on_started)
    record = supervisor.run()
    in_store = after_exit(record) if after_exit is not None else False
    _keep_until_recorded(supervisor, record, in_store, after_exit)
    supervisor.app.drain(APP_DRAIN_SECONDS)
    if after_drain is not None:
        after_drain(supervisor.app.open)
    return record
