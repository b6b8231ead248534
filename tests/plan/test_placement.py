"""Placement of serve replicas on free GPUs, on recorded `scontrol show node` outputs (tests/slurm/fixtures:
the testbed's Slurm 22.05.8 and one from a public report, sources in its SOURCES.md), and the sbatch
jobs a placement submits (one per replica, pinned to its node)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from msquant_desktop.domain.placement import (
    NodeFree,
    Placement,
    PlacementShortfall,
    gpu_type_matches,
    place_replicas,
)
from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.services.serve_placement import (
    free_gpus,
    group_name,
    place_and_prepare,
    place_on_view,
    replica_jobs,
    replica_script,
    serve_command,
    with_edited_script,
)
from msquant_desktop.slurm.gpus import GpuView, gpu_view
from msquant_desktop.slurm.parsers import parse_nodes
from msquant_desktop.slurm.script import sbatch_directives

FIXTURES = Path(__file__).parents[1] / "slurm" / "fixtures"


def view_of(name: str) -> GpuView:
    text = "\n".join(line for line in (FIXTURES / name).read_text().splitlines() if not line.startswith("##"))
    return gpu_view(parse_nodes(text), [])


def test_busy_cluster_places_on_the_one_free_gpu_and_says_what_is_missing() -> None:
    view = view_of("scontrol_show_node_busy.txt")  # node1: a100 2/2 used; node2: a100 0/1, h100 2/2
    one = place_on_view(view, 1, 1, "a100")
    assert isinstance(one, Placement)
    assert [(s.node, s.gpu_type, s.gpus, s.partition) for s in one.slots] == [("node2", "a100", 1, "debug")]
    assert one.free_after == {"node1": 0, "node2": 0}
    two = place_on_view(view, 2, 1, "a100")
    assert isinstance(two, PlacementShortfall) and len(two.placed) == 1
    assert two.reason.startswith("1 of 2 replicas fit; 1 more replica need 1 more a100 GPUs")
    tp2 = place_on_view(view, 1, 2, "h100")
    assert isinstance(tp2, PlacementShortfall) and not tp2.placed
    assert "no node has 2 free h100 GPUs for one replica (tensor parallel 2)" in tp2.reason
    assert "the most free on one node is 0 (node2)" in tp2.reason


def test_a_drained_node_is_not_used_and_a_type_only_it_has_is_missing() -> None:
    view = view_of("scontrol_show_node_drain.txt")  # node2 (a100 + 2 h100, all free) is drained
    assert [(f.node, f.free) for f in free_gpus(view)] == [("node1", 1)]
    missing = place_on_view(view, 1, 1, "h100")
    assert isinstance(missing, PlacementShortfall) and missing.reason == "no usable node has h100 GPUs"


def test_maintenance_node_is_skipped_and_tp_gpus_stay_on_one_node() -> None:
    view = view_of("scontrol_show_node_maint.txt")  # node1 reserved for maintenance; node2 idle
    placed = place_on_view(view, 1, 2, "h100")
    assert isinstance(placed, Placement) and placed.slots[0].node == "node2" and placed.slots[0].gpus == 2
    # Two types on node2 are two pools: a TP-2 replica never mixes an a100 with an h100.
    mixed = place_on_view(view, 2, 2, None)
    assert isinstance(mixed, PlacementShortfall) and len(mixed.placed) == 1
    assert mixed.placed[0].gpu_type == "h100"
    # The catalogue's spelling finds the cluster's GRES name (h100 -> "h100-sxm").
    assert isinstance(place_on_view(view, 1, 1, "h100-sxm"), Placement)


def test_a_field_node_without_gres_used_a_type_outside_the_catalogue() -> None:
    # Slurm 25.05.2 from a public report: `Gres=gpu:a40:1(S:…)`, no GresUsed line, IDLE+DYNAMIC_NORM.
    view = view_of("scontrol_show_nodes_slinky_a40.txt")
    one = place_on_view(view, 1, 1, "a40")  # not in the catalogue: matched by its GRES name
    assert isinstance(one, Placement) and one.slots[0].partition == "tn"
    tp2 = place_on_view(view, 1, 2, "a40")
    assert isinstance(tp2, PlacementShortfall)
    assert tp2.reason.endswith("the most free on one node is 1 (esc8000a-1)")


def test_replicas_spread_across_nodes_before_doubling_up() -> None:
    free = [
        NodeFree("gpu-a", "a100_80g", 8, ("gpu",)),
        NodeFree("gpu-b", "a100_80g", 4, ("gpu",)),
        NodeFree("gpu-c", "A100_80G", 2, ("gpu", "debug")),
        NodeFree("gpu-e", "a100", 8, ("gpu",)),  # an A100 40GB in the catalogue: not an 80 GB card
        NodeFree("gpu-d", "h100", 8, ("gpu",)),
    ]
    placed = place_replicas(free, 5, 2, "a100-80gb")
    assert isinstance(placed, Placement)
    assert [s.node for s in placed.slots] == ["gpu-a", "gpu-b", "gpu-c", "gpu-a", "gpu-b"]
    assert placed.free_after == {"gpu-a": 4, "gpu-b": 0, "gpu-c": 0}
    assert placed.describe() == "5 replica(s), 10 GPU(s) on 3 node(s): gpu-a ×2, gpu-b ×2, gpu-c ×1"
    only_debug = place_replicas(free, 2, 2, "a100_80g", partition="debug")
    assert isinstance(only_debug, PlacementShortfall) and only_debug.placed[0].partition == "debug"
    assert "fit in partition debug" in only_debug.reason
    with pytest.raises(ValueError):
        place_replicas(free, 0, 1)


def test_gpu_type_matching() -> None:
    assert gpu_type_matches("a100", "A100") and gpu_type_matches("a100_80g", "a100-80gb")
    assert not gpu_type_matches("a100", "h100") and not gpu_type_matches("", "a100")
    assert gpu_type_matches("", None) and gpu_type_matches("l40s", "")


PROFILE = ClusterProfile("c", "u@h", "/w")


def test_replica_jobs_quote_every_word_pin_the_node_and_pass_the_directive_check() -> None:
    placed = place_on_view(view_of("scontrol_show_node_maint.txt"), 2, 1, "h100")
    assert isinstance(placed, Placement)
    model = "/models/my model $(rm -rf ~)"
    first, second = replica_jobs(PROFILE, placed.slots, model, group="serve-demo")
    assert first.submission.no_repo and first.submission.gpus == 1 and first.submission.gpu_type == "h100"
    text = replica_script(first, PROFILE)
    directives = sbatch_directives(text)
    for line in (
        "#SBATCH --job-name=serve-demo-r0-PREVIEW",
        "#SBATCH --partition=debug",
        "#SBATCH --gres=gpu:h100:1",
        "#SBATCH --nodelist=node2",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
    ):
        assert line in directives
    assert shlex.split(first.command) == [
        "vllm",
        "serve",
        model,
        "--tensor-parallel-size",
        "1",
        "--port",
        "8000",
    ]
    assert first.command in text  # the job runs exactly this line, every word quoted
    assert with_edited_script(first, PROFILE, text) is first.submission  # the shown text unchanged: no edit
    assert (first.port, second.port) == (8000, 8001)  # two replicas on one node: two ports
    assert first.meta["serve"]["group"] == second.meta["serve"]["group"] == "serve-demo"
    assert (first.meta["serve"]["node"], second.meta["serve"]["replica"]) == ("node2", 1)
    with pytest.raises(ValueError, match="unknown field"):
        serve_command("vllm serve {model} --gpus {gpus}", model, 1, 8000, 0)
    with pytest.raises(ValueError, match="not valid shell words"):
        serve_command("vllm serve '{model}", model, 1, 8000, 0)
    for bad in ("{model.upper}", "{0}", "{}", "{replica[0]}"):
        with pytest.raises(ValueError, match="unknown field"):
            serve_command(f"vllm serve {bad}", model, 1, 8000, 0)
    assert serve_command("run --port={port:05d}", model, 1, 80, 0) == "run --port=00080"
    with pytest.raises(ValueError, match="one line"):
        serve_command("vllm serve {model}\nrm -rf ~", model, 1, 8000, 0)
    with pytest.raises(ValueError, match="job_name"):
        replica_jobs(PROFILE, placed.slots, model, group="serve demo")
    allowed = ClusterProfile("c", "u@h", "/w", allowed_partitions=("gpu",))
    with pytest.raises(ValueError, match="not allowed"):
        replica_jobs(allowed, placed.slots, model, group="serve-demo")
    assert group_name("/models/Llama 3.1/", "20261202-0312") == "serve-Llama-3.1-20261202-0312"


def test_an_edited_replica_script_is_audited_like_the_clusters_preview() -> None:
    placed = place_and_prepare(
        view_of("scontrol_show_node_maint.txt"), PROFILE, 1, 1, "h100", "/m", "serve-x"
    )
    (replica,), (script,) = placed.replicas, placed.scripts
    edited = with_edited_script(
        replica, PROFILE, script.replace("set -euo pipefail", "set -euo pipefail\necho hi")
    )
    assert edited.edited_script is not None and "echo hi" in edited.edited_script
    with pytest.raises(ValueError, match="replica 0: edited script"):
        with_edited_script(
            replica, PROFILE, script.replace("#SBATCH --chdir=", "#SBATCH --chdir=/elsewhere #")
        )
    with pytest.raises(ValueError, match="model's path"):
        place_and_prepare(view_of("scontrol_show_node_maint.txt"), PROFILE, 1, 1, "h100", " ", "serve-x")
