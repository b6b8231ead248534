"""The NVML adapter: lazy start, cached handles and slow attributes, "not available" logged once.

It talks to an object with pynvml's API: the real `pynvml` module (package nvidia-ml-py) by default,
or a `FakeNvml` (gpu/fake_nvml.py) where no GPU exists.  Both go through exactly this code.
Not thread-safe: one sampler thread owns one `NvmlAdapter`.
"""

from __future__ import annotations

import logging
from typing import Any

from msquant_desktop.domain.gpu import GpuProcess, GpuSnapshot

log = logging.getLogger(__name__)

NO_GPU_PREFIX = "No NVIDIA GPU found"

# NVML error codes used here (nvml.h; identical in pynvml and the fake).
_ERROR_DRIVER_NOT_LOADED = 9
_ERROR_LIBRARY_NOT_FOUND = 12
_ERROR_GPU_IS_LOST = 15
_ERROR_RESET_REQUIRED = 16
_GPU_GONE_ERRORS = frozenset({_ERROR_GPU_IS_LOST, _ERROR_RESET_REQUIRED})

_MW_PER_W = 1000.0


class _GpuGone(Exception):
    """A GPU stopped answering altogether this tick (fell off the bus, needs a reset)."""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _why_unavailable(exc: BaseException) -> str:
    code = _error_code(exc)
    if code == _ERROR_LIBRARY_NOT_FOUND:
        return f"{NO_GPU_PREFIX}: NVML library not found"
    if code == _ERROR_DRIVER_NOT_LOADED:
        return f"{NO_GPU_PREFIX}: the NVIDIA driver is not loaded"
    return f"{NO_GPU_PREFIX}: NVML failed to start ({exc})"


def load_real_nvml() -> Any:
    """The real pynvml module, or raises ImportError naming the missing package."""
    try:
        import pynvml
    except ImportError as exc:  # the dependency is declared; only a broken install lands here
        raise ImportError("the Python package nvidia-ml-py is not installed") from exc
    return pynvml


