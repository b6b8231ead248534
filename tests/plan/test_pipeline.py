"""Pipeline stages: the layer split, each stage's memory, and the stages as queues in tandem (exact
textbook answers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from msquant_desktop.domain.gpu_catalog import GPU_BY_KEY
from msquant_desktop.domain.pipeline import (
    Tandem,
    TandemUnstable,
    engine_sequences,
    pipeline_memory,
    pipeline_stages,
    stage_layers,
    stage_of,
    stage_service_rates,
    tandem,
    virtual_engine_speed,
)
from msquant_desktop.domain.serving_memory import (
    SCHEME_FORMATS,
    SOURCE_CONFIG,
    Architecture,
    WeightBytes,
    apply_format,
    replica_memory,
)
from msquant_desktop.services.serving_plan import ServingGoal, scheme_rows
from msquant_desktop.ui.plan.table import COLUMNS, pipeline_cell, pipeline_tip, row_cells, row_problem
from tests.plan.test_cli_plan import plan
from tests.plan.test_memory import LLAMA3_70B


def _weights(scheme: str) -> tuple[WeightBytes, Architecture]:
    arch = Architecture.from_config(LLAMA3_70B)
    fmt = SCHEME_FORMATS[scheme]
    return WeightBytes(scheme, tuple(apply_format(arch.tensors(), fmt)), SOURCE_CONFIG, fmt), arch


def test_two_identical_mm1_stages_in_tandem() -> None:
    lam, mu = 1.0, 3.0
    t = tandem(lam, [mu, mu])
    assert isinstance(t, Tandem)
    assert math.isclose(t.mean_time_in_system, 2.0 / (mu - lam), rel_tol=1e-12)  # 1
    assert math.isclose(t.mean_wait, 2.0 * lam / (mu * (mu - lam)), rel_tol=1e-12)
    assert t.throughput_bound == mu and t.critical_stage == 0
    # M/M/2 stages: each W = 1/μ + C/(2μ − λ); c = 2, λ = 1, μ = 1 → C = 1/3, W = 4/3 per stage.
    two = tandem(1.0, [1.0, 1.0], servers=2)
    assert isinstance(two, Tandem) and math.isclose(two.mean_time_in_system, 8.0 / 3.0, rel_tol=1e-12)


def test_unbalanced_stages_the_slowest_is_critical_and_bounds_stability() -> None:
    t = tandem(2.0, [5.0, 3.0, 4.0])
    assert isinstance(t, Tandem) and t.critical_stage == 1 and t.throughput_bound == 3.0
    assert math.isclose(t.mean_time_in_system, 1 / 3 + 1 / 1 + 1 / 2, rel_tol=1e-12)
    assert max(range(3), key=lambda i: t.stages[i].utilization) == t.critical_stage
    for lam in (3.0, 3.5):  # λ ≥ min μ_i: unstable, never a number
        u = tandem(lam, [5.0, 3.0, 4.0])
        assert isinstance(u, TandemUnstable) and u.critical_stage == 1 and u.throughput_bound == 3.0
        assert "stage 1" in u.explain() and "unstable" in u.explain()
    assert isinstance(tandem(2.9, [5.0, 3.0, 4.0]), Tandem)
    with pytest.raises(ValueError):
        tandem(1.0, [])


def test_stage_service_rates_follow_the_bytes_each_stage_reads() -> None:
    assert stage_service_rates(1.0, [1.0, 1.0]) == [2.0, 2.0]  # half the bytes each: twice as fast
    assert stage_service_rates(2.0, [3.0, 1.0]) == pytest.approx([8 / 3, 8.0])


def test_vllm_layer_split_and_which_stage_holds_a_tensor() -> None:
    assert stage_layers(80, 2) == [(0, 40), (40, 80)]
    assert stage_layers(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]  # the extras before the last stage
    ranges = stage_layers(10, 4)
    assert stage_of("model.embed_tokens.weight", ranges) == 0
    assert stage_of("model.layers.4.mlp.up_proj.weight", ranges) == 1
    assert stage_of("model.layers.9.input_layernorm.weight", ranges) == 3
    assert stage_of("lm_head.weight", ranges) == 3 and stage_of("model.norm.weight", ranges) == 3
    with pytest.raises(ValueError):
        stage_layers(3, 4)


def test_a_70b_bf16_replica_on_one_gpu_nodes_of_a100_80gb_needs_pipeline_stages() -> None:
    weights, arch = _weights("BF16")
    gpu = GPU_BY_KEY["a100-80gb"]
    assert not replica_memory(weights, arch, gpu, 4096, tensor_parallel=1).fits  # 141 GB on one 80 GB
    plan = pipeline_memory(weights, arch, gpu, 4096, gpus_per_node=1)
    assert plan is not None and plan.fits and (plan.pipeline_parallel, plan.tensor_parallel) == (2, 1)
    assert plan.gpus == 2
    split = [s.memory.weights_bytes_per_gpu for s in plan.stages]
    assert sum(split) == weights.gpu_bytes  # every byte on exactly one stage
    assert [s.layers for s in plan.stages] == [(0, 40), (40, 80)]
    # Each stage holds its own layers' KV: half the model's per token.
    full_kv = arch.kv_bytes_per_token("bf16", 1)
    assert all(s.memory.kv_bytes_per_token_per_gpu * 2 == full_kv for s in plan.stages)
    assert plan.max_sequences == min(s.memory.max_sequences for s in plan.stages) >= 1
    # The last stage holds the untied LM head (the embeddings' size) and the final norm: it reads the
    # most, the critical stage.
    assert split[1] > split[0] and plan.critical_stage(2048) == 1
    # On L40S (48 GB) one GPU per node: four stages, the end stages (embeddings, LM head) hold fewest.
    l40s = pipeline_memory(weights, arch, GPU_BY_KEY["l40s"], 4096, gpus_per_node=1)
    assert l40s is not None and l40s.pipeline_parallel == 4
    seqs = [s.memory.max_sequences for s in l40s.stages]
    assert seqs[0] == seqs[3] < seqs[1] == seqs[2] and l40s.max_sequences == seqs[0]
    assert pipeline_memory(weights, arch, GPU_BY_KEY["l40s"], 4096, gpus_per_node=1, max_stages=2) is None
    three = pipeline_stages(weights, arch, gpu, 4096, 3, 4)
    assert [s.num_layers for s in three.stages] == [27, 27, 26]  # vLLM: the extras before the last


def test_plan_memory_and_the_table_report_the_stages_when_one_node_is_too_small(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_70B))
    code, out, err = plan(
        "memory", "--model", str(tmp_path), "--scheme", "BF16", "--gpu", "l40s", "--gpus-per-node", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert out["tensor_parallel"] == 2 and not out["fits"]  # TP stays inside a node of 2 GPUs
    pipe = out["pipeline"]
    assert (pipe["pipeline_parallel"], pipe["tensor_parallel"], pipe["gpus"]) == (2, 2, 4)
    assert [(s["first_layer"], s["layers"]) for s in pipe["stages"]] == [(0, 40), (40, 40)]
    assert pipe["critical_stage"] == 1 and pipe["max_sequences"] == min(
        s["max_sequences"] for s in pipe["stages"]
    )
    step = [s["roofline_step_s"] for s in pipe["stages"]]
    assert math.isclose(pipe["roofline_token_latency_s"], sum(step), rel_tol=1e-12)  # the sum of the stages
    assert math.isclose(pipe["roofline_bound_tokens_per_s"], 1 / max(step), rel_tol=1e-12)  # the critical
    code, out, _ = plan("memory", "--model", str(tmp_path), "--scheme", "BF16", "--gpu", "l40s", "--json")
    assert code == 0 and out["fits"] and out["tensor_parallel"] == 4 and out["pipeline"] is None
    code, _, err = plan("memory", "--model", str(tmp_path), "--gpus-per-node", "0")
    assert code == 2 and "--gpus-per-node" in err

    goal = ServingGoal(arrival_rate=5.0, slo_p95_s=60.0, gpus_per_node=2)
    (row,) = scheme_rows(tmp_path, "l40s", goal, schemes=["BF16"])
    assert not row["fits"] and row["pipeline"]["gpus"] == 4
    assert row_cells(row)[COLUMNS.index(next(c for c in COLUMNS if c[0] == "Pipeline"))] == (
        "PP 2 × TP 2 (4 GPUs), critical stage 1"
    )
    assert "as PP 2 × TP 2 (4 GPUs), critical stage 1 across 2 nodes" in row_problem(row) and "stage 1: layers 40–79" in pipeline_tip(
        row["pipeline"]
    )
    (w4,) = scheme_rows(tmp_path, "l40s", goal, schemes=["W4A16"])  # 4-bit: one node of 2 suffices
    assert w4["fits"] and w4["pipeline"] is None and pipeline_cell(w4["pipeline"]) == "—"


def test_a_pipelined_replica_is_sized_as_its_virtual_engines(tmp_path: Path) -> None:
    """Llama-3-70B BF16 on nodes of 2 L40S: a replica is PP 2 × TP 2.  It is sized as 2 virtual
    engines per replica (vLLM: one batch in flight per stage), each stepping through both stages
    (α, β the stages' added up) with half the replica's KV; the replicas are the fewest engines
    meeting the SLO over 2, rounded up — and more load or a tighter SLO never needs fewer."""
    from msquant_desktop.plan.batching_tail import p95_at, smallest_replicas

    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_70B))
    # One request alone takes ~41 s here (256 tokens, ~0.16 s a pass through both stages' weights at
    # half the bandwidth): a p95 of 400 s leaves room for queueing.
    goal = ServingGoal(arrival_rate=2.0, slo_p95_s=400.0, gpus_per_node=2)
    (row,) = scheme_rows(tmp_path, "l40s", goal, schemes=["BF16"])
    assert row["sized_as"] == "pipeline" and "2 stages in series" in row["speed_source"]
    weights, arch = _weights("BF16")
    gpu = GPU_BY_KEY["l40s"]
    plan_ = pipeline_memory(weights, arch, gpu, goal.context_length, gpus_per_node=2)
    assert plan_ is not None and (plan_.pipeline_parallel, plan_.tensor_parallel) == (2, 2)
    bw = gpu.bandwidth_bytes_per_s * goal.roofline_efficiency
    alpha = sum(s.memory.weights_bytes_per_gpu for s in plan_.stages) / bw
    assert math.isclose(row["itl_alpha_s"], alpha, rel_tol=1e-12)
    engine = virtual_engine_speed(plan_, goal.context_length / 2, gpu.bandwidth_bytes_per_s, 0.5).replica(
        goal.output_tokens, goal.max_batch, engine_sequences(plan_)
    )
    assert engine_sequences(plan_) == plan_.max_sequences // 2
    sized = smallest_replicas(engine, goal.arrival_rate, goal.slo_p95_s)
    assert sized is not None
    assert row["replicas"] == math.ceil(sized[0] / 2) and row["gpus"] == row["replicas"] * 4
    assert row["p95_s"] == p95_at(engine, goal.arrival_rate, row["replicas"] * 2) <= goal.slo_p95_s
    assert row["gpu_hours_per_day"] == row["gpus"] * 24
    (busier,) = scheme_rows(tmp_path, "l40s", ServingGoal(8.0, 400.0, gpus_per_node=2), schemes=["BF16"])
    assert busier["replicas"] >= row["replicas"]
    (never,) = scheme_rows(tmp_path, "l40s", ServingGoal(2.0, 0.5, gpus_per_node=2), schemes=["BF16"])
    assert never["replicas"] is None and never["gpus"] is None  # below one request alone: no count meets it


def test_plan_queue_with_stage_rates() -> None:
    code, out, err = plan("queue", "--arrival-rate", "1", "--stage-rates", "3,3", "--replicas", "1", "--json")
    assert code == 0, err
    assert out["stable"] and out["model"] == "tandem M/M/c (Jackson)"
    assert math.isclose(out["mean_time_in_system"], 2 / (3 - 1), rel_tol=1e-12)
    assert [s["mean_time_in_system"] for s in out["stages"]] == pytest.approx([0.5, 0.5])
    code, out, _ = plan("queue", "--arrival-rate", "3", "--stage-rates", "5,3,4", "--replicas", "1", "--json")
    assert (
        code == 0 and not out["stable"] and out["critical_stage"] == 1 and out["mean_time_in_system"] is None
    )
    code, _, err = plan("queue", "--arrival-rate", "3", "--stage-rates", "5,-1", "--replicas", "1")
    assert code == 2 and "> 0" in err and len(err.strip().splitlines()) == 1
