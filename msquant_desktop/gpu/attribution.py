"""Who the processes on the GPUs are: user, command, parent and job marker (procs/ does the reading)."""

from __future__ import annotations

from collections.abc import Iterable

from msquant_desktop.domain.gpu import GpuProcess, JobMarker, ProcessDetails
from msquant_desktop.procs.identity import stat_facts
from msquant_desktop.procs.scan import command_of, read_marker, user_of


class ProcessDescriber:
    """User, command, parent and job of the processes on the GPUs; cached per (pid, start time)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, str, str, JobMarker | None]] = {}

    def describe(
        self, processes: Iterable[GpuProcess], usage: dict[int, tuple[float | None, int, float]] | None = None
    ) -> tuple[ProcessDetails, ...]:
        """`usage`: pid -> (CPU%, RSS, start time) from `procs.usage.CpuMeter` (absent: not shown)."""
        usage = usage or {}
        rows = []
        seen: set[int] = set()
        for gp in processes:
            seen.add(gp.pid)
            user, command, ppid, marker = "?", "?", None, None
            facts = stat_facts(gp.pid)  # parent changes when it dies: read every tick, never cached
            if facts is not None:  # else listed by NVML but gone (or in another pid namespace)
                _, ppid, started = facts
                cached = self._cache.get(gp.pid)
                if cached is None or cached[0] != started:
                    cached = (started, user_of(gp.pid), command_of(gp.pid), read_marker(gp.pid))
                    self._cache[gp.pid] = cached
                _, user, command, marker = cached
            cpu, rss, started_at = usage.get(gp.pid, (None, None, None))
            rows.append(
                ProcessDetails(
                    gp.pid,
                    gp.gpu_index,
                    gp.used_memory_bytes,
                    user,
                    command,
                    ppid,
                    marker,
                    cpu,
                    rss,
                    started_at,
                )
            )
        for pid in set(self._cache) - seen:
            del self._cache[pid]
        return tuple(rows)
