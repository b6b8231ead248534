"""The serving planner's answers as plain dicts: one owner for what `plan queue|size|memory|replay`
print and what a "Plan serving…" view shows.

Qt-free on purpose (like `job_lifecycle.py`): it joins the domain rules and the `plan` adapter
(numpy, file reading), which an adapter may not do for itself.  Every figure that does not exist
(an unstable queue, no sizing that meets a target) is None, never a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.batching import BatchingFigures, BatchingReplica, solve_batching, split_arrivals
from msquant_desktop.domain.gpu_catalog import GPU_BY_KEY, GpuType, find_gpu_type
from msquant_desktop.domain.pipeline import (
    PipelineMemory,
    Tandem,
    engine_sequences,
    node_tp_degrees,
    pipeline_memory,
    tandem,
    virtual_engine_speed,
)
from msquant_desktop.domain.queueing import (
    Infeasible,
    QueueFigures,
    SizingTarget,
    Unstable,
    cv_from_gamma_shape,
    min_stable_servers,
    mmc,
    size_servers,
)
from msquant_desktop.domain.service_rate import DecodeSpeed, roofline
from msquant_desktop.domain.serving_memory import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    GIB,
    PLAN_SCHEMES,
    Architecture,
    ReplicaMemory,
    WeightBytes,
    replica_memory,
)

DEFAULT_GPU = "h100-sxm"
DEFAULT_GPUS_PER_NODE = 8
"""Tensor parallelism stays within a node; a replica that needs more GPUs is split into pipeline stages."""


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def resolve_gpu(name: str) -> GpuType:
    gpu = GPU_BY_KEY.get(name) or find_gpu_type(name)
    if gpu is None:
        raise ValueError(f"unknown GPU type {name!r}; known: {', '.join(GPU_BY_KEY)}")
    return gpu


def arrival_cv(cv_arrival: float | None, gamma_shape: float | None) -> float:
    if gamma_shape is not None:
        return cv_from_gamma_shape(gamma_shape)
    return 1.0 if cv_arrival is None else cv_arrival


# ------------------------------------------------------------------------------------------------
# Queue and sizing
# ------------------------------------------------------------------------------------------------

QUEUE_KEYS = (
    "p_wait",
    "mean_wait",
    "p95_wait",
    "p99_wait",
    "mean_time_in_system",
    "p95_time_in_system",
    "p99_time_in_system",
    "mean_queue_length",
    "mean_in_system",
)


def queue_figures(q: QueueFigures | Unstable) -> dict[str, Any]:
    """`plan queue`'s object for one M/M/c (or G/G/c) answer."""
    base: dict[str, Any] = {
        "arrival_rate": q.arrival_rate,
        "service_rate": q.service_rate,
        "replicas": q.servers,
        "utilization": q.utilization,
        "min_stable_replicas": min_stable_servers(q.arrival_rate, q.service_rate),
    }
    if isinstance(q, Unstable):
        return {"stable": False, **base, **dict.fromkeys(QUEUE_KEYS), "reason": q.explain(), "model": None}
    return {
        "stable": True,
        **base,
        "p_wait": q.p_wait,
        "mean_wait": q.mean_wait,
        "p95_wait": q.wait_percentile(0.95),
        "p99_wait": q.wait_percentile(0.99),
        "mean_time_in_system": q.mean_time_in_system,
        "p95_time_in_system": q.time_in_system_percentile(0.95),
        "p99_time_in_system": q.time_in_system_percentile(0.99),
        "mean_queue_length": q.mean_queue_length,
        "mean_in_system": q.mean_in_system,
        "model": q.model,
        "exact": q.exact,
        "cv_arrival": q.cv_arrival,
        "cv_service": q.cv_service,
    }


def queue_report(
    arrival_rate: float, service_rate: float, replicas: int, cv_arrival: float = 1.0, cv_service: float = 1.0
) -> dict[str, Any]:
    return queue_figures(mmc(arrival_rate, service_rate, replicas, cv_arrival, cv_service))


