"""One sampling tick: every GPU (NVML or the fake), the host, and who the GPU processes are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from msquant_desktop.domain.gpu import GpuReading, ProcessDetails
from msquant_desktop.gpu.attribution import ProcessDescriber
from msquant_desktop.gpu.fake_nvml import fake_from_environment
from msquant_desktop.gpu.host import HostSampler
from msquant_desktop.gpu.nvml import NvmlAdapter


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

    def sample(self) -> GpuReading:
        if self._host is None:
            self._host = HostSampler()
        unavailable = self.adapter.start()
        gpus = self.adapter.sample()
        processes: tuple[ProcessDetails, ...] = ()
        if self._describer is not None:
            processes = self._describer.describe(p for gpu in gpus for p in gpu.processes)
        return GpuReading(
            timestamp=self._clock(),
            gpus=gpus,
            host=self._host.sample(),
            unavailable=unavailable,
            driver_version=self.adapter.driver_version,
            processes=processes,
        )

    def close(self) -> None:
        self.adapter.close()
