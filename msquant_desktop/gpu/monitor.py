"""One sampling tick: every GPU (NVML or the fake), the host, and who the GPU processes are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from msquant_desktop.domain.gpu import GpuReading, JobProcess, ProcessDetails, job_process_trees
from msquant_desktop.gpu.attribution import ProcessDescriber
from msquant_desktop.gpu.fake_nvml import fake_from_environment
from msquant_desktop.gpu.host import HostSampler
from msquant_desktop.gpu.nvml import NvmlAdapter
from msquant_desktop.procs.scan import scan_marked_processes
from msquant_desktop.procs.usage import CpuMeter


def choose_nvml() -> Any | None:
    """The fake chosen by MSQUANT_FAKE_NVML, else None (the adapter then loads the real pynvml)."""
    return fake_from_environment()


class GpuMonitor:
    """Samples GPUs and host together.  Owned by one thread; `sample()` never raises for NVML trouble."""

    def __init__(
        self,
        nvml: Any | None = None,
        host: HostSampler | None = None,
        clock: Callable[[], float] = time.time,
        describe_processes: bool = True,
    ) -> None:
        self.adapter = NvmlAdapter(nvml if nvml is not None else choose_nvml())
        self._host = host
        self._clock = clock
        self._describer = ProcessDescriber() if describe_processes else None
        self._meter = CpuMeter()

    def sample(self) -> GpuReading:
        if self._host is None:
            self._host = HostSampler()
        unavailable = self.adapter.start()
        gpus = self.adapter.sample()
        processes: tuple[ProcessDetails, ...] = ()
        jobs: tuple[JobProcess, ...] = ()
        if self._describer is not None:
            on_gpus = [p for gpu in gpus for p in gpu.processes]
            marked = scan_marked_processes()
            usage = self._meter.measure({*(p.pid for p in on_gpus), *(m.pid for m in marked)})
            processes = self._describer.describe(on_gpus, usage)
            jobs = job_process_trees(
                [
                    JobProcess(m.marker.job_id, m.pid, m.ppid, 0, m.command, m.start_time, *usage[m.pid][:2])
                    for m in marked
                    if m.pid in usage
                ]
            )
        return GpuReading(
            timestamp=self._clock(),
            gpus=gpus,
            host=self._host.sample(),
            unavailable=unavailable,
            driver_version=self.adapter.driver_version,
            processes=processes,
            job_processes=jobs,
        )

    def close(self) -> None:
        self.adapter.close()
