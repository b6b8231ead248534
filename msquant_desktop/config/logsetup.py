"""Logging a user can send: a rotating file in the log dir, plus stderr for console runs.

One file per process kind (AppPaths.log_file for the window, AppPaths.cli_log_file for every
subcommand), and a handler that several processes can share: many CLI processes (`jobs run`, the
quantization workers) write one file at the same time.  The standard RotatingFileHandler is not
safe there — each process rotates on its own view of the size and renames files the others still
write, so lines vanish (63,602 of 80,000 survived four writers).  `SharedRotatingFileHandler`
writes each record with one O_APPEND write under an exclusive `flock` on a lock file next to the
log, and rotates under that same lock after checking the file it names is still the one it has
open.  Lines can then only leave by rotating past `backupCount`, never by a race.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_HANDLER_NAME = "msquant"
"""The name of the handlers set up here, so a second set-up replaces them (and only them)."""
MAX_BYTES = 2_000_000
BACKUP_COUNT = 5


class SharedRotatingFileHandler(logging.Handler):
    """A size-rotating log file that any number of processes may write at once (POSIX)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd = -1
        try:
            self._reopen()
        except OSError:
            os.close(self._lock_fd)
            raise

    def _reopen(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _current(self) -> os.stat_result:
        """Our open file, reopened first when another process rotated it away (or removed it)."""
        mine = os.fstat(self._fd)
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            named = None
        if named is None or (named.st_ino, named.st_dev) != (mine.st_ino, mine.st_dev):
            self._reopen()
            return os.fstat(self._fd)
        return mine

    def _rotate(self) -> None:
        for i in range(self.backup_count - 1, 0, -1):
            source = Path(f"{self.path}.{i}")
            if source.exists():
                os.replace(source, f"{self.path}.{i + 1}")
        if self.backup_count > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self._reopen()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                size = self._current().st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        except Exception:
            self.handleError(record)  # a full disk: dropped quietly (logging.raiseExceptions is off)

    def close(self) -> None:
        self.acquire()
        try:
            for fd in (self._fd, self._lock_fd):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._fd = self._lock_fd = -1
        finally:
            self.release()
        super().close()


def setup_logging(log_file: Path, level: int = logging.INFO, console: bool = True) -> None:
    """Route all logging to `log_file` (rotating, 5 x 2 MB, shared safely by processes) and, when
    `console`, warnings to stderr.

    Raises OSError when the log file cannot be opened (read-only or full disk: the caller says so in
    one line).  A write that fails later (the disk filled up) is dropped, never a traceback on stderr.
    """
    logging.raiseExceptions = False
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    file_handler = SharedRotatingFileHandler(log_file)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.set_name(_HANDLER_NAME)
    root.addHandler(file_handler)
    if console and sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(FORMAT))
        stream.setLevel(logging.WARNING)
        stream.set_name(_HANDLER_NAME)
        root.addHandler(stream)
