"""Ring buffers: chronological views without copies, fixed memory, NaN for "not available"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msquant_desktop.domain.gpu import GpuReading, GpuSnapshot, HostSnapshot
from msquant_desktop.gpu.history import GpuHistory, RingBuffer


def test_ring_buffer_wraps_and_reads_oldest_first() -> None:
    buffer = RingBuffer(capacity=5, width=2)
    assert len(buffer) == 0 and buffer.latest(0) is None
    for t in range(12):
        buffer.append(float(t), (t * 10.0, None if t % 3 == 0 else -t))
    assert len(buffer) == 5
    assert buffer.times().tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert buffer.values(0).tolist() == [70.0, 80.0, 90.0, 100.0, 110.0]
    assert buffer.times(2).tolist() == [10.0, 11.0] and buffer.times(99).tolist() == buffer.times().tolist()
    second = buffer.values(1)
    assert math.isnan(second[2]) and second[0] == -7.0  # 9 % 3 == 0: not available
    assert buffer.latest(0) == 110.0
    with pytest.raises(ValueError):
        RingBuffer(0, 1)


def test_reads_are_views_and_memory_is_fixed() -> None:
    buffer = RingBuffer(capacity=100, width=4)
    size = buffer.nbytes
    for t in range(1000):
        buffer.append(float(t), (1.0, 2.0, 3.0, 4.0))
        view = buffer.values(2, 50)
        assert view.base is not None  # a view into the buffer, not a fresh array
    assert buffer.nbytes == size
    assert np.shares_memory(buffer.values(0), buffer.values(0, 10))


def test_history_grows_per_gpu_and_keeps_host() -> None:
    history = GpuHistory(capacity=10)
    host = HostSnapshot(cpu_percent=25.0, memory_used_bytes=1, memory_total_bytes=4)
    gpu = GpuSnapshot(
        0, "g", "u", utilization_gpu=50.0, memory_used_bytes=2, memory_total_bytes=8, temperature_c=60.0
    )
    history.append(GpuReading(1.0, (gpu,), host))
    history.append(GpuReading(2.0, (gpu, GpuSnapshot(1, "g", "u", error="GPU is lost")), host))
    assert len(history.gpus) == 2 and len(history.gpus[0]) == 2 and len(history.gpus[1]) == 1
    assert history.gpus[0].values(1).tolist() == [25.0, 25.0]  # memory %
    # Power not available (None) is stored as NaN and read back as None ...
    assert np.isnan(history.gpus[0].values(3)).all() and history.gpus[0].latest(3) is None
    assert history.gpus[1].latest(0) is None
    assert history.host.values(0).tolist() == [25.0, 25.0] and history.host.latest(1) == 25.0
    # ... while a real 0.0 (an idle board) stays 0.0, never "not available".
    idle = GpuSnapshot(0, "g", "u", utilization_gpu=0.0, temperature_c=0.0, power_w=0.0)
    history.append(GpuReading(3.0, (idle,), host))
    assert history.gpus[0].values(0).tolist()[-1] == 0.0 and history.gpus[0].latest(0) == 0.0
    assert history.gpus[0].values(3).tolist()[-1] == 0.0 and history.gpus[0].latest(3) == 0.0
    assert math.isnan(history.gpus[0].values(3)[-2])  # the earlier None is still NaN