def tandem_report(arrival_rate: float, stage_rates: list[float], servers: int) -> dict[str, Any]:
    """`plan queue --stage-rates`: pipeline stages in series, each an M/M/c at the arrival rate
    (domain/pipeline.py): per-stage figures, the critical stage, the sum of the stages' delays."""

    result = tandem(arrival_rate, stage_rates, servers)
    if not isinstance(result, Tandem):
        return {
            "stable": False,
            "model": "tandem M/M/c (Jackson)",
            "reason": result.explain(),
            "critical_stage": result.critical_stage,
            "throughput_bound": result.throughput_bound,
            "mean_wait": None,
            "mean_time_in_system": None,
            "stages": None,
        }
    return {
        "stable": True,
        "model": "tandem M/M/c (Jackson)",
        "critical_stage": result.critical_stage,
        "throughput_bound": result.throughput_bound,
        "utilization": result.stages[result.critical_stage].utilization,
        "mean_wait": result.mean_wait,
        "mean_time_in_system": result.mean_time_in_system,
        "stages": [
            {"stage": i, "service_rate": q.service_rate, "servers": q.servers, **queue_figures(q)}
            for i, q in enumerate(result.stages)
        ],
    }


def batching_report(
    arrival_rate: float, replicas: int, replica: BatchingReplica, source: str = ""
) -> dict[str, Any]:
    """The batching model for `replicas` replicas behind a random router (λ/replicas each)."""
    from msquant_desktop.plan.batching_tail import sojourn_tail

    per = split_arrivals(arrival_rate, replicas)
    figures = solve_batching(replica, per)
    base: dict[str, Any] = {
        "arrival_rate": arrival_rate,
        "replicas": replicas,
        "arrival_rate_per_replica": per,
        "model": "batching birth-death chain",
        "max_batch": replica.max_batch,
        "batch_cap": replica.batch_cap,
        "replica_max_throughput": replica.max_throughput,
        "min_stable_replicas": math.floor(arrival_rate / replica.max_throughput) + 1,
        "speed_source": source,
    }
    if isinstance(figures, Unstable):
        return {
            "stable": False,
            **base,
            "utilization": per / replica.max_throughput,
            **dict.fromkeys(QUEUE_KEYS),
            "reason": figures.explain(),
        }
    tail = sojourn_tail(figures)
    assert isinstance(figures, BatchingFigures)
    return {
        "stable": True,
        **base,
        "utilization": figures.utilization,
        "p_wait": figures.p_wait,
        "mean_wait": figures.mean_wait,
        "p95_wait": figures.wait_percentile(0.95),
        "p99_wait": figures.wait_percentile(0.99),
        "mean_time_in_system": figures.mean_time_in_system,
        "p95_time_in_system": tail.percentile(0.95, figures.mean_time_in_system),
        "p99_time_in_system": tail.percentile(0.99, figures.mean_time_in_system),
        "mean_queue_length": per * figures.mean_wait,
        "mean_in_system": figures.mean_in_system,
        "mean_batch": figures.mean_batch,
        "mean_step_time_s": figures.mean_step_time,
        "exact": True,
        "truncation_bound": figures.truncation_bound,
        "truncated_mass": figures.truncated_mass,
    }


def size_report(
    arrival_rate: float,
    service_rate: float,
    target: SizingTarget,
    cv_arrival: float = 1.0,
    cv_service: float = 1.0,
) -> dict[str, Any]:
    """`plan size`'s object: the fewest replicas meeting `target`, and the queue at that size."""
    sizing = size_servers(arrival_rate, service_rate, target, cv_arrival, cv_service)
    if isinstance(sizing, Infeasible):
        return {"replicas": None, "target": target.describe(), "reason": sizing.reason}
    return {"replicas": sizing.servers, "target": target.describe(), **queue_figures(sizing.figures)}


# ------------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryOptions:
    kv_dtype: str = "bf16"
    gpu: str = DEFAULT_GPU
    context_length: int | None = None  # None: the model's max_position_embeddings (or 4096)
    tensor_parallel: int | None = None
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    overhead_bytes: int | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE


def node_tensor_parallel(arch: Architecture, gpus_per_node: int) -> int:
    """The largest tensor-parallel degree one node holds (1, 2, 4 or 8, dividing the heads)."""
    return node_tp_degrees(arch, gpus_per_node)[-1]


