"""The GPU adapter (Qt-free): NVML readings, a fake NVML with named scenarios, host usage, history
ring buffers, and who the processes on the GPUs are (read through the procs/ toolkit)."""

from msquant_desktop.gpu.history import GPU_METRICS, HOST_METRICS, GpuHistory, RingBuffer
from msquant_desktop.gpu.monitor import GpuMonitor
from msquant_desktop.gpu.nvml import NO_GPU_PREFIX, NvmlAdapter

__all__ = [
    "GPU_METRICS",
    "HOST_METRICS",
    "NO_GPU_PREFIX",
    "GpuHistory",
    "GpuMonitor",
    "NvmlAdapter",
    "RingBuffer",
]
