"""Serve replicas on a cluster: the free-GPU view as placement input, one SLURM job per placed replica
(a job without a repository, pinned to its node), and the group those jobs form.

Qt-free on purpose (like `serving_plan.py`): it joins the SLURM adapter's free-GPU view and its script
renderer with the domain's placement rule, so the planner's panel and `plan place` build the very same
submissions.  A replica's job is an ordinary SLURM job of the store (kind COMMAND) with
`meta["serve"]` naming its group, replica, node and port: the Jobs and Clusters tabs track, show and
cancel it like any other.  Every word of the serve command is filled in and then `shlex.quote`d by the
renderer; its node and GPU request go through the renderer's directive checks.
"""

from __future__ import annotations

import dataclasses
import shlex
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobRecord
from msquant_desktop.domain.placement import (
    NodeFree,
    Placement,
    PlacementShortfall,
    ReplicaSlot,
    place_replicas,
)
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.slurm.script import ScriptError, render_preview
from msquant_desktop.store import JobRepository

DEFAULT_SERVE_TEMPLATE = "vllm serve {model} --tensor-parallel-size {tp} --port {port}"
"""The serve command of one replica; `{model}`, `{tp}`, `{port}` and `{replica}` are filled in."""
DEFAULT_BASE_PORT = 8000
SERVE_META_KEY = "serve"
"""A replica job's `meta` entry: {"group", "replica", "replicas", "node", "port", "model", ...}."""
SERVE_KIND = JobKind.COMMAND


def template_for(profile: ClusterProfile) -> str:
    """The serve command a cluster's replicas run unless one is given: its profile's
    `serve_template`, else DEFAULT_SERVE_TEMPLATE."""
    return profile.serve_template or DEFAULT_SERVE_TEMPLATE


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


def serve_command(template: str, model: str, tp: int, port: int, replica: int) -> str:
    """The template split into shell words, each word filled in and quoted (a model path with spaces or
    `$(...)` stays one literal word).  Raises ValueError (one line) for a template on more than one
    line, one that is not shell words, or one naming an unknown field."""
    return shlex.join(serve_words(template, model, tp, port, replica))


def serve_words(template: str, model: str, tp: int, port: int, replica: int) -> tuple[str, ...]:
    """The filled-in words of `serve_command` (the argv the replica's job runs)."""
    if "\n" in template or "\r" in template:
        raise ValueError("the serve command must be one line (no newlines)")
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ValueError(f"the serve command is not valid shell words: {exc}") from exc
    if not words:
        raise ValueError("the serve command is empty")
    values = {"model": model, "tp": tp, "port": port, "replica": replica}
    try:
        for word in words:
            for _text, field, _spec, _conv in string.Formatter().parse(word):
                if field is not None and field not in values:  # `{model.x}`, `{0}`, `{}` included
                    raise KeyError(field)
        return tuple(word.format_map(values) for word in words)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
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


def group_name(model: str, stamp: str) -> str:
    """A serving plan's group: `serve-<model folder's name>-<stamp>`, in job-name characters."""
    base = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(model.rstrip("/")).name)[:40]
    return f"serve-{base or 'model'}-{stamp}"


@dataclass(frozen=True)
class ServeReplica:
    """One placed replica as the job that will run it."""

    slot: ReplicaSlot
    port: int
    command: str  # the serve command as one quoted line
    submission: SlurmSubmission
    meta: dict[str, Any]

    @property
    def group(self) -> str:
        return str(self.meta[SERVE_META_KEY]["group"])


def replica_jobs(
    profile: ClusterProfile,
    slots: Sequence[ReplicaSlot],
    model: str,
    group: str,
    template: str = DEFAULT_SERVE_TEMPLATE,
    base_port: int = DEFAULT_BASE_PORT,
    time_limit: str | None = None,
) -> list[ServeReplica]:
    """One SLURM submission per placed replica: no repository, `--nodelist` its node, one node and one
    task, GRES = its tensor-parallel GPUs of its type, the serve command as its argv.  Each is checked
    as the renderer will check it (the profile's allowances included).  Raises ValueError (one line)."""
    out = []
    for slot, port in zip(slots, _ports(slots, base_port), strict=True):
        words = serve_words(template, model, slot.gpus, port, slot.replica)
        submission = SlurmSubmission(
            cluster=profile.name,
            job_name=f"{group}-r{slot.replica}",
            repo_url="",
            commit="",
            command=words,
            partition=slot.partition,
            gpu_type=slot.gpu_type or None,
            gpus=slot.gpus,
            time_limit=time_limit,
            no_repo=True,
            sbatch_lines=(f"#SBATCH --nodelist={slot.node}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1"),
            extra_env=(
                ("MSQUANT_SERVE_GROUP", group),
                ("MSQUANT_SERVE_REPLICA", str(slot.replica)),
                ("MSQUANT_SERVE_PORT", str(port)),
            ),
        )
        try:
            render_preview(submission, profile)
        except ScriptError as exc:
            raise ValueError(str(exc)) from exc
        meta = {
            SERVE_META_KEY: {
                "group": group,
                "replica": slot.replica,
                "replicas": len(slots),
                "node": slot.node,
                "port": port,
                "model": model,
                "tensor_parallel": slot.gpus,
                "gpu_type": slot.gpu_type,
                "template": template,
            }
        }
        out.append(ServeReplica(slot, port, shlex.join(words), submission, meta))
    return out