def pipeline_plan(
    weights: WeightBytes,
    arch: Architecture,
    mem: ReplicaMemory,
    kv_dtype: str,
    gpus_per_node: int,
    mean_context_tokens: float,
) -> tuple[PipelineMemory | None, dict[str, Any] | None]:
    """The pipeline stages of a replica that does not fit one node's GPUs (None when it does): per stage
    its layers, memory and roofline speed; the critical (slowest) stage bounds the replica's decode
    speed and a token's latency is the sum of the stages' (domain/pipeline.py)."""

    if mem.fits and mem.tensor_parallel <= gpus_per_node:
        return None, None
    plan = pipeline_memory(
        weights,
        arch,
        mem.gpu,
        mem.context_length,
        gpus_per_node,
        kv_dtype,
        gpu_memory_utilization=mem.gpu_memory_utilization,
    )
    if plan is None:
        return None, {
            "fits": False,
            "problem": f"no split into pipeline stages of at most {gpus_per_node} GPUs per node fits",
        }
    bandwidth = mem.gpu.bandwidth_bytes_per_s
    step = plan.step_bytes(mean_context_tokens)
    stages = [
        {
            "stage": s.stage,
            "first_layer": s.layers[0],
            "layers": s.num_layers,
            "weights_bytes_per_gpu": s.memory.weights_bytes_per_gpu,
            "kv_bytes_per_token_per_gpu": s.memory.kv_bytes_per_token_per_gpu,
            "kv_blocks": s.memory.num_blocks,
            "max_sequences": s.memory.max_sequences,
            "step_bytes": step[s.stage],
            "roofline_step_s": step[s.stage] / bandwidth,
        }
        for s in plan.stages
    ]
    critical = plan.critical_stage(mean_context_tokens)
    return plan, {
        "fits": True,
        "pipeline_parallel": plan.pipeline_parallel,
        "tensor_parallel": plan.tensor_parallel,
        "gpus": plan.gpus,
        "gpus_per_node": gpus_per_node,
        "max_sequences": plan.max_sequences,
        "critical_stage": critical,
        "stages": stages,
        # batch 1: one token passes every stage (latency, the sum); stages overlap on different
        # sequences, so the slowest stage bounds the throughput
        "roofline_token_latency_s": sum(step) / bandwidth,
        "roofline_bound_tokens_per_s": bandwidth / step[critical],
    }


def _budget_dict(mem: ReplicaMemory) -> dict[str, Any]:
    return {
        "gpu": mem.gpu.key,
        "gpu_name": mem.gpu.name,
        "gpu_memory_bytes": mem.gpu.memory_bytes,
        "gpu_memory_utilization": mem.gpu_memory_utilization,
        "tensor_parallel": mem.tensor_parallel,
        "context": mem.context_length,
        "weights_bytes_per_gpu": mem.weights_bytes_per_gpu,
        "activation_peak_bytes": mem.activation_peak_bytes,
        "activation_peak_estimated": True,
        "overhead_bytes": mem.overhead_bytes,
        "kv_cache_bytes_per_gpu": mem.kv_cache_bytes,
        "kv_bytes_per_token_per_gpu": mem.kv_bytes_per_token_per_gpu,
        "block_size": mem.block_size,
        "kv_blocks": mem.num_blocks,
        "kv_tokens": mem.kv_tokens,
        "max_concurrency": mem.max_concurrency,
        "max_sequences": mem.max_sequences,
        "fits": mem.fits,
        "problem": mem.problem(),
    }


def memory_report(
    model: str | Path, scheme: str | None = None, options: MemoryOptions | None = None
) -> dict[str, Any]:
    """`plan memory`'s object: exact or estimated weight bytes, KV per token, the vLLM-style budget
    and the roofline decode bound (raises `PlanInputError` / ValueError on bad input)."""
    from msquant_desktop.plan.checkpoint import read_model, weight_bytes

    opts = options or MemoryOptions()
    source = read_model(model)
    weights = weight_bytes(source, scheme)
    arch = source.architecture
    context = opts.context_length or arch.max_position_embeddings or 4096
    gpu = resolve_gpu(opts.gpu)

    def at(tp: int | None) -> ReplicaMemory:
        return replica_memory(
            weights,
            arch,
            gpu,
            context,
            opts.kv_dtype,
            tp,
            opts.gpu_memory_utilization,
            opts.max_num_batched_tokens,
            opts.max_num_seqs,
            opts.overhead_bytes,
            opts.block_size,
        )

    mem = at(opts.tensor_parallel)
    if opts.tensor_parallel is None and mem.tensor_parallel > opts.gpus_per_node:
        mem = at(node_tensor_parallel(arch, opts.gpus_per_node))
    speed = roofline(
        mem.weights_bytes_per_gpu, mem.kv_bytes_per_token_per_gpu, context / 2, gpu.bandwidth_bytes_per_s
    )
    return {
        "model": str(source.path),
        "architecture": arch.model_type,
        "scheme": weights.scheme,
        "folder_scheme": source.scheme,
        "source": weights.source,
        "exact": weights.exact,
        "weights_bytes": weights.stored_bytes,
        "gpu_weights_bytes": weights.gpu_bytes,
        "stored_dtype": arch.dense_dtype,
        "tensors": len(weights.tensors),
        "kv_dtype": opts.kv_dtype,
        "kv_bytes_per_token": arch.kv_bytes_per_token(opts.kv_dtype),
        **_budget_dict(mem),
        "roofline_decode_tokens_per_s_batch1": speed.tokens_per_s(1),
        "roofline_alpha_s": speed.alpha_s,
        "roofline_beta_s": speed.beta_s,
        "pipeline": pipeline_plan(weights, arch, mem, opts.kv_dtype, opts.gpus_per_node, context / 2)[1],
    }


