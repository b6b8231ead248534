"""CPU% and resident memory of processes, read from /proc/PID/stat (one read per process per tick).

CPU% is the process's user + system time since the previous reading of the same process (same pid
and start time) over the wall time between them, as top and nvitop show it: 100% is one core busy.
The first reading of a process has nothing to compare with and says None ("—"), never a made-up 0.
Called on the GPU sampler's thread, never on the GUI thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from msquant_desktop.procs.identity import CLK_TCK, PROC

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def stat_usage(pid: int) -> tuple[float, float, int] | None:
    """(start time after boot, CPU seconds used, resident bytes) of `pid`; None when it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # the name may hold spaces and parentheses
    if len(fields) < 22:
        return None
    # Fields 14/15 (utime, stime) and 22 (starttime) are in clock ticks; 24 (rss) is in pages.
    return (
        int(fields[19]) / CLK_TCK,
        (int(fields[11]) + int(fields[12])) / CLK_TCK,
        int(fields[21]) * PAGE_SIZE,
    )


class CpuMeter:
    """Remembers each process's CPU time between ticks to turn it into CPU%."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[int, tuple[float, float, float]] = {}  # pid -> (start, cpu s, wall clock)

    def measure(self, pids: Iterable[int]) -> dict[int, tuple[float | None, int, float]]:
        """pid -> (CPU% since the last tick or None, resident bytes, start time) for the live ones.

        Processes not asked about this tick are forgotten (their pid may be reused)."""
        now = self._clock()
        out: dict[int, tuple[float | None, int, float]] = {}
        last: dict[int, tuple[float, float, float]] = {}
        for pid in pids:
            usage = stat_usage(pid)
            if usage is None:
                continue
            started, cpu_s, rss = usage
            before = self._last.get(pid)
            percent = None
            if before is not None and abs(before[0] - started) < 0.05 and now > before[2]:
                percent = max(0.0, 100.0 * (cpu_s - before[1]) / (now - before[2]))
            out[pid] = (percent, rss, started)
            last[pid] = (started, cpu_s, now)
        self._last = last
        return out
