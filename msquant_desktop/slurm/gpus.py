"""The free-GPU view of a cluster: per node, rolled up per partition and per GPU type, with demand.

Pure over parsed outputs, so it is tested on recorded real outputs and on the live testbed alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.parsers import UNTYPED, NodeInfo, QueueEntry


@dataclass(frozen=True)
class GpuCount:
    total: int = 0
    used: int = 0

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)

    def __add__(self, other: GpuCount) -> GpuCount:
        return GpuCount(self.total + other.total, self.used + other.used)


@dataclass(frozen=True)
class NodeRow:
    node: str
    state: str
    usable: bool
    reason: str | None
    partitions: tuple[str, ...]
    gpu_type: str  # "" for untyped GPUs
    gpus: GpuCount
    cpus_free: int
    memory_free_mb: int


@dataclass
class GpuView:
    rows: list[NodeRow] = field(default_factory=list)
    by_partition: dict[str, dict[str, GpuCount]] = field(default_factory=dict)  # usable nodes only
    by_type: dict[str, GpuCount] = field(default_factory=dict)  # usable nodes only
    pending: dict[str, int] = field(default_factory=dict)  # GPUs asked for by pending jobs, by type
    unusable: list[str] = field(default_factory=list)  # "node2: IDLE+DRAIN (fan broken)"

    def free(self, gpu_type: str) -> int:
        return self.by_type.get(gpu_type, GpuCount()).free


def gpu_view(
    nodes: list[NodeInfo], pending: list[QueueEntry], profile: ClusterProfile | None = None
) -> GpuView:
    """Build the view; the profile's allowed partitions and GPU types filter it when set."""
    allowed_parts = set(profile.allowed_partitions) if profile and profile.allowed_partitions else None
    allowed_types = set(profile.allowed_gpu_types) if profile and profile.allowed_gpu_types else None
    view = GpuView()
    for node in nodes:
        parts = tuple(p for p in node.partitions if allowed_parts is None or p in allowed_parts)
        if allowed_parts is not None and not parts:
            continue
        if not node.usable:
            view.unusable.append(f"{node.name}: {node.state}" + (f" ({node.reason})" if node.reason else ""))
        types = sorted(node.gpus_total) or [UNTYPED]
        for gpu_type in types:
            if allowed_types is not None and gpu_type not in allowed_types and node.gpus_total:
                continue
            count = GpuCount(node.gpus_total.get(gpu_type, 0), node.gpus_used.get(gpu_type, 0))
            view.rows.append(
                NodeRow(
                    node=node.name,
                    state=node.state,
                    usable=node.usable,
                    reason=node.reason,
                    partitions=parts,
                    gpu_type=gpu_type,
                    gpus=count,
                    cpus_free=max(0, node.cpus_total - node.cpus_alloc),
                    memory_free_mb=max(0, node.memory_mb - node.memory_alloc_mb),
                )
            )
            if not node.usable or not node.gpus_total:
                continue
            view.by_type[gpu_type] = view.by_type.get(gpu_type, GpuCount()) + count
            for part in parts:
                per = view.by_partition.setdefault(part, {})
                per[gpu_type] = per.get(gpu_type, GpuCount()) + count
    for entry in pending:
        for gpu_type, n in entry.gres.items():
            if allowed_types is None or gpu_type in allowed_types or gpu_type == UNTYPED:
                view.pending[gpu_type] = view.pending.get(gpu_type, 0) + n
    return view