# ------------------------------------------------------------------------------------------------
# One table per scheme (what a "Plan serving…" view shows)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingGoal:
    arrival_rate: float  # requests/s
    slo_p95_s: float  # p95 time in system
    output_tokens: float = 256.0
    context_length: int = 4096
    mean_context_tokens: float | None = None  # for the roofline's KV read; default half the context
    max_batch: int = DEFAULT_MAX_NUM_SEQS
    roofline_efficiency: float = 0.5  # engines reach a fraction of the bandwidth bound
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE


def scheme_rows(
    model: str | Path,
    gpu: str,
    goal: ServingGoal,
    schemes: Sequence[str] = PLAN_SCHEMES,
    kv_dtype: str = "bf16",
    speeds: dict[str, DecodeSpeed] | None = None,
) -> list[dict[str, Any]]:
    """Per scheme: weights, KV per token, TP, max concurrency, replicas for the goal, GPUs, GPU-hours/day.

    A replica is the batching chain with ITL from `speeds[scheme]` when given (measured or entered),
    else the roofline bound × `goal.roofline_efficiency`; replicas = the fewest whose p95 (random
    routing, λ/replicas each) meets the SLO.
    """
    from msquant_desktop.plan.batching_tail import smallest_replicas
    from msquant_desktop.plan.checkpoint import read_model, weight_bytes

    source = read_model(model)
    arch = source.architecture
    device = resolve_gpu(gpu)
    rows: list[dict[str, Any]] = []
    for scheme in schemes:
        weights = weight_bytes(source, scheme)
        mem = replica_memory(weights, arch, device, goal.context_length, kv_dtype)
        if mem.tensor_parallel > goal.gpus_per_node:
            tp = node_tensor_parallel(arch, goal.gpus_per_node)
            mem = replica_memory(weights, arch, device, goal.context_length, kv_dtype, tp)
        row: dict[str, Any] = {
            "scheme": scheme,
            "source": weights.source,
            "exact": weights.exact,
            "weights_gib": weights.gpu_bytes / GIB,
            "kv_bytes_per_token": arch.kv_bytes_per_token(kv_dtype),
            **_budget_dict(mem),
        }
        speed = (speeds or {}).get(scheme) or roofline(
            mem.weights_bytes_per_gpu,
            mem.kv_bytes_per_token_per_gpu,
            goal.mean_context_tokens or goal.context_length / 2,
            device.bandwidth_bytes_per_s,
            goal.roofline_efficiency,
        )
        row["speed_source"] = speed.describe()
        row["itl_alpha_s"] = speed.alpha_s
        row["itl_beta_s"] = speed.beta_s
        plan, row["pipeline"] = pipeline_plan(
            weights,
            arch,
            mem,
            kv_dtype,
            goal.gpus_per_node,
            goal.mean_context_tokens or goal.context_length / 2,
        )
        if plan is not None:
            rows.append({**row, **pipelined_sizing(plan, goal, device)})
            continue
        if not mem.fits:
            rows.append({**row, "replicas": None, "gpus": None, "gpu_hours_per_day": None, "p95_s": None})
            continue
        replica = speed.replica(goal.output_tokens, goal.max_batch, mem.max_sequences)
        sized = smallest_replicas(replica, goal.arrival_rate, goal.slo_p95_s)
        if sized is None:
            rows.append({**row, "replicas": None, "gpus": None, "gpu_hours_per_day": None, "p95_s": None})
            continue
        replicas, p95 = sized
        gpus = replicas * mem.tensor_parallel
        rows.append(
            {**row, "replicas": replicas, "gpus": gpus, "gpu_hours_per_day": gpus * 24.0, "p95_s": p95}
        )
    return rows


