"""A stand-in for the pynvml module where no NVIDIA GPU exists, with named scenarios.

It has the same functions, constants and errors as pynvml (the errors *are* pynvml's NVMLError
classes), so `NvmlAdapter` runs the very same code over it.  Chosen with the environment variable
`MSQUANT_FAKE_NVML=<scenario>`; `MSQUANT_FAKE_NVML_PROCS=PID:GPU:MiB,...` lists processes on the fake
GPUs (real pids, so the process table and the doctor look at real processes).

Scenarios:
    two_gpus          two H100s; GPU 1 is thermally throttled, at its power cap, and 6 GiB of its
                      memory are held by no process
    eight_gpus        eight healthy H100s (the benchmark's machine)
    failing_gpu       two GPUs; GPU 1 answers three times, then "GPU is lost" for good
    missing_function  two GPUs whose library lacks the fan and clock-event functions and whose
                      boards do not support power readings
    no_library        nvmlInit fails as on a machine without the NVIDIA driver
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pynvml

FAKE_ENV = "MSQUANT_FAKE_NVML"
FAKE_PROCS_ENV = "MSQUANT_FAKE_NVML_PROCS"

SCENARIOS = ("two_gpus", "eight_gpus", "failing_gpu", "missing_function", "no_library")

_GIB = 2**30
_THERMAL_AND_POWER = 0x4 | 0x20  # sw power cap + sw thermal slowdown


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    used: int
    free: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int | None


@dataclass
class _FakeGpu:
    index: int
    throttle: int = 0
    answers_left: int | None = None  # None: never fails
    leaked_bytes: int = 0  # memory in use that no listed process holds
    processes: list[_Process] = field(default_factory=list)


def _error(code: int) -> Exception:
    # pynvml maps the code to its subclass, e.g. 12 -> NVMLError_LibraryNotFound.
    error: Exception = pynvml.NVMLError(code)
    return error


class FakeNvml:
    """The pynvml API over invented boards.  Values drift with time so plots look alive."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM

    def __init__(self, scenario: str = "two_gpus", clock: Any = time.time) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown fake NVML scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self._clock = clock
        self._initialised = False
        count = 8 if scenario == "eight_gpus" else 0 if scenario == "no_library" else 2
        self.gpus = [_FakeGpu(i) for i in range(count)]
        if scenario == "two_gpus":
            self.gpus[1].throttle = _THERMAL_AND_POWER
            self.gpus[1].leaked_bytes = 6 * _GIB
        if scenario == "failing_gpu":
            self.gpus[1].answers_left = 3
        self.calls = 0

    # -- test helpers (not part of pynvml's API) -----------------------------------------------------
    def attach_process(self, gpu_index: int, pid: int, used_bytes: int | None) -> None:
        """Let a real process appear on a fake GPU."""
        self.gpus[gpu_index].processes.append(_Process(pid, used_bytes))

    def detach_process(self, pid: int) -> None:
        """The process is gone: no fake GPU lists it any more (as NVML forgets an ended process)."""
        for gpu in self.gpus:
            gpu.processes = [p for p in gpu.processes if p.pid != pid]

    def attach_from_env(self, spec: str) -> None:
        """`PID:GPU:MiB,...` as in MSQUANT_FAKE_NVML_PROCS."""
        for item in filter(None, (part.strip() for part in spec.split(","))):
            try:
                pid, gpu, mib = (int(x) for x in item.split(":"))
            except ValueError:
                raise ValueError(f"{FAKE_PROCS_ENV}: {item!r} is not PID:GPU:MiB") from None
            if not 0 <= gpu < len(self.gpus):
                raise ValueError(f"{FAKE_PROCS_ENV}: GPU {gpu} does not exist in scenario {self.scenario}")
            self.attach_process(gpu, pid, mib * 2**20)

    # -- pynvml API -----------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.scenario == "no_library":
            raise _error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self._initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15 (fake)"

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _FakeGpu:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: _FakeGpu) -> str:
        self._answer(gpu)
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, gpu: _FakeGpu) -> str:
        self._answer(gpu)
        return f"GPU-fake0000-0000-0000-0000-{gpu.index:012d}"

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: _FakeGpu) -> int:
        self._answer(gpu)
        return 700_000

    def nvmlDeviceGetUtilizationRates(self, gpu: _FakeGpu) -> _Utilization:
        self._answer(gpu)
        load = 0.65 * self._wave(gpu, 170.0) + 0.35 * self._wave(gpu, 23.0)
        return _Utilization(gpu=round(100 * load), memory=round(70 * load))

    def nvmlDeviceGetMemoryInfo(self, gpu: _FakeGpu) -> _Memory:
        self._answer(gpu)
        total = 80 * _GIB
        held = sum(p.usedGpuMemory or 0 for p in gpu.processes)
        # The driver keeps ~0.4 GiB; a busy process's caches breathe by up to 8 GiB.
        breathing = 8 * _GIB * self._wave(gpu, 300.0) if gpu.processes else 0
        used = min(total, int(0.4 * _GIB + gpu.leaked_bytes + held + breathing))
        return _Memory(total=total, used=used, free=total - used)

    def nvmlDeviceGetTemperature(self, gpu: _FakeGpu, sensor: int) -> int:
        self._answer(gpu)
        base = 84 if gpu.throttle else 45
        return round(base + 20 * self._wave(gpu, 120.0))

    def nvmlDeviceGetPowerUsage(self, gpu: _FakeGpu) -> int:
        self._answer(gpu)
        if self.scenario == "missing_function":
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if gpu.throttle:
            return 700_000
        load = 0.65 * self._wave(gpu, 170.0) + 0.35 * self._wave(gpu, 23.0)
        return round(80_000 + 560_000 * load)

    def nvmlDeviceGetClockInfo(self, gpu: _FakeGpu, clock_type: int) -> int:
        self._answer(gpu)
        return 1980 if clock_type == pynvml.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetFanSpeed(self, gpu: _FakeGpu) -> int:
        self._answer(gpu)
        if self.scenario == "missing_function":
            raise _error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return round(30 + 40 * self._wave(gpu, 120.0))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, gpu: _FakeGpu) -> int:
        self._answer(gpu)
        return gpu.throttle

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: _FakeGpu) -> list[_Process]:
        self._answer(gpu, counts=True)
        return list(gpu.processes)

    def __getattr__(self, name: str) -> Any:
        # The clock-event name exists only in newer libraries: the missing_function scenario lacks it.
        if name == "nvmlDeviceGetCurrentClocksEventReasons" and self.scenario != "missing_function":
            return self.nvmlDeviceGetCurrentClocksThrottleReasons
        raise AttributeError(name)

    # -- internals --------------------------------------------------------------------------------------
    def _check_init(self) -> None:
        if not self._initialised:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _answer(self, gpu: _FakeGpu, counts: bool = False) -> None:
        self._check_init()
        self.calls += 1
        if gpu.answers_left is None:
            return
        if gpu.answers_left <= 0:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        if counts:  # the process list is the last query of a sampling tick
            gpu.answers_left -= 1

    def _wave(self, gpu: _FakeGpu, period_s: float) -> float:
        """0..1, a different phase per GPU."""
        t = float(self._clock())
        return 0.5 + 0.5 * math.sin(2 * math.pi * t / period_s + gpu.index * 0.9)


def fake_from_environment() -> FakeNvml | None:
    """The fake chosen by MSQUANT_FAKE_NVML, or None for the real library.  Bad names raise ValueError."""
    scenario = os.environ.get(FAKE_ENV, "").strip()
    if not scenario:
        return None
    fake = FakeNvml(scenario)
    procs = os.environ.get(FAKE_PROCS_ENV, "")
    if procs:
        fake.attach_from_env(procs)
    return fake
