"""Runs the serving planner's computations off the GUI thread, newest request first.

One pool thread (the planner is CPU-bound numpy and pure Python: a second thread would only contend for
the GIL) works through submitted jobs; each job has a ticket and a kind ("rows", "curves", "replay",
...), and a job superseded by a newer one of the same kind before it starts is dropped unrun.  Results
come back by exactly one path, `sig_done` / `sig_failed`, delivered on the main thread (the signals live
on this QObject, which lives there); worker code never touches a widget.  Bad input is one line
(`sig_failed`), never a traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Job(QRunnable):
    def __init__(self, runner: PlanRunner, ticket: int, kind: str, work: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._ticket = ticket
        self._kind = kind
        self._work = work

    def run(self) -> None:  # pool thread
        if not self._runner._is_current(self._kind, self._ticket):
            return
        try:
            result = self._work()
        except (ValueError, OSError) as exc:  # the planner's bad-input errors (PlanInputError, TraceError)
            line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._runner.sig_failed.emit(self._ticket, self._kind, line)
            return
        except Exception as exc:  # a bug in the planner must not pass silently, nor kill the pool thread
            log.exception("serving planner job %s failed", self._kind)
            self._runner.sig_failed.emit(self._ticket, self._kind, f"internal error: {type(exc).__name__}")
            return
        self._runner.sig_done.emit(self._ticket, self._kind, result)


class PlanRunner(QObject):
    sig_done = Signal(int, str, object)
    """(ticket, kind, result) of a finished job."""
    sig_failed = Signal(int, str, str)
    """(ticket, kind, one line saying what is wrong)"""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self._next = 0

    def submit(self, kind: str, work: Callable[[], Any]) -> int:
        """Queue `work` (no Qt objects in it) and return its ticket; older queued jobs of `kind` are
        dropped when they come up.  A result whose ticket is not `latest(kind)` is stale."""
        with self._lock:
            self._next += 1
            ticket = self._next
            self._latest[kind] = ticket
        self._pool.start(_Job(self, ticket, kind, work))
        return ticket

    def latest(self, kind: str) -> int | None:
        with self._lock:
            return self._latest.get(kind)

    def _is_current(self, kind: str, ticket: int) -> bool:
        with self._lock:
            return self._latest.get(kind) == ticket

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """For tests and shutdown: wait until no job runs or is queued."""
        return bool(self._pool.waitForDone(timeout_ms))

    def shutdown(self) -> None:
        """Drop queued jobs and wait for the running one (each takes well under a second or two)."""
        self._pool.clear()
        self._pool.waitForDone(10_000)
