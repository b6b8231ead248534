"""How late does the GUI thread answer?  An event-loop lag probe shared by tests and benches.

A `LagProbe` is a precise QTimer on the GUI thread firing every few milliseconds; each tick records
how much later than due it came (the time between ticks minus the interval).  The worst of these is
the longest the event loop was kept from turning: a click or a repaint would have waited as long.

    with LagProbe() as probe:
        spin_until(lambda: job_done(), timeout_s=30)
    assert probe.max_lag_ms < 50

`max_busy_ms` tells the two causes of a lag apart: it is the most CPU time the GUI thread itself
spent between two ticks.  A lag with little busy time was the machine (the thread was not
scheduled, e.g. on a loaded machine) or a blocking call; a lag as long as its busy time was our
own work in one go.

Wait with `spin_until` (a real QEventLoop), not `time.sleep` or `QTest.qWait`: those sleep between
event batches and the probe would measure the sleep.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer

DEFAULT_INTERVAL_MS = 2


class LagProbe(QObject):
    """Measures the event loop's worst extra delay (ms) while it runs (between `start` and `stop`)."""

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.max_lag_ms = 0.0
        self.ticks = 0
        self.worst_at_s = 0.0
        """Seconds after `start` at which the worst lag ended (to tell which step caused it)."""
        self.max_busy_ms = 0.0
        """The most CPU time the GUI thread spent between two ticks."""
        self._lags: list[float] = []
        self._busy: list[float] = []
        self._started = 0.0
        self._last = 0.0
        self._last_cpu = 0.0
        self._timer = QTimer(self)
        self._timer.setObjectName("lag-probe")
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> LagProbe:
        # What earlier tests left on the heap is not the code under test: collect it now and keep
        # it out of later collections (gc.freeze), so a collection during the probe walks only
        # what was made since — as in the app, where the GUI thread collects its own heap.
        gc.collect()
        gc.freeze()
        self.max_lag_ms = 0.0
        self.max_busy_ms = 0.0
        self.ticks = 0
        self._lags = []
        self._busy = []
        self._last_cpu = time.thread_time()
        self._started = self._last = time.perf_counter()
        self._timer.start()
        return self

    def stop(self) -> float:
        """Stop and return the worst lag in milliseconds (a tick still due now counts as well)."""
        if self._timer.isActive():
            self._tick()
            self._timer.stop()
            gc.unfreeze()
        return self.max_lag_ms

    def percentile(self, p: float) -> float:
        """The p-th percentile (0-100) of the per-tick lags, in ms."""
        return _percentile(self._lags, p)

    def busy_percentile(self, p: float) -> float:
        """The p-th percentile (0-100) of the GUI thread's CPU time between two ticks, in ms."""
        return _percentile(self._busy, p)

    def _tick(self) -> None:
        now = time.perf_counter()
        cpu = time.thread_time()
        lag = max(0.0, (now - self._last) * 1000 - self.interval_ms)
        busy = (cpu - self._last_cpu) * 1000
        self.max_busy_ms = max(self.max_busy_ms, busy)
        self._busy.append(busy)
        self._last = now
        self._last_cpu = cpu
        self.ticks += 1
        self._lags.append(lag)
        if lag > self.max_lag_ms:
            self.max_lag_ms = lag
            self.worst_at_s = now - self._started

    def summary(self) -> str:
        return (
            f"max lag {self.max_lag_ms:.1f} ms (at {self.worst_at_s:.2f} s), p99 {self.percentile(99):.1f} ms, "
            f"GUI thread busy at most {self.max_busy_ms:.1f} ms at a time (p99 {self.busy_percentile(99):.1f} ms), "
            f"{self.ticks} ticks of {self.interval_ms} ms"
        )

    def __enter__(self) -> LagProbe:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def spin_until(predicate: Callable[[], bool], timeout_s: float, check_ms: int = 5) -> bool:
    """Run the event loop until `predicate()` is true (checked every `check_ms`) or the time is up.

    Returns the predicate's last answer.  Keep the predicate cheap: it runs on the GUI thread.
    """
    if predicate():
        return True
    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    result = [False]

    def check() -> None:
        if predicate():
            result[0] = True
            loop.quit()
        elif time.monotonic() >= deadline:
            loop.quit()

    timer = QTimer()
    timer.setInterval(check_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return result[0]


def spin_for(seconds: float) -> None:
    """Run the event loop for `seconds` (the probe keeps measuring meanwhile)."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