class NvmlAdapter:
    """Reads every GPU through an NVML-like object; never raises out of `sample()`."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml
        self._started = False
        self._unavailable: str | None = None
        self._handles: list[Any] = []
        self._static: list[dict[str, Any]] = []  # per GPU: name, uuid, memory total, power limit
        self._logged: set[tuple[int, str, str]] = set()
        self.driver_version: str | None = None

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> str | None:
        """Initialise NVML once (later calls are free).  Returns why no GPU can be read, or None."""
        if self._started:
            return self._unavailable
        self._started = True
        try:
            if self._nvml is None:
                self._nvml = load_real_nvml()
            self._nvml.nvmlInit()
        except ImportError as exc:
            self._unavailable = f"{NO_GPU_PREFIX}: {exc}"
        except Exception as exc:  # pynvml.NVMLError or the fake's identical one
            self._unavailable = _why_unavailable(exc)
        else:
            self._discover()
        if self._unavailable:
            log.info("%s", self._unavailable)
        return self._unavailable

    def _discover(self) -> None:
        nvml = self._nvml
        assert nvml is not None  # start() loaded it
        try:
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            self._unavailable = f"{NO_GPU_PREFIX}: NVML could not list the GPUs ({exc})"
            self._handles = []
            return
        if not self._handles:
            self._unavailable = f"{NO_GPU_PREFIX}: the driver reports no devices"
        self.driver_version = self._query(-1, "nvmlSystemGetDriverVersion")
        if self.driver_version is not None:
            self.driver_version = _text(self.driver_version)
        self._static = [{} for _ in self._handles]
        log.info("NVML started: %d GPU(s), driver %s", len(self._handles), self.driver_version or "—")

    def close(self) -> None:
        if self._started and self._unavailable is None and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:
                log.debug("nvmlShutdown failed: %s", exc)
        self._started = False
        self._handles = []

    @property
    def unavailable(self) -> str | None:
        return self._unavailable

    @property
    def gpu_count(self) -> int:
        return len(self._handles)

    # -- reading -------------------------------------------------------------------------------------
    def sample(self) -> tuple[GpuSnapshot, ...]:
        """One snapshot per GPU; empty when NVML is unavailable (see `start()`'s message)."""
        if self.start():
            return ()
        return tuple(self._sample_gpu(i, handle) for i, handle in enumerate(self._handles))

    def _sample_gpu(self, index: int, handle: Any) -> GpuSnapshot:
        nvml = self._nvml
        assert nvml is not None  # start() loaded it
        static = self._static[index]
        try:
            if "name" not in static:
                static["name"] = _text(self._query(index, "nvmlDeviceGetName", handle) or f"GPU {index}")
                static["uuid"] = _text(self._query(index, "nvmlDeviceGetUUID", handle) or "")
                limit = self._query(index, "nvmlDeviceGetEnforcedPowerLimit", handle)
                static["power_limit_w"] = limit / _MW_PER_W if limit is not None else None
            util = self._query(index, "nvmlDeviceGetUtilizationRates", handle)
            memory = self._query(index, "nvmlDeviceGetMemoryInfo", handle)
            temperature = self._query(index, "nvmlDeviceGetTemperature", handle, nvml.NVML_TEMPERATURE_GPU)
            power = self._query(index, "nvmlDeviceGetPowerUsage", handle)
            sm_clock = self._query(index, "nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_SM)
            mem_clock = self._query(index, "nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_MEM)
            fan = self._query(index, "nvmlDeviceGetFanSpeed", handle)
            throttle = self._throttle_mask(index, handle)
            processes = self._processes(index, handle)
        except _GpuGone as gone:
            return GpuSnapshot(
                index=index,
                name=static.get("name", f"GPU {index}"),
                uuid=static.get("uuid", ""),
                error=str(gone),
            )
        return GpuSnapshot(
            index=index,
            name=static["name"],
            uuid=static["uuid"],
            utilization_gpu=float(util.gpu) if util is not None else None,
            utilization_memory=float(util.memory) if util is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            temperature_c=float(temperature) if temperature is not None else None,
            power_w=power / _MW_PER_W if power is not None else None,
            power_limit_w=static["power_limit_w"],
            sm_clock_mhz=int(sm_clock) if sm_clock is not None else None,
            memory_clock_mhz=int(mem_clock) if mem_clock is not None else None,
            fan_percent=float(fan) if fan is not None else None,
            throttle_mask=throttle,
            processes=processes,
        )

    def _throttle_mask(self, index: int, handle: Any) -> int | None:
        # Newer drivers call them "clocks event reasons"; older libraries only have the throttle name.
        if hasattr(self._nvml, "nvmlDeviceGetCurrentClocksEventReasons"):
            mask = self._query(index, "nvmlDeviceGetCurrentClocksEventReasons", handle)
            if mask is not None:
                return int(mask)
        mask = self._query(index, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return int(mask) if mask is not None else None

    def _processes(self, index: int, handle: Any) -> tuple[GpuProcess, ...]:
        found = self._query(index, "nvmlDeviceGetComputeRunningProcesses", handle) or []
        result = []
        for proc in found:
            used = getattr(proc, "usedGpuMemory", None)
            result.append(GpuProcess(pid=int(proc.pid), gpu_index=index, used_memory_bytes=used))
        return tuple(result)

    def _query(self, index: int, function: str, *args: Any) -> Any:
        """Call an NVML function; None ("not available") when it is missing or fails, logged once.

        Raises _GpuGone when the GPU itself stopped answering, so the tick skips the rest of it.
        """
        try:
            return getattr(self._nvml, function)(*args)
        except AttributeError:
            self._log_once(index, function, "not in this NVML library")
        except Exception as exc:
            if _error_code(exc) in _GPU_GONE_ERRORS:
                if (index, "*", str(exc)) not in self._logged:
                    self._logged.add((index, "*", str(exc)))
                    log.warning("GPU %d stopped answering (%s); its readings are shown as —", index, exc)
                raise _GpuGone(str(exc)) from exc
            self._log_once(index, function, str(exc))
        return None

    def _log_once(self, index: int, function: str, problem: str) -> None:
        key = (index, function, problem)
        if key in self._logged:
            return
        self._logged.add(key)
        where = "NVML" if index < 0 else f"GPU {index}"
        log.warning("%s: %s not available (%s); shown as —", where, function, problem)
