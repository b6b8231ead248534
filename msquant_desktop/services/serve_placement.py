"""Serve replicas on a cluster: the free-GPU view as placement input, and the sbatch script each placed
replica would be submitted with (a preview: nothing here submits).

Qt-free on purpose (like `serving_plan.py`): it joins the SLURM adapter's free-GPU view and its
#SBATCH safety rule with the domain's placement rule.  Every word of the serve command is
`shlex.quote`d; every #SBATCH value goes through the adapter's one directive check.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from msquant_desktop.domain.placement import (
    NodeFree,
    Placement,
    PlacementShortfall,
    ReplicaSlot,
    place_replicas,
)
from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.slurm.script import ScriptError, directive_lines

DEFAULT_SERVE_TEMPLATE = "vllm serve {model} --tensor-parallel-size {tp} --port {port}"
"""The serve command of one replica; `{model}`, `{tp}`, `{port}` and `{replica}` are filled in."""
DEFAULT_BASE_PORT = 8000


def free_gpus(view: GpuView) -> list[NodeFree]:
    """The placement input from the Clusters tab's view: usable nodes with GPUs, free per type."""
    return [
        NodeFree(row.node, row.gpu_type, row.gpus.free, row.partitions)
        for row in view.rows
        if row.usable and row.gpus.total > 0
    ]


def place_on_view(
    view: GpuView, replicas: int, tensor_parallel: int, gpu_type: str | None, partition: str | None = None
) -> Placement | PlacementShortfall:
    return place_replicas(free_gpus(view), replicas, tensor_parallel, gpu_type, partition)


@dataclass(frozen=True)
class ServeScript:
    slot: ReplicaSlot
    port: int
    command: str
    text: str


def serve_command(template: str, model: str, tp: int, port: int, replica: int) -> str:
    """The template split into shell words, each word filled in and quoted (a model path with spaces or
    `$(...)` stays one literal word).  Raises ValueError for a template that is not shell words or names
    an unknown field."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ValueError(f"the serve command is not valid shell words: {exc}") from exc
    if not words:
        raise ValueError("the serve command is empty")
    values = {"model": model, "tp": tp, "port": port, "replica": replica}
    try:
        return shlex.join(word.format_map(values) for word in words)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"the serve command names an unknown field {exc}; use {{model}}, {{tp}}, {{port}}, {{replica}}"
        ) from exc


def _ports(slots: Sequence[ReplicaSlot], base_port: int) -> list[int]:
    """Replicas sharing a node get consecutive ports from `base_port`."""
    seen: dict[str, int] = {}
    ports = []
    for slot in slots:
        ports.append(base_port + seen.get(slot.node, 0))
        seen[slot.node] = seen.get(slot.node, 0) + 1
    return ports


def serve_scripts(
    slots: Sequence[ReplicaSlot],
    model: str,
    job_name: str = "serve",
    template: str = DEFAULT_SERVE_TEMPLATE,
    base_port: int = DEFAULT_BASE_PORT,
    time_limit: str | None = None,
) -> list[ServeScript]:
    """One sbatch script per placed replica, pinned to its node.  Raises ValueError (ScriptError) for a
    value that cannot be written safely."""
    scripts = []
    for slot, port in zip(slots, _ports(slots, base_port), strict=True):
        command = serve_command(template, model, slot.gpus, port, slot.replica)
        gres = f"gpu:{slot.gpu_type}:{slot.gpus}" if slot.gpu_type else f"gpu:{slot.gpus}"
        try:
            header = directive_lines(
                {
                    "job-name": f"{job_name}-r{slot.replica}",
                    "partition": slot.partition,
                    "nodelist": slot.node,
                    "nodes": 1,
                    "ntasks": 1,
                    "gres": gres,
                    "time": time_limit,
                }
            )
        except ScriptError as exc:
            raise ValueError(str(exc)) from exc
        text = "\n".join(["#!/bin/bash", *header, "set -euo pipefail", f"exec {command}", ""])
        scripts.append(ServeScript(slot, port, command, text))
    return scripts


def placement_preview(
    view: GpuView,
    cluster: str,
    replicas: int,
    tensor_parallel: int,
    gpu_type: str | None,
    model: str,
    template: str = DEFAULT_SERVE_TEMPLATE,
    base_port: int = DEFAULT_BASE_PORT,
    job_name: str = "serve",
) -> dict[str, object]:
    """What a planning view shows for a cluster: a one-paragraph summary and the scripts' text (the
    placed replicas' scripts even when not all fit).  Raises ValueError for an unusable template."""
    placed = place_on_view(view, replicas, tensor_parallel, gpu_type)
    slots = placed.slots if isinstance(placed, Placement) else placed.placed
    scripts = serve_scripts(slots, model, job_name, template, base_port)
    want = f"{replicas} replica(s) × {tensor_parallel} {gpu_type or ''} GPU(s)".replace("  ", " ")
    if isinstance(placed, Placement):
        summary = f"{cluster}: {want} placed — {placed.describe()}."
    else:
        summary = f"{cluster}: {want} do not all fit — {placed.reason}."
    if view.unusable:
        summary += " Not used: " + "; ".join(view.unusable) + "."
    text = "\n".join(f"# replica {s.slot.replica} on {s.slot.node}, port {s.port}\n{s.text}" for s in scripts)
    return {"summary": summary, "scripts": text, "fits": isinstance(placed, Placement), "placed": len(slots)}
