"""Pipeline stages: a replica too large for one node's GPUs split into stages across nodes, each stage a
queue, the critical (slowest) stage bounding the whole (as in Quart's pipeline-aware autoscaler).

Standard library only.

**Memory.**  vLLM runs tensor parallelism inside a node and pipeline parallelism across nodes
(`--tensor-parallel-size T --pipeline-parallel-size P`, T·P GPUs).  Its layer split is
`vllm/distributed/utils.py:get_pp_indices`: every stage gets ⌊L/P⌋ layers and the L mod P left over go
one each to the stages just before the last (the last also holds the final norm and the LM head; the
first holds the embeddings).  A stage's GPUs then hold its layers' weights (split T ways as
`WeightBytes.gpu_bytes_per_gpu` splits them) and the KV cache of its layers only, so the budget of
`serving_memory.ReplicaMemory` is computed per stage; a sequence occupies KV on every stage, so the
replica holds the fewest sequences any stage holds.  `pipeline_memory` picks the fewest GPUs (then the
fewest stages) at which every stage fits, with T ≤ the GPUs of one node.

**Queueing.**  A request passes the stages in order; with Poisson arrivals and exponential service at
each stage the stages form a tandem Jackson network (J. R. Jackson, "Networks of waiting lines",
Operations Research 5(4), 1957; Burke's theorem: the output of a stable M/M/c is Poisson at the same
rate), so each stage is an independent M/M/c at the arrival rate λ and
  time in system = Σ_i W_i,   throughput bound = min_i c_i·μ_i (the critical stage),
and the network is unstable as soon as λ ≥ min_i c_i·μ_i.  Two identical M/M/1 stages: 2/(μ − λ).
A stage's service rate follows from its share of the bytes each decode step reads (weights and KV of
its layers): μ_i = μ_replica_alone · total / bytes_i, the roofline's proportionality.

**Sizing a pipelined replica.**  vLLM keeps one batch in flight per stage: its engine has
`pipeline_parallel_size` virtual engines, each with its own scheduler (`max_num_seqs` each) and
1/P of the KV blocks (vLLM's `Scheduler`: `num_gpu_blocks //= pipeline_parallel_size`).  Each
virtual engine's batch moves one token per pass through all P stages, so a replica of P stages is
planned as P batching engines (`virtual_engine_speed`): ITL(n) = Σ_i (W_i + n·KV_i·ctx)/BW — the
stages' roofline step times added up — with at most max_sequences/P sequences each; the fewest
engines meeting the SLO, divided by P and rounded up, is the replica count.  With balanced stages
the replica's throughput is P engines / (P × the critical stage's step) = the critical stage's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from msquant_desktop.domain.gpu_catalog import GpuType
from msquant_desktop.domain.queueing import QueueFigures, Unstable, mmc
from msquant_desktop.domain.service_rate import SOURCE_ROOFLINE, DecodeSpeed
from msquant_desktop.domain.serving_memory import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    DEFAULT_OVERHEAD_BYTES,
    DEFAULT_OVERHEAD_BYTES_TP,
    TP_DEGREES,
    Architecture,
    ReplicaMemory,
    TensorSpec,
    WeightBytes,
    activation_peak_bytes,
)

MAX_STAGES = 16
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def stage_layers(num_layers: int, stages: int) -> list[tuple[int, int]]:
    """[first, last) layer range of each stage, as vLLM's `get_pp_indices` splits them."""
    if stages < 1 or num_layers < stages:
        raise ValueError(f"cannot split {num_layers} layers into {stages} pipeline stages")
    sizes = [num_layers // stages] * stages
    for i in range(2, num_layers % stages + 2):
        sizes[-i] += 1
    out, start = [], 0
    for size in sizes:
        out.append((start, start + size))
        start += size
    return out


def stage_of(tensor_name: str, ranges: Sequence[tuple[int, int]]) -> int:
    """The stage holding a tensor: its layer's stage; the embeddings on the first, the rest (final norm,
    LM head) on the last."""
    match = _LAYER.search(tensor_name)
    if match is None:
        return 0 if "embed" in tensor_name else len(ranges) - 1
    layer = int(match.group(1))
    for i, (first, end) in enumerate(ranges):
        if first <= layer < end:
            return i
    return len(ranges) - 1


@dataclass(frozen=True)
class StageMemory:
    stage: int
    layers: tuple[int, int]  # [first, last)
    memory: ReplicaMemory  # per GPU of this stage (its weights, its layers' KV)

    @property
    def num_layers(self) -> int:
        return self.layers[1] - self.layers[0]


@dataclass(frozen=True)
class PipelineMemory:
    tensor_parallel: int
    pipeline_parallel: int
    stages: tuple[StageMemory, ...]

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def fits(self) -> bool:
        return all(s.memory.fits for s in self.stages)

    @property
    def max_sequences(self) -> int:
        """A sequence holds KV on every stage: the replica holds the fewest any stage holds."""
        return min(s.memory.max_sequences for s in self.stages)

    def step_bytes(self, mean_context_tokens: float) -> list[float]:
        """Bytes each stage's GPU reads per decode step of one sequence: its weights and its KV."""
        return [
            s.memory.weights_bytes_per_gpu + s.memory.kv_bytes_per_token_per_gpu * mean_context_tokens
            for s in self.stages
        ]

    def critical_stage(self, mean_context_tokens: float) -> int:
        """The slowest stage: the one that reads the most per step (ties: the first)."""
        step = self.step_bytes(mean_context_tokens)
        return step.index(max(step))


def node_tp_degrees(arch: Architecture, gpus_per_node: int) -> list[int]:
    """The tensor-parallel degrees one node can run (1, 2, 4, 8 up to its GPUs, dividing the heads)."""
    return [tp for tp in TP_DEGREES if tp <= gpus_per_node and arch.num_heads % tp == 0] or [1]


def pipeline_stages(
    weights: WeightBytes,
    arch: Architecture,
    gpu: GpuType,
    context_length: int,
    stages: int,
    tensor_parallel: int,
    kv_dtype: str = "bf16",
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
) -> PipelineMemory:
    """The per-stage budgets of `stages` stages of `tensor_parallel` GPUs each."""
    ranges = stage_layers(arch.num_layers, stages)
    held: list[list[TensorSpec]] = [[] for _ in ranges]
    for tensor in weights.tensors:
        held[stage_of(tensor.name, ranges)].append(tensor)
    overhead = DEFAULT_OVERHEAD_BYTES if tensor_parallel == 1 and stages == 1 else DEFAULT_OVERHEAD_BYTES_TP
    activation = activation_peak_bytes(arch, tensor_parallel, max_num_batched_tokens, max_num_seqs)
    out = []
    for i, ((first, end), tensors) in enumerate(zip(ranges, held, strict=True)):
        part = WeightBytes(weights.scheme, tuple(tensors), weights.source, weights.format)
        layers_arch = dataclasses.replace(arch, num_layers=end - first)
        memory = ReplicaMemory(
            gpu=gpu,
            tensor_parallel=tensor_parallel,
            context_length=context_length,
            weights_bytes_per_gpu=part.gpu_bytes_per_gpu(tensor_parallel),
            activation_peak_bytes=activation,
            overhead_bytes=overhead,
            kv_bytes_per_token_per_gpu=layers_arch.kv_bytes_per_token(kv_dtype, tensor_parallel),
            gpu_memory_utilization=gpu_memory_utilization,
        )
        out.append(StageMemory(i, (first, end), memory))
    return PipelineMemory(tensor_parallel, stages, tuple(out))


def pipeline_memory(
    weights: WeightBytes,
    arch: Architecture,
    gpu: GpuType,
    context_length: int,
    gpus_per_node: int,
    kv_dtype: str = "bf16",
    max_stages: int = MAX_STAGES,
    **budget: float,
) -> PipelineMemory | None:
    """The fewest GPUs (then stages) of 2..max_stages stages × TP ≤ `gpus_per_node` (a degree dividing
    the attention heads) at which every stage fits; None when none does."""
    if gpus_per_node < 1:
        raise ValueError("a node has at least one GPU")
    degrees = node_tp_degrees(arch, gpus_per_node)
    options = sorted(
        (pp * tp, pp, tp) for pp in range(2, min(max_stages, arch.num_layers) + 1) for tp in degrees
    )
    for _gpus, pp, tp in options:
        plan = pipeline_stages(weights, arch, gpu, context_length, pp, tp, kv_dtype, **budget)  # type: ignore[arg-type]
        if plan.fits:
            return plan
    return None


# ------------------------------------------------------------------------------------------------
# Each stage a queue
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tandem:
    """Stable stages in series: each an M/M/c at the arrival rate (Jackson)."""

    arrival_rate: float
    stages: tuple[QueueFigures, ...]

    @property
    def critical_stage(self) -> int:
        """The stage with the least capacity c·μ (the most utilised; ties: the first)."""
        caps = [q.servers * q.service_rate for q in self.stages]
        return caps.index(min(caps))

    @property
    def throughput_bound(self) -> float:
        return min(q.servers * q.service_rate for q in self.stages)

    @property
    def mean_wait(self) -> float:
        return sum(q.mean_wait for q in self.stages)

    @property
    def mean_time_in_system(self) -> float:
        """The sum of the stages' delays (wait + service at each)."""
        return sum(q.mean_time_in_system for q in self.stages)


@dataclass(frozen=True)
class TandemUnstable:
    """λ ≥ the critical stage's capacity: that stage's queue grows without bound."""

    arrival_rate: float
    critical_stage: int
    throughput_bound: float

    def explain(self) -> str:
        return (
            f"unstable: {self.arrival_rate:g} arrivals/s reach or exceed stage {self.critical_stage}'s "
            f"capacity of {self.throughput_bound:g}/s (the critical stage bounds the pipeline)"
        )


def tandem(
    arrival_rate: float, service_rates: Sequence[float], servers: int | Sequence[int] = 1
) -> Tandem | TandemUnstable:
    """Stages in series at `arrival_rate`: stage i has `servers` (or `servers[i]`) servers of rate
    `service_rates[i]`."""
    if not service_rates:
        raise ValueError("a pipeline has at least one stage")
    counts = [servers] * len(service_rates) if isinstance(servers, int) else list(servers)
    if len(counts) != len(service_rates):
        raise ValueError("give one server count per stage")
    figures = []
    for mu, c in zip(service_rates, counts, strict=True):
        q = mmc(arrival_rate, mu, c)
        if isinstance(q, Unstable):
            caps = [m * n for m, n in zip(service_rates, counts, strict=True)]
            worst = caps.index(min(caps))
            return TandemUnstable(arrival_rate, worst, caps[worst])
        figures.append(q)
    return Tandem(arrival_rate, tuple(figures))


def stage_service_rates(replica_rate: float, step_bytes: Sequence[float]) -> list[float]:
    """Each stage's service rate when the whole replica on one stage would serve `replica_rate`: a
    stage reading a fraction f of the bytes serves 1/f times as fast (the roofline's proportionality)."""
    total = sum(step_bytes)
    if replica_rate <= 0 or total <= 0 or any(b <= 0 for b in step_bytes):
        raise ValueError("the service rate and every stage's bytes must be > 0")
    return [replica_rate * total / b for b in step_bytes]


def virtual_engine_speed(
    plan: PipelineMemory, mean_context_tokens: float, bandwidth_bytes_per_s: float, efficiency: float = 1.0
) -> DecodeSpeed:
    """The decode speed of one of a pipelined replica's P virtual engines: a step (one token for each
    of its sequences) passes every stage, so α and β are the stages' roofline α and β added up."""
    if bandwidth_bytes_per_s <= 0 or not 0 < efficiency <= 1:
        raise ValueError("the bandwidth must be > 0 and the efficiency in (0, 1]")
    bw = bandwidth_bytes_per_s * efficiency
    alpha = sum(s.memory.weights_bytes_per_gpu for s in plan.stages) / bw
    beta = sum(s.memory.kv_bytes_per_token_per_gpu for s in plan.stages) * mean_context_tokens / bw
    note = (
        f"{plan.pipeline_parallel} stages in series, {bandwidth_bytes_per_s / 1e12:.3g} TB/s"
        + (f" × {efficiency:g}" if efficiency < 1 else "")
        + f", mean context {mean_context_tokens:g} tokens"
    )
    return DecodeSpeed(alpha, beta, SOURCE_ROOFLINE, note)


def engine_sequences(plan: PipelineMemory) -> int:
    """Sequences one virtual engine can hold: its 1/P share of the replica's KV cache."""
    return max(0, plan.max_sequences // plan.pipeline_parallel)