def pipelined_sizing(plan: PipelineMemory, goal: ServingGoal, device: GpuType) -> dict[str, Any]:
    """Replicas of a replica split into pipeline stages, sized as its P virtual engines
    (domain/pipeline.py): the fewest engines whose p95 meets the SLO, divided by P, rounded up.
    Its decode speed is the stages' roofline bound (a speed measured on one GPU does not apply)."""
    from msquant_desktop.plan.batching_tail import p95_at, smallest_replicas

    mean_context = goal.mean_context_tokens or goal.context_length / 2
    speed = virtual_engine_speed(plan, mean_context, device.bandwidth_bytes_per_s, goal.roofline_efficiency)
    out: dict[str, Any] = {
        "speed_source": speed.describe(),
        "itl_alpha_s": speed.alpha_s,
        "itl_beta_s": speed.beta_s,
        "sized_as": "pipeline",
        "replicas": None,
        "gpus": None,
        "gpu_hours_per_day": None,
        "p95_s": None,
    }
    per_engine = engine_sequences(plan)
    if per_engine < 1:
        return out
    engine = speed.replica(goal.output_tokens, goal.max_batch, per_engine)
    sized = smallest_replicas(engine, goal.arrival_rate, goal.slo_p95_s)
    if sized is None:
        return out
    replicas = math.ceil(sized[0] / plan.pipeline_parallel)
    gpus = replicas * plan.gpus
    p95 = p95_at(engine, goal.arrival_rate, replicas * plan.pipeline_parallel)
    return {**out, "replicas": replicas, "gpus": gpus, "gpu_hours_per_day": gpus * 24.0, "p95_s": p95}


SPEED_AUTO = "auto"
"""Measured for the folder's own scheme when its evaluation has decode speeds, roofline for the rest."""
SPEED_ROOFLINE = "roofline"
SPEED_ENTERED = "entered"
SPEED_MODES = (SPEED_AUTO, SPEED_ROOFLINE, SPEED_ENTERED)


def measured_speed(evaluation: dict[str, Any] | None) -> DecodeSpeed | None:
    """The decode speed an evaluation measured (None when it has no decode speeds, e.g. it failed)."""
    from msquant_desktop.domain.service_rate import from_evaluate_result

    if not evaluation or "failed" in evaluation:
        return None
    try:
        return from_evaluate_result(evaluation)
    except ValueError:
        return None


def chosen_speeds(
    schemes: Sequence[str],
    folder_scheme: str,
    mode: str,
    evaluation: dict[str, Any] | None = None,
    entered_tokens_per_s: float | None = None,
) -> dict[str, DecodeSpeed]:
    """The speeds `scheme_rows` should use instead of the roofline, per the user's choice of source."""
    from msquant_desktop.domain.service_rate import entered_tokens_per_s as entered

    if mode == SPEED_ENTERED:
        if not entered_tokens_per_s or entered_tokens_per_s <= 0:
            raise ValueError("enter a decode speed (tokens/s at batch 1) greater than 0")
        speed = entered(entered_tokens_per_s)
        return dict.fromkeys(schemes, speed)
    if mode == SPEED_AUTO:
        measured = measured_speed(evaluation)
        return {folder_scheme: measured} if measured and folder_scheme in schemes else {}
    if mode == SPEED_ROOFLINE:
        return {}
    raise ValueError(f"unknown speed source {mode!r}; choose one of {', '.join(SPEED_MODES)}")


def model_facts(model: str | Path) -> dict[str, Any]:
    """What a planning view shows before it computes: the folder's scheme, its context limit."""
    from msquant_desktop.plan.checkpoint import read_model

    source = read_model(model)
    return {
        "model": str(source.path),
        "folder_scheme": source.scheme,
        "has_weights": source.has_weights,
        "max_position_embeddings": source.architecture.max_position_embeddings,
        "architecture": source.architecture.model_type,
    }


