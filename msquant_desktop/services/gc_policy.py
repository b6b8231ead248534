"""Python's cyclic garbage collector runs on the GUI thread only.

Automatic collection runs on whichever thread happens to allocate when a threshold trips: the GPU
sampler, a cluster worker, a thread pool.  When that collection frees a cycle holding a wrapped
QObject that lives on the GUI thread, `~QObject` runs on the worker thread, takes Qt's connection
lock and then waits for the GIL (shiboken looks for a Python override), while the GUI thread holds
the GIL and waits for that same lock: both freeze for good.  We saw exactly this in the test suite
(the sampler thread in `gc_collect_main` → `QObject::~QObject` → `GilState::acquire`, the GUI thread
in `QObject::connectImpl` → `QBasicMutex::lockInternal`).

So automatic collection is switched off and a timer on the GUI thread collects instead, with the
same thresholds Python would use.  Reference counting still frees everything that is not in a
cycle at once, on whatever thread drops it, as before.
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QCoreApplication, QObject, QTimer

log = logging.getLogger(__name__)

CHECK_INTERVAL_MS = 500
_OBJECT_NAME = "msquant-main-thread-gc"


class MainThreadGarbageCollector(QObject):
    """Owns the switch-off of automatic collection; collects on a timer on its (the GUI) thread."""

    def __init__(self, parent: QObject, interval_ms: int = CHECK_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.setObjectName(_OBJECT_NAME)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._timer.start()

    def collect_if_due(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns it, or -1."""
        counts = gc.get_count()
        generation = -1
        for gen in range(3):
            if counts[gen] > self._thresholds[gen]:
                generation = gen
        if generation >= 0:
            gc.collect(generation)
        return generation

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()


def install_main_thread_gc(app: QCoreApplication) -> MainThreadGarbageCollector:
    """Install once per application (later calls return the installed collector)."""
    existing = app.findChild(MainThreadGarbageCollector, _OBJECT_NAME)
    if isinstance(existing, MainThreadGarbageCollector):
        return existing
    log.debug("automatic garbage collection moved to the GUI thread")
    return MainThreadGarbageCollector(app)
