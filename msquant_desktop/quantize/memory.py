"""Will a quantization fit?  A coarse estimate from the model's size and the scheme, before launch.

Calibrated on this project's measurements (facts/llmcompressor-cpu.md): the libraries alone take
~480 MiB of RSS; the model sits in memory in its stored dtype, plus one working copy of the layer
being compressed; GPTQ adds a float32 Hessian per linear layer of one decoder layer; calibrating
schemes keep the layer inputs of every sample (samples x seq_len x hidden, float32) twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from msquant_desktop.domain.quantize import SCHEMES_BY_ID, human_bytes
from msquant_desktop.quantize.model_folder import ModelInfo

# torch + transformers + llmcompressor imported and one tiny model calibrated: peak RSS measured
# 500-720 MiB on CPU depending on load (allocator arenas per busy thread), so we take the top.
LIBRARY_OVERHEAD = 640 * 1024 * 1024
HEADROOM = 1.15


@dataclass(frozen=True)
class MemoryEstimate:
    host_bytes: int
    host_available: int
    gpu_bytes: int | None = None
    gpu_available: int | None = None

    @property
    def host_fits(self) -> bool:
        return self.host_bytes <= self.host_available

    @property
    def gpu_fits(self) -> bool:
        return self.gpu_bytes is None or self.gpu_available is None or self.gpu_bytes <= self.gpu_available

    def warning(self) -> str | None:
        """A sentence for the form when the run will probably not fit; None when it should."""
        if not self.host_fits:
            return (
                f"Needs about {human_bytes(self.host_bytes)} of RAM but only "
                f"{human_bytes(self.host_available)} is available: the run may be killed by the OOM killer. "
                "Close other programs, use fewer samples / a shorter sequence length, or a bigger machine."
            )
        if not self.gpu_fits:
            return (
                f"Needs about {human_bytes(self.gpu_bytes or 0)} of GPU memory but only "
                f"{human_bytes(self.gpu_available or 0)} is free."
            )
        return None

    def summary(self) -> str:
        text = f"~{human_bytes(self.host_bytes)} RAM (available {human_bytes(self.host_available)})"
        if self.gpu_bytes is not None:
            text += f", ~{human_bytes(self.gpu_bytes)} GPU"
        return text


def estimate_memory(
    info: ModelInfo,
    scheme: str,
    samples: int,
    seq_len: int,
    gpu_available: int | None = None,
    host_available: int | None = None,
) -> MemoryEstimate:
    """Peak memory of one run.  `gpu_available` (free bytes on the GPU to use) adds a GPU estimate."""
    weights = info.weight_bytes
    largest_layer = max((o * i for o, i in info.linear_shapes.values()), default=0) * 4
    working = weights + 2 * largest_layer
    descriptor = SCHEMES_BY_ID.get(scheme)
    if descriptor is not None and descriptor.needs_data:
        hidden = max(info.hidden_size, 1)
        activations = 2 * samples * seq_len * hidden * 4
        hessians = sum(i * i * 4 for (_o, i) in info.linear_shapes.values()) // max(info.num_layers, 1)
        working += activations + hessians
    host = int((LIBRARY_OVERHEAD + working) * HEADROOM)
    if host_available is None:
        host_available = int(psutil.virtual_memory().available)
    gpu = int(working * HEADROOM) if gpu_available is not None else None
    return MemoryEstimate(host, host_available, gpu, gpu_available)
