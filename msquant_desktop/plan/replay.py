"""Replay a load trace through a replica controller: replicas, p95 latency, SLO minutes, GPU-hours.

The served system at each tick is M/M/c with c = ready replicas × `servers_per_replica` and per-server
rate μ = service_rate / servers_per_replica (a replica with k batch slots as k servers; G/G/c by
Allen–Cunneen when `cv_arrival` ≠ 1).  Load changes faster than the queue settles, so each tick is
answered by the *pointwise stationary approximation* (Green & Kolesar, "The pointwise stationary
approximation for queues with nonstationary arrivals", Management Science 37(1), 1991) at the tick's λ
and c, plus a *fluid backlog* for overload: while λ ≥ cμ the backlog grows at λ − cμ, afterwards it
drains at cμ − λ, and an arrival waits backlog/(cμ) on top of the stationary figure.  With no replica
ready the latency is infinite (an SLO violation).

A controller (`domain/autoscale.py`) sees every tick and decides every `decision_interval_s`; a new
replica serves after `cold_start_s` (and holds its GPUs from the moment it is asked for); a removed one
stops at once, starting ones first.  Figures:

* SLO-violation minutes: the ticks whose p95 exceeds the SLO, × tick length / 60;
* GPU-hours: Σ (ready + starting) × gpus_per_replica × tick / 3600;
* scaling actions: decisions that changed the replica target (oscillation shows here).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msquant_desktop.domain.autoscale import (
    Controller,
    KpaController,
    KpaParams,
    PidController,
    PidParams,
    RayServeController,
    RayServeParams,
    SkyServeController,
    SkyServeParams,
    Tick,
)
from msquant_desktop.domain.queueing import Infeasible, SizingTarget, size_servers
from msquant_desktop.plan.queue_tables import P95, QueueTables
from msquant_desktop.plan.traces import Trace


@dataclass(frozen=True)
class ReplayConfig:
    service_rate: float  # requests/s one replica completes when all its slots are busy
    slo_p95_s: float
    servers_per_replica: int = 1
    cold_start_s: float = 120.0
    gpus_per_replica: int = 1
    tick_s: float = 1.0
    cv_arrival: float = 1.0
    initial_replicas: int | None = None  # None: the model's count for the first tick's load
    min_replicas: int = 1
    max_replicas: int = 1000

    def __post_init__(self) -> None:
        if self.service_rate <= 0 or self.slo_p95_s <= 0:
            raise ValueError("the service rate and the SLO must be > 0")
        if self.servers_per_replica < 1 or self.gpus_per_replica < 1:
            raise ValueError("a replica has at least one slot and one GPU")
        if self.cold_start_s < 0 or self.tick_s <= 0:
            raise ValueError("the cold start must be ≥ 0 and the tick > 0")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 1 ≤ min_replicas ≤ max_replicas")

    @property
    def per_server_rate(self) -> float:
        return self.service_rate / self.servers_per_replica


def make_controller(name: str, config: ReplayConfig, target: float | None = None) -> Controller:
    """A controller by name with its published defaults; `target` overrides its own target figure
    (Ray: ongoing requests per replica; SkyServe: QPS per replica; KPA: concurrency per replica)."""
    lo, hi = config.min_replicas, config.max_replicas
    if name == "pid":
        return PidController(
            PidParams(
                slo_p95_s=config.slo_p95_s,
                service_rate=config.service_rate,
                servers_per_replica=config.servers_per_replica,
                cv_arrival=config.cv_arrival,
                min_replicas=lo,
                max_replicas=hi,
            ),
            cold_start_s=config.cold_start_s,
        )
    if name == "ray":
        return RayServeController(
            RayServeParams(target_ongoing_requests=target or 2.0, min_replicas=lo, max_replicas=hi),
            decision_interval_s=config.tick_s,
        )
    if name == "skyserve":
        # SkyServe has no default target QPS: 70 % of what one replica completes, unless given.
        qps = target or 0.7 * config.service_rate
        return SkyServeController(SkyServeParams(qps, min_replicas=lo, max_replicas=hi))
    if name == "kpa":
        # containerConcurrency = the replica's slots (Knative then targets 70 % of it).
        return KpaController(
            KpaParams(
                target_concurrency=target or float(config.servers_per_replica),
                min_replicas=lo,
                max_replicas=hi,
            )
        )
    raise ValueError(f"unknown controller {name!r}; choose pid, ray, skyserve or kpa")


def model_replicas(config: ReplayConfig, arrival_rate: float) -> int:
    """The fewest replicas whose model p95 meets the SLO at a steady `arrival_rate`."""
    sizing = size_servers(
        arrival_rate,
        config.per_server_rate,
        SizingTarget(max_time_in_system_percentile=(P95, config.slo_p95_s)),
        cv_arrival=config.cv_arrival,
        max_servers=config.max_replicas * config.servers_per_replica,
    )
    if isinstance(sizing, Infeasible):
        return config.max_replicas
    replicas = -(-sizing.servers // config.servers_per_replica)
    return max(config.min_replicas, min(config.max_replicas, replicas))


@dataclass(frozen=True)
class ReplayResult:
    controller: str
    config: ReplayConfig
    times: np.ndarray
    arrival_rate: np.ndarray
    ready: np.ndarray
    starting: np.ndarray
    backlog: np.ndarray
    p95_latency: np.ndarray
    actions: list[tuple[float, int, int]] = field(default_factory=list)  # (time, from, to)

    @property
    def scaling_actions(self) -> int:
        return len(self.actions)

    @property
    def slo_violation_minutes(self) -> float:
        return float(np.count_nonzero(self.p95_latency > self.config.slo_p95_s)) * self.config.tick_s / 60.0

    @property
    def gpu_hours(self) -> float:
        held = (self.ready + self.starting).sum()
        return float(held) * self.config.gpus_per_replica * self.config.tick_s / 3600.0

    def summary(self) -> dict[str, Any]:
        finite = self.p95_latency[np.isfinite(self.p95_latency)]
        return {
            "controller": self.controller,
            "duration_s": float(len(self.times) * self.config.tick_s),
            "ticks": int(len(self.times)),
            "slo_p95_s": self.config.slo_p95_s,
            "slo_violation_minutes": self.slo_violation_minutes,
            "gpu_hours": self.gpu_hours,
            "scaling_actions": self.scaling_actions,
            "mean_replicas": float(self.ready.mean()),
            "max_replicas": int((self.ready + self.starting).max()),
            "final_replicas": int(self.ready[-1]),
            "median_p95_latency_s": float(np.median(finite)) if len(finite) else None,
            "max_p95_latency_s": float(finite.max()) if len(finite) == len(self.p95_latency) else None,
            "requests": float(self.arrival_rate.sum() * self.config.tick_s),
            "backlog_at_end": float(self.backlog[-1]),
        }

    def series(self, step_s: float = 60.0) -> dict[str, list[float | int | None]]:
        """Down-sampled time series: per step, the mean load, the replicas at its end (ready and
        asked for), and the worst p95 in it (None where infinite: no replica was serving)."""
        k = max(1, int(round(step_s / self.config.tick_s)))
        n = len(self.times)
        starts = np.arange(0, n, k)
        worst = np.maximum.reduceat(self.p95_latency, starts)
        ends = [min(int(i) + k, n) - 1 for i in starts]
        return {
            "t_s": [float(self.times[i]) for i in starts],
            "arrival_rate": [
                float(v) for v in np.add.reduceat(self.arrival_rate, starts) / np.diff(np.append(starts, n))
            ],
            "ready_replicas": [int(self.ready[last]) for last in ends],
            "target_replicas": [int(self.ready[last] + self.starting[last]) for last in ends],
            "p95_latency_s": [float(v) if math.isfinite(v) else None for v in worst],
        }


def _latency(
    tables: QueueTables, lam: float, servers: int, capacity: float, backlog: float, mu: float
) -> float:
    if servers <= 0:
        return math.inf
    if lam >= capacity:
        return backlog / capacity - math.log(1.0 - P95) / mu
    return tables.p95(lam, servers) + backlog / capacity


def replay(
    trace: Trace, controller: Controller, config: ReplayConfig, duration_s: float | None = None
) -> ReplayResult:
    """Run `trace` through `controller`; see the module docstring for the model."""
    dt = config.tick_s
    times, rate_array = trace.on_ticks(dt, duration_s)
    rates = rate_array.tolist()
    n = len(times)
    mu_s = config.per_server_rate
    spr = config.servers_per_replica
    tables = QueueTables(mu_s, config.cv_arrival)
    ready = (
        config.initial_replicas
        if config.initial_replicas is not None
        else model_replicas(config, float(rates[0]))
    )
    pending: deque[float] = deque()
    backlog = 0.0
    ready_list = [0] * n
    starting_list = [0] * n
    backlog_list = [0.0] * n
    actions: list[tuple[float, int, int]] = []
    interval = controller.decision_interval_s
    next_decision = 0.0
    uses_in_system = controller.uses_in_system
    uses_latency = controller.uses_latency
    cold = config.cold_start_s
    nan = math.nan
    for i in range(n):
        now = i * dt
        while pending and pending[0] <= now:
            pending.popleft()
            ready += 1
        lam = rates[i]
        servers = ready * spr
        capacity = servers * mu_s
        if lam < capacity:
            backlog = max(0.0, backlog - (capacity - lam) * dt)
            in_system = tables.in_system(lam, servers) + backlog if uses_in_system else nan
        else:
            backlog += (lam - capacity) * dt
            in_system = servers + backlog
        target = ready + len(pending)
        end = now + dt
        tick = Tick(end, dt, lam, in_system, ready, target)
        controller.observe(tick)
        if end >= next_decision - 1e-9:
            if uses_latency:
                p95 = _latency(tables, lam, servers, capacity, backlog, mu_s)
                tick = Tick(end, dt, lam, in_system, ready, target, p95)
            desired = controller.decide(tick)
            next_decision = end + interval
            if desired != target:
                actions.append((end, target, desired))
                if desired > target:
                    pending.extend([end + cold] * (desired - target))
                else:
                    drop = target - desired
                    while drop and pending:
                        pending.pop()
                        drop -= 1
                    ready -= drop
        ready_list[i] = ready
        starting_list[i] = len(pending)
        backlog_list[i] = backlog
    ready_out = np.array(ready_list, dtype=np.int64)
    starting_out = np.array(starting_list, dtype=np.int64)
    backlog_out = np.array(backlog_list)
    latency = _p95_series(tables, rate_array, ready_out, backlog_out, spr, mu_s)
    return ReplayResult(
        controller.name, config, times, rate_array, ready_out, starting_out, backlog_out, latency, actions
    )


def _p95_series(
    tables: QueueTables, rates: np.ndarray, ready: np.ndarray, backlog: np.ndarray, spr: int, mu: float
) -> np.ndarray:
    """The tick p95s in one vectorised pass (the same rule as `_latency`)."""
    servers = ready * spr
    capacity = servers * mu
    out = np.full(len(rates), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        drain = np.where(capacity > 0, backlog / capacity, np.inf)
    stable = (servers > 0) & (rates < capacity)
    over = (servers > 0) & ~stable
    out[over] = drain[over] - math.log(1.0 - P95) / mu
    if stable.any():
        out[stable] = tables.p95_many(rates[stable], servers[stable]) + drain[stable]
    return out
