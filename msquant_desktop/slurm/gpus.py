"""The free-GPU view of a cluster: per node, rolled up per partition and per GPU type, with demand.

Pure over parsed outputs, so it is tested on recorded real outputs and on the live testbed alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.parsers import UNTYPED, DemandEntry, NodeInfo, QueueEntry

# Pending reasons that mean "not now, whatever is free": held, waiting on another job or a start
# time, or at its array's `%N` throttle (squeue's reason codes).
_NOT_NOW_REASONS = ("JobHeld", "Dependency", "BeginTime", "JobArrayTaskLimit")


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
    # The part of `pending` that could start now if the GPUs were free: not held, not waiting on a
    # dependency or a start time, and within each array's `%N` throttle.
    pending_now: dict[str, int] = field(default_factory=dict)
    # True when squeue cut an array's task list: `pending` is then a lower bound.
    pending_at_least: bool = False
    unusable: list[str] = field(default_factory=list)  # "node2: IDLE+DRAIN (fan broken)"

    def free(self, gpu_type: str) -> int:
        return self.by_type.get(gpu_type, GpuCount()).free


def startable_instances(entry: DemandEntry, running_in_array: Mapping[str, int]) -> int:
    """How many of the jobs a pending record stands for could start now (see GpuView.pending_now).

    `running_in_array` counts the running tasks of each throttled array (by array job id); when an
    array is missing from it, its throttle alone bounds the answer.
    """
    reason = entry.reason or ""
    if any(reason.startswith(prefix) for prefix in _NOT_NOW_REASONS):
        return 0
    count = entry.instances
    if entry.array is not None and entry.array.throttle is not None:
        running = running_in_array.get(entry.array_job_id or entry.job_id, 0)
        count = min(count, max(0, entry.array.throttle - running))
    return count


def gpu_view(
    nodes: list[NodeInfo],
    pending: Sequence[DemandEntry | QueueEntry],
    profile: ClusterProfile | None = None,
    running_in_array: Mapping[str, int] | None = None,
) -> GpuView:
    """Build the view; the profile's allowed partitions and GPU types filter it when set.

    `pending` are the queue's pending records (`DemandEntry` from `squeue -O DEMAND_FORMAT`, or the
    plain `QueueEntry` of `%b`, counted once each).  A pending array counts once per task.
    """
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
    running = running_in_array or {}
    for entry in pending:
        if isinstance(entry, QueueEntry):
            each, total, now = entry.gres, 1, 1
        else:
            if entry.state.upper() != "PENDING":
                continue
            if allowed_parts is not None and not set(entry.partition.split(",")) & allowed_parts:
                continue
            each, total, now = entry.gpus_each(), entry.instances, startable_instances(entry, running)
            view.pending_at_least |= bool(entry.array and entry.array.truncated)
        for gpu_type, n in each.items():
            if allowed_types is None or gpu_type in allowed_types or gpu_type == UNTYPED:
                view.pending[gpu_type] = view.pending.get(gpu_type, 0) + n * total
                if now:
                    view.pending_now[gpu_type] = view.pending_now.get(gpu_type, 0) + n * now
    return view
