"""Serving planner figures: sizing speed, replay speed, and the batching model against a simulation.

    PYTHONPATH=$PWD .venv/bin/python bench/plan_bench.py [--only sizing|replay|des] [--requests N]

* sizing: 7 schemes × 6 GPU types × tensor-parallel 1, 2, 4, 8 for Llama-3-70B's config — weight
  bytes, the vLLM-style budget, the roofline decode speed and the fewest servers (batch slots, up to
  ~1000) meeting a p95 latency target — timed as one pass (median of 5).
* replay: 24 h at 1 s ticks of a diurnal load through each controller, timed (median of 3).
* dialog: what "Plan serving…" computes on every change, at 400 req/s for Llama-3-70B's config on
  A100-80GB: the per-scheme rows (sizing by the batching chain's p95), the latency-vs-replicas curves
  and a 24 h diurnal replay of the W8A16 row through each controller.
* des: the batching chain (domain/batching.py + plan/batching_tail.py) against a discrete-event
  simulation of the same replica at iteration level — continuous batching, a decode step of
  α + β·n seconds for n running, each running request ending after a step with probability
  1/L_out (geometric output lengths, mean L_out), arrivals Poisson, FCFS admission at step boundaries
  — mean and p95 time in system side by side in one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import deque

import numpy as np

from msquant_desktop.domain.batching import BatchingFigures, BatchingReplica, solve_batching
from msquant_desktop.domain.gpu_catalog import GPU_BY_KEY
from msquant_desktop.domain.queueing import Sizing, SizingTarget, size_servers
from msquant_desktop.domain.service_rate import roofline
from msquant_desktop.domain.serving_memory import (
    PLAN_SCHEMES,
    SCHEME_FORMATS,
    SOURCE_CONFIG,
    Architecture,
    WeightBytes,
    apply_format,
    replica_memory,
)
from msquant_desktop.plan.batching_tail import sojourn_tail
from msquant_desktop.plan.replay import ReplayConfig, make_controller, replay
from msquant_desktop.plan.traces import shape

LLAMA3_70B = {
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}
GPUS = ("a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l40s")
CONTEXT = 4096
OUTPUT_TOKENS = 256


def sizing_pass(arrival_rate: float) -> tuple[int, int]:
    """One full sweep; returns (configurations sized, the largest server count found)."""
    arch = Architecture.from_config(LLAMA3_70B)
    tensors = arch.tensors()
    sized = largest = 0
    for scheme in PLAN_SCHEMES:
        fmt = SCHEME_FORMATS[scheme]
        weights = WeightBytes(scheme, tuple(apply_format(tensors, fmt)), SOURCE_CONFIG, fmt)
        for key in GPUS:
            gpu = GPU_BY_KEY[key]
            for tp in (1, 2, 4, 8):
                mem = replica_memory(weights, arch, gpu, CONTEXT, tensor_parallel=tp)
                if not mem.fits:
                    continue
                speed = roofline(
                    mem.weights_bytes_per_gpu,
                    mem.kv_bytes_per_token_per_gpu,
                    CONTEXT / 2,
                    gpu.bandwidth_bytes_per_s,
                    0.5,
                )
                batch = min(256, mem.max_sequences)
                per_slot = speed.service_rate(OUTPUT_TOKENS, batch) / batch
                slo = 3.0 * OUTPUT_TOKENS * speed.step_time(batch)
                result = size_servers(
                    arrival_rate, per_slot, SizingTarget(max_time_in_system_percentile=(0.95, slo))
                )
                if isinstance(result, Sizing):
                    sized += 1
                    largest = max(largest, result.servers)
    return sized, largest


def bench_sizing() -> None:
    # Pick the load so that the slowest configuration needs about 1000 servers.
    rate = 1.0
    for _ in range(4):
        _, largest = sizing_pass(rate)
        rate *= 1000 / max(largest, 1)
    times, cpu = [], []
    for _ in range(7):
        started, started_cpu = time.perf_counter(), time.process_time()
        sized, largest = sizing_pass(rate)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(
        f"sizing: {sized} configurations (7 schemes × 6 GPUs × TP 1, 2, 4, 8 that fit), {rate:.1f} req/s, "
        f"servers up to {largest}"
    )
    print(
        f"  one sweep: wall median {statistics.median(times) * 1e3:.1f} ms (min {min(times) * 1e3:.1f}), "
        f"CPU median {statistics.median(cpu) * 1e3:.1f} ms"
    )


def bench_replay() -> None:
    config = ReplayConfig(
        service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, cold_start_s=120.0, max_replicas=100
    )
    trace = shape("diurnal", 5.0, 60.0)
    print(
        "replay: 24 h at 1 s ticks (86,400), diurnal 5 → 60 req/s, 16 slots × 0.25 req/s per replica, "
        "p95 SLO 20 s, cold start 120 s"
    )
    print(
        "  controller | run time (median of 3) | SLO-violation min | GPU-hours | scaling actions | mean replicas"
    )
    for name in ("pid", "ray", "skyserve", "kpa"):
        times, cpu = [], []
        for _ in range(3):
            controller = make_controller(name, config)
            started, started_cpu = time.perf_counter(), time.process_time()
            result = replay(trace, controller, config)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        s = result.summary()
        print(
            f"  {name:9s} | {statistics.median(times):.3f} s (CPU {statistics.median(cpu):.3f} s) | "
            f"{s['slo_violation_minutes']:.1f} | "
            f"{s['gpu_hours']:.1f} | {s['scaling_actions']} | {s['mean_replicas']:.2f}"
        )


def bench_dialog(rate: float = 400.0) -> None:
    import json
    import tempfile
    from pathlib import Path

    from msquant_desktop.services import serving_plan

    folder = Path(tempfile.mkdtemp())
    (folder / "config.json").write_text(json.dumps(LLAMA3_70B))
    goal = serving_plan.ServingGoal(arrival_rate=rate, slo_p95_s=30.0)
    print(f"dialog: Llama-3-70B config, a100-80gb, {rate:g} req/s, p95 SLO 30 s, all 7 schemes")
    started, cpu = time.perf_counter(), time.process_time()
    rows = serving_plan.scheme_rows(folder, "a100-80gb", goal)
    print(f"  rows: {time.perf_counter() - started:.3f} s (CPU {time.process_time() - cpu:.3f} s)")
    started, cpu = time.perf_counter(), time.process_time()
    for row in rows:
        serving_plan.latency_curve(row, goal)
    print(f"  curves: {time.perf_counter() - started:.3f} s (CPU {time.process_time() - cpu:.3f} s)")
    row = next(r for r in rows if r["replicas"])
    config = serving_plan.row_replay_config(row, goal)
    for name in ("pid", "ray", "skyserve", "kpa"):
        started, cpu = time.perf_counter(), time.process_time()
        serving_plan.replay_report(None, "diurnal", {"low": 0.3 * rate, "high": rate}, name, config)
        print(
            f"  replay {row['scheme']} {name}: {time.perf_counter() - started:.3f} s "
            f"(CPU {time.process_time() - cpu:.3f} s)"
        )


def simulate(replica: BatchingReplica, arrival_rate: float, requests: int, seed: int) -> np.ndarray:
    """Times in system of `requests` requests (the first 10 % dropped as warm-up)."""
    rng = random.Random(seed)
    p_end = 1.0 / replica.output_tokens
    cap = replica.batch_cap
    t = 0.0
    next_arrival = rng.expovariate(arrival_rate)
    waiting: deque[float] = deque()
    running: list[float] = []
    done: list[float] = []
    while len(done) < requests:
        while next_arrival <= t:
            waiting.append(next_arrival)
            next_arrival += rng.expovariate(arrival_rate)
        while waiting and len(running) < cap:
            running.append(waiting.popleft())
        if not running:
            t = next_arrival
            continue
        t += replica.alpha_s + replica.beta_s * len(running)
        keep = []
        for arrived in running:
            if rng.random() < p_end:
                done.append(t - arrived)
            else:
                keep.append(arrived)
        running = keep
    return np.array(done[requests // 10 :])


def bench_des(requests: int) -> None:
    replica = BatchingReplica(alpha_s=0.015, beta_s=0.0004, output_tokens=128, max_batch=32)
    print(
        f"batching model vs simulation: ITL(n) = 15 ms + 0.4 ms·n, L_out = 128, B = 32, "
        f"μ(B) = {replica.max_throughput:.3f} req/s; {requests:,} simulated requests per load"
    )
    print(
        "  load ρ | model mean | sim mean (± 2 SE) | error | model p95 | sim p95 (± 2 SE) | error | model time | sim time"
    )
    for rho in (0.3, 0.6, 0.8, 0.9, 0.95):
        lam = rho * replica.max_throughput
        started = time.perf_counter()
        figures = solve_batching(replica, lam)
        assert isinstance(figures, BatchingFigures)
        p95 = sojourn_tail(figures).percentile(0.95, figures.mean_time_in_system)
        model_time = time.perf_counter() - started
        started = time.perf_counter()
        sim = simulate(replica, lam, requests, seed=int(rho * 1000))
        sim_time = time.perf_counter() - started
        sim_mean, sim_p95 = float(sim.mean()), float(np.quantile(sim, 0.95))
        # batch means over 20 consecutive batches: ± two standard errors of the simulated figures
        batches = np.array_split(sim, 20)
        se_mean = 2 * float(np.std([b.mean() for b in batches], ddof=1)) / np.sqrt(20)
        se_p95 = 2 * float(np.std([np.quantile(b, 0.95) for b in batches], ddof=1)) / np.sqrt(20)
        print(
            f"  {rho:.2f} | {figures.mean_time_in_system:.3f} s | {sim_mean:.3f} ± {se_mean:.3f} s | "
            f"{(figures.mean_time_in_system / sim_mean - 1) * 100:+.1f} % | {p95:.3f} s | "
            f"{sim_p95:.3f} ± {se_p95:.3f} s | {(p95 / sim_p95 - 1) * 100:+.1f} % | "
            f"{model_time * 1e3:.0f} ms | {sim_time:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sizing", "replay", "dialog", "des"))
    parser.add_argument("--requests", type=int, default=400_000)
    args = parser.parse_args()
    if args.only in (None, "sizing"):
        bench_sizing()
    if args.only in (None, "replay"):
        bench_replay()
    if args.only in (None, "dialog"):
        bench_dialog()
    if args.only in (None, "des"):
        bench_des(args.requests)


if __name__ == "__main__":
    main()
