"""Host CPU and memory through psutil, so the GPUs tab is useful on a machine without GPUs."""

from __future__ import annotations

import psutil

from msquant_desktop.domain.gpu import HostSnapshot


class HostSampler:
    """CPU usage since the previous call (psutil's non-blocking form) and memory in use."""

    def __init__(self) -> None:
        # The first non-blocking call has nothing to compare with and returns 0.0; prime it.
        psutil.cpu_percent(interval=None)

    def sample(self) -> HostSnapshot:
        memory = psutil.virtual_memory()
        return HostSnapshot(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            memory_used_bytes=int(memory.total - memory.available),
            memory_total_bytes=int(memory.total),
        )
