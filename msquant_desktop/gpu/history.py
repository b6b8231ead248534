"""Fixed-size ring buffers of GPU and host metrics (numpy), read without copying.

Each value is written twice, at `i` and `i + capacity`, so the newest `n` samples are always one
contiguous, chronological slice: plots get views, not fresh arrays, and memory never grows once the
buffer is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msquant_desktop.domain.gpu import GpuReading

GPU_METRICS = ("utilization", "memory", "temperature", "power")
"""Per GPU: utilization %, memory %, temperature °C, power W."""
HOST_METRICS = ("cpu", "ram")
"""Host CPU % and RAM %."""


class RingBuffer:
    """`capacity` rows of `width` float64 values plus their timestamps; NaN where not available."""

    def __init__(self, capacity: int, width: int) -> None:
        if capacity < 1:
            raise ValueError("a ring buffer needs room for at least one sample")
        self.capacity = capacity
        self._values = np.full((width, 2 * capacity), np.nan)
        self._times = np.full(2 * capacity, np.nan)
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, timestamp: float, values: Sequence[float | None]) -> None:
        i = self._next
        j = i + self.capacity
        self._times[i] = self._times[j] = timestamp
        for row, value in enumerate(values):
            v = np.nan if value is None else value
            self._values[row, i] = self._values[row, j] = v
        self._next = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _window(self, last: int | None) -> slice:
        n = self._count if last is None else max(0, min(last, self._count))
        end = self._next + self.capacity  # one past the newest, in the doubled array
        return slice(end - n, end)

    def times(self, last: int | None = None) -> np.ndarray:
        """Timestamps of the newest `last` samples (all when None), oldest first.  A view: do not write."""
        return self._times[self._window(last)]

    def values(self, row: int, last: int | None = None) -> np.ndarray:
        return self._values[row, self._window(last)]

    def latest(self, row: int) -> float | None:
        if not self._count:
            return None
        value = float(self._values[row, self._next + self.capacity - 1])
        return None if np.isnan(value) else value

    @property
    def nbytes(self) -> int:
        return int(self._values.nbytes + self._times.nbytes)


class GpuHistory:
    """One ring buffer per GPU (GPU_METRICS) and one for the host (HOST_METRICS)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.host = RingBuffer(capacity, len(HOST_METRICS))
        self.gpus: list[RingBuffer] = []

    def append(self, reading: GpuReading) -> None:
        if reading.host is not None:
            self.host.append(reading.timestamp, (reading.host.cpu_percent, reading.host.memory_percent))
        while len(self.gpus) < len(reading.gpus):
            self.gpus.append(RingBuffer(self.capacity, len(GPU_METRICS)))
        for gpu, buffer in zip(reading.gpus, self.gpus, strict=False):
            buffer.append(
                reading.timestamp,
                (gpu.utilization_gpu, gpu.memory_percent, gpu.temperature_c, gpu.power_w),
            )

    @property
    def nbytes(self) -> int:
        return self.host.nbytes + sum(b.nbytes for b in self.gpus)
