"""Where serve replicas go on a cluster's free GPUs: each replica's tensor-parallel GPUs on one node,
the replicas spread across nodes.

Standard library only.  The input is what the Clusters tab's free-GPU view already holds (per usable
node and GPU type: free GPUs and partitions); the answer is a `Placement` — one `ReplicaSlot` per
replica — or a `PlacementShortfall` that says what is missing ("2 of 3 replicas fit; the third needs a
node with 4 free a100 GPUs; the most free on one node is 2 (node2)").

Rule (one owner: the dialog and any launch call this):

* a replica needs `tensor_parallel` GPUs of the wanted type on **one** node (vLLM's tensor parallelism
  runs inside one node; across nodes it needs pipeline parallelism — `domain/pipeline.py` plans the stages,
  but placing and launching a multi-node replica (a Ray cluster) is not done here);
* replicas are dealt round by round: each round gives at most one replica to every node that still has
  room, nodes with the most free GPUs first (ties by name), so replicas spread before any node takes a
  second one — one node's failure or drain then costs the fewest replicas;
* a node's GPU type matches the wanted one when the names are equal (case-insensitive) or both resolve to
  the same catalogue entry (`find_gpu_type`: "a100_80g" and "a100-80gb"); an untyped node (`gres/gpu:N`
  with no type) matches only when no type is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from msquant_desktop.domain.gpu_catalog import find_gpu_type


@dataclass(frozen=True)
class NodeFree:
    """Free GPUs of one type on one usable node."""

    node: str
    gpu_type: str  # the cluster's GRES type name; "" when untyped
    free: int
    partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicaSlot:
    replica: int  # 0-based
    node: str
    gpu_type: str
    gpus: int
    partition: str | None  # the node's first partition (None when the node lists none)


@dataclass(frozen=True)
class Placement:
    slots: tuple[ReplicaSlot, ...]
    free_after: dict[str, int]  # node -> free GPUs of the matching type(s) left after placing

    @property
    def nodes(self) -> list[str]:
        return sorted({s.node for s in self.slots})

    def describe(self) -> str:
        per: dict[str, int] = {}
        for slot in self.slots:
            per[slot.node] = per.get(slot.node, 0) + 1
        spread = ", ".join(f"{node} ×{n}" for node, n in sorted(per.items()))
        gpus = sum(s.gpus for s in self.slots)
        return f"{len(self.slots)} replica(s), {gpus} GPU(s) on {len(per)} node(s): {spread}"


@dataclass(frozen=True)
class PlacementShortfall:
    """Not every replica fits; `placed` holds the ones that do (the same rule as `Placement`)."""

    wanted: int
    placed: tuple[ReplicaSlot, ...]
    reason: str

    def describe(self) -> str:
        return self.reason


def gpu_type_matches(node_type: str, wanted: str | None) -> bool:
    """Whether a node's GRES type serves a request for `wanted` (None or "": any typed or untyped)."""
    if not wanted:
        return True
    if not node_type:
        return False
    if node_type.strip().lower() == wanted.strip().lower():
        return True
    a, b = find_gpu_type(node_type), find_gpu_type(wanted)
    return a is not None and a == b


def _type_label(wanted: str | None) -> str:
    return f"{wanted} " if wanted else ""


def place_replicas(
    free: Sequence[NodeFree],
    replicas: int,
    tensor_parallel: int,
    gpu_type: str | None = None,
    partition: str | None = None,
) -> Placement | PlacementShortfall:
    """Propose a node for each of `replicas` replicas of `tensor_parallel` GPUs (see the module rule).

    `partition`, when given, keeps only nodes in it.  Raises ValueError for replicas < 1 or tp < 1.
    """
    if replicas < 1 or tensor_parallel < 1:
        raise ValueError("need at least one replica of at least one GPU")
    # One pool per (node, GPU type): a replica's GPUs are one type on one node.
    room: dict[tuple[str, str], int] = {}
    parts: dict[str, tuple[str, ...]] = {}
    for entry in free:
        if not gpu_type_matches(entry.gpu_type, gpu_type):
            continue
        if partition and partition not in entry.partitions:
            continue
        key = (entry.node, entry.gpu_type)
        room[key] = room.get(key, 0) + max(0, entry.free)
        parts.setdefault(entry.node, entry.partitions)
    where = f" in partition {partition}" if partition else ""
    label = _type_label(gpu_type)
    if not room:
        return PlacementShortfall(replicas, (), f"no usable node{where} has {label}GPUs")
    slots: list[ReplicaSlot] = []
    left = dict(room)
    while len(slots) < replicas:
        fitting = sorted((k for k in left if left[k] >= tensor_parallel), key=lambda k: (-left[k], k))
        if not fitting:
            break
        used_this_round: set[str] = set()
        for node, node_type in fitting:
            if len(slots) == replicas:
                break
            if node in used_this_round:
                continue
            used_this_round.add(node)
            left[(node, node_type)] -= tensor_parallel
            node_parts = parts[node] if partition is None else (partition,)
            first = node_parts[0] if node_parts else None
            slots.append(ReplicaSlot(len(slots), node, node_type, tensor_parallel, first))
    free_after: dict[str, int] = {}
    for (node, _type), n in left.items():
        free_after[node] = free_after.get(node, 0) + n
    if len(slots) == replicas:
        return Placement(tuple(slots), free_after)
    most = max(room.values())
    missing = replicas - len(slots)
    if tensor_parallel > most:
        holders = ", ".join(sorted({k[0] for k, v in room.items() if v == most}))
        reason = (
            f"no node{where} has {tensor_parallel} free {label}GPUs for one replica "
            f"(tensor parallel {tensor_parallel}); the most free on one node is {most} ({holders})"
        )
    else:
        best = max(left.values())
        holders = ", ".join(sorted({k[0] for k, v in left.items() if v == best}))
        more = f"{missing} more replica{'s' if missing != 1 else ''}"
        reason = (
            f"{len(slots)} of {replicas} replicas fit{where}; {more} need {missing * tensor_parallel} more "
            f"{label}GPUs, {tensor_parallel} on one node each; left after placing: at most {best} on one "
            f"node ({holders}), {sum(room.values())} {label}GPUs were free in all"
        )
    return PlacementShortfall(replicas, tuple(slots), reason)
