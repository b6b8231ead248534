"""Run short blocking calls (git, Hydra child processes) off the GUI thread; answers come back on it.

One small thread pool per owner.  A worker never touches a QObject: it emits one signal carrying the
callback and its result, and Qt queues it to the owner's (main) thread where the callback runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

Done = Callable[[bool, Any], None]
"""Called on the main thread with (True, result) or (False, exception)."""


class BackgroundTasks(QObject):
    _sig_done = Signal(object)
    """Internal: (callback, ok, value), emitted from a worker thread, delivered on the owner's thread."""

    def __init__(self, name: str, workers: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._closed = False
        self._pending = 0
        self._sig_done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)

    @property
    def pending(self) -> int:
        """Calls submitted whose callback has not run yet."""
        return self._pending

    def run(self, work: Callable[[], Any], done: Done) -> None:
        if self._closed:
            return
        self._pending += 1

        def job() -> None:
            try:
                payload = (done, True, work())
            except Exception as exc:  # handed to the callback, which reports it
                payload = (done, False, exc)
            if not self._closed:
                self._sig_done.emit(payload)

        self._pool.submit(job)

    @Slot(object)
    def _on_done(self, payload: tuple[Done, bool, Any]) -> None:
        self._pending -= 1
        if self._closed:
            return
        done, ok, value = payload
        try:
            done(ok, value)
        except Exception:
            log.exception("a background task's callback failed")

    def close(self) -> None:
        """Stop accepting work and wait for running calls (each has its own timeout)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