def row_replica(row: dict[str, Any], goal: ServingGoal) -> BatchingReplica | None:
    """The batching replica behind one `scheme_rows` row (None when the scheme does not fit)."""
    if not row.get("fits"):
        return None
    speed = DecodeSpeed(row["itl_alpha_s"], row["itl_beta_s"], "row")
    return speed.replica(goal.output_tokens, goal.max_batch, row["max_sequences"])


CURVE_CEILING = 4.0
"""The latency curve shows p95s up to this many times the SLO."""


def latency_curve(row: dict[str, Any], goal: ServingGoal, points: int = 12) -> list[tuple[int, float]]:
    """p95 time in system against the number of replicas for one row: from the fewest stable replicas
    up to `points` counts or twice the sized count, whichever reaches further ([] when it does not fit).
    Counts whose p95 is certainly above `CURVE_CEILING` × the SLO are left out: they lie off the chart,
    and near saturation their exact tail is the costliest figure of the whole plan."""
    from msquant_desktop.plan.batching_tail import p95_at

    replica = row_replica(row, goal)
    if replica is None:
        return []
    lo = max(1, math.floor(goal.arrival_rate / replica.max_throughput) + 1)
    hi = max(lo + points - 1, 2 * (row.get("replicas") or 0))
    step = max(1, (hi - lo) // (3 * points))  # at most ~3·points solves however large the count
    ceiling = CURVE_CEILING * goal.slo_p95_s
    points_out = []
    for n in range(lo, hi + 1, step):
        p95 = p95_at(replica, goal.arrival_rate, n, ceiling)
        if p95 <= ceiling:
            points_out.append((n, p95))
    return points_out


def replay_slots(replica: BatchingReplica, slo_p95_s: float) -> int:
    """How many M/M/c servers the replay counts one replica as: the largest batch k (≤ the batch cap)
    at which one request alone, decoding at ITL(k), still has its p95 within half the SLO (at least 1).

    The replay's per-tick queue is M/M/c with exponential service; a replica of k slots each serving at
    the ITL(k) speed is the M/M/c that matches the batching model near the batch the replica runs at
    when it meets the SLO, with half the SLO left for queueing.
    """
    budget = slo_p95_s / 2 / (-math.log(0.05) * replica.output_tokens)  # the ITL allowed
    if replica.beta_s <= 0:
        return replica.batch_cap
    k = math.floor((budget - replica.alpha_s) / replica.beta_s)
    return max(1, min(replica.batch_cap, k))


def row_replay_config(
    row: dict[str, Any], goal: ServingGoal, cold_start_s: float = 120.0, cv_arrival: float = 1.0
) -> Any:
    """The `ReplayConfig` of one row (raises ValueError when the scheme does not fit)."""
    from msquant_desktop.plan.replay import ReplayConfig

    replica = row_replica(row, goal)
    if replica is None:
        raise ValueError(f"{row['scheme']} does not fit on this GPU: nothing to replay")
    slots = replay_slots(replica, goal.slo_p95_s)
    return ReplayConfig(
        service_rate=slots / (goal.output_tokens * replica.step_time(slots)),
        slo_p95_s=goal.slo_p95_s,
        servers_per_replica=slots,
        cold_start_s=cold_start_s,
        gpus_per_replica=int(row["tensor_parallel"]),
        cv_arrival=cv_arrival,
    )


# ------------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------------


def replay_report(
    trace_file: str | None,
    shape_name: str | None,
    shape_args: dict[str, float | None],
    controller: str,
    config: Any,
    target: float | None = None,
    series_step_s: float = 60.0,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """`plan replay`'s object: the summary figures and down-sampled series."""
    from msquant_desktop.plan.replay import make_controller, replay
    from msquant_desktop.plan.traces import load_trace_csv, shape

    if trace_file:
        trace = load_trace_csv(trace_file)
    else:
        assert shape_name is not None
        trace = shape(
            shape_name,
            float(shape_args.get("low") or 0.0),
            float(shape_args.get("high") or 0.0),
            duration_s=shape_args.get("duration"),
            period_s=shape_args.get("period"),
            at_s=shape_args.get("at"),
        )
    result = replay(trace, make_controller(controller, config, target), config, duration_s)
    return {
        **result.summary(),
        "trace": trace.name,
        "service_rate": config.service_rate,
        "servers_per_replica": config.servers_per_replica,
        "cold_start_s": config.cold_start_s,
        "gpus_per_replica": config.gpus_per_replica,
        "series": result.series(series_step_s),
    }