def replica_script(replica: ServeReplica, profile: ClusterProfile) -> str:
    """The script as it will be sent (the preview's run id and name are replaced by the real ones)."""
    return render_preview(replica.submission, profile)


@dataclass(frozen=True)
class PlacedReplicas:
    """The placement of a serving plan on one cluster and the jobs it would submit."""

    cluster: str
    placement: Placement | PlacementShortfall
    replicas: tuple[ServeReplica, ...]
    scripts: tuple[str, ...]
    summary: str

    @property
    def fits(self) -> bool:
        return isinstance(self.placement, Placement)

    def to_dict(self) -> dict[str, Any]:
        """`plan place --json`'s placement (the submitted jobs are added by the caller)."""
        return {
            "cluster": self.cluster,
            "fits": self.fits,
            "summary": self.summary,
            "group": self.replicas[0].group if self.replicas else None,
            "replicas": [
                {
                    "replica": r.slot.replica,
                    "node": r.slot.node,
                    "gpu_type": r.slot.gpu_type,
                    "gpus": r.slot.gpus,
                    "partition": r.slot.partition,
                    "port": r.port,
                    "command": r.command,
                    "script": script,
                }
                for r, script in zip(self.replicas, self.scripts, strict=True)
            ],
        }


def place_and_prepare(
    view: GpuView,
    profile: ClusterProfile,
    replicas: int,
    tensor_parallel: int,
    gpu_type: str | None,
    model: str,
    group: str,
    template: str = DEFAULT_SERVE_TEMPLATE,
    base_port: int = DEFAULT_BASE_PORT,
    partition: str | None = None,
    time_limit: str | None = None,
) -> PlacedReplicas:
    """Place the replicas on the view's free GPUs and build each placed one's job and script (the
    placed ones even when not all fit: a shortfall is shown, never submitted).  Raises ValueError
    (one line) for an unusable template, model path or profile refusal."""
    if not model.strip():
        raise ValueError("give the model's path on the cluster")
    placed = place_on_view(view, replicas, tensor_parallel, gpu_type, partition)
    slots = placed.slots if isinstance(placed, Placement) else placed.placed
    jobs = replica_jobs(profile, slots, model, group, template, base_port, time_limit)
    scripts = tuple(replica_script(r, profile) for r in jobs)
    want = f"{replicas} replica(s) × {tensor_parallel} {gpu_type or ''} GPU(s)".replace("  ", " ")
    if isinstance(placed, Placement):
        summary = f"{profile.name}: {want} placed — {placed.describe()}."
    else:
        summary = f"{profile.name}: {want} do not all fit — {placed.reason}."
    if view.unusable:
        summary += " Not used: " + "; ".join(view.unusable) + "."
    return PlacedReplicas(profile.name, placed, tuple(jobs), scripts, summary)


def placement_preview(
    view: GpuView,
    profile: ClusterProfile,
    replicas: int,
    tensor_parallel: int,
    gpu_type: str | None,
    model: str,
    group: str,
    template: str = DEFAULT_SERVE_TEMPLATE,
    base_port: int = DEFAULT_BASE_PORT,
) -> dict[str, object]:
    """What the planner's panel shows: the summary, the scripts' text one after the other, and the
    `PlacedReplicas` it submits from."""
    placed = place_and_prepare(
        view, profile, replicas, tensor_parallel, gpu_type, model, group, template, base_port
    )
    text = "\n".join(
        f"# replica {r.slot.replica} on {r.slot.node}, port {r.port}\n{script}"
        for r, script in zip(placed.replicas, placed.scripts, strict=True)
    )
    return {
        "summary": placed.summary,
        "scripts": text,
        "fits": placed.fits,
        "placed": len(placed.replicas),
        "plan": placed,
    }


def with_edited_script(replica: ServeReplica, profile: ClusterProfile, text: str) -> SlurmSubmission:
    """The replica's submission with the user's edit of its preview (unchanged text: no edit), audited
    as the Clusters tab audits an edited preview.  Raises ValueError (one line)."""
    if text == replica_script(replica, profile):
        return replica.submission
    edited = dataclasses.replace(replica.submission, edited_script=text)
    try:
        render_preview(edited, profile)
    except ScriptError as exc:
        raise ValueError(f"replica {replica.slot.replica}: {exc}") from exc
    return edited


def group_jobs(repo: JobRepository, group: str) -> list[JobRecord]:
    """The jobs of one serving plan's group, replica 0 first."""
    jobs = [j for j in repo.list_jobs() if (j.spec.meta.get(SERVE_META_KEY) or {}).get("group") == group]
    return sorted(jobs, key=lambda j: int(j.spec.meta[SERVE_META_KEY]["replica"]))
