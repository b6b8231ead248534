"""GPU types a replica can run on: memory and HBM/GDDR bandwidth, for the serving planner.

Standard library only.  Bandwidth and memory from NVIDIA's public data sheets (A100: "NVIDIA A100
Tensor Core GPU" data sheet; H100 SXM/PCIe and H200: the H100 and H200 product pages' specification
tables; L40S, L4, A10G (AWS g5, "NVIDIA A10G" = A10 memory system), RTX 4090: the product pages);
`memory_bytes` is what CUDA reports as total memory (nvidia-smi's "MiB" column on those cards), which is
what vLLM multiplies by gpu_memory_utilization.  A figure a site measures differently can be given by
hand (`GpuType(...)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuType:
    key: str
    name: str
    memory_bytes: int
    bandwidth_bytes_per_s: float
    fp8: bool  # native FP8 tensor cores (Ada, Hopper); others run FP8 weights weight-only

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / 1024**3


GPU_TYPES: tuple[GpuType, ...] = (
    GpuType("a100-40gb", "NVIDIA A100 40GB SXM", 40960 * MIB, 1.555e12, False),
    GpuType("a100-80gb", "NVIDIA A100 80GB SXM", 81920 * MIB, 2.039e12, False),
    GpuType("h100-sxm", "NVIDIA H100 SXM 80GB", 81559 * MIB, 3.35e12, True),
    GpuType("h100-pcie", "NVIDIA H100 PCIe 80GB", 81559 * MIB, 2.0e12, True),
    GpuType("h200", "NVIDIA H200 141GB", 143771 * MIB, 4.8e12, True),
    GpuType("l40s", "NVIDIA L40S 48GB", 46068 * MIB, 0.864e12, True),
    GpuType("l4", "NVIDIA L4 24GB", 23034 * MIB, 0.300e12, True),
    GpuType("a10g", "NVIDIA A10G 24GB", 23028 * MIB, 0.600e12, False),
    GpuType("rtx4090", "NVIDIA GeForce RTX 4090 24GB", 24564 * MIB, 1.008e12, True),
)
GPU_BY_KEY = {g.key: g for g in GPU_TYPES}

# Names a cluster or NVML uses for the same cards (SLURM GRES types, nvidia-smi names), lower case,
# punctuation removed; the first pattern that matches wins.
_ALIASES: tuple[tuple[str, str], ...] = (
    (r"h200", "h200"),
    (r"h100.*pcie", "h100-pcie"),
    (r"h100", "h100-sxm"),
    (r"a100.*(80|80g|80gb)", "a100-80gb"),
    (r"a100", "a100-40gb"),
    (r"l40s", "l40s"),
    (r"\bl4\b", "l4"),
    (r"a10g", "a10g"),
    (r"4090", "rtx4090"),
)


def find_gpu_type(name: str) -> GpuType | None:
    """The catalogue entry for a GPU name as a cluster or NVML spells it ("a100_80g", "NVIDIA H100
    80GB HBM3", "h100-sxm"), or None when it is not in the catalogue."""
    text = name.strip().lower()
    if text in GPU_BY_KEY:
        return GPU_BY_KEY[text]
    flat = re.sub(r"[\s_\-]+", " ", text)
    for pattern, key in _ALIASES:
        if re.search(pattern, flat):
            return GPU_BY_KEY[key]
    return None
