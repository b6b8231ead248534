"""Replica controllers for the serving replay: a PID on the latency SLO, and the published rules of
Ray Serve, SkyServe and Knative's KPA with their default parameters.

Standard library only; `plan/replay.py` drives them.  Every controller sees one `Tick` per replay tick
(`observe`) and is asked for a target replica count every `decision_interval_s` (`decide`); the replay
starts a replica that becomes ready after the cold start, and stops replicas at once (starting ones
first).  Sources (facts "serving-planner"; the projects' code as of their current main):

* **Ray Serve** `autoscaling_policy.py`: desired = total ongoing / target_ongoing_requests, scaled as
  ceil(r + f·(desired − r)) with r the running replicas and f the up/downscaling factor (1), minus one
  when that rounding would block a needed scale-down; clipped to [min, max]; applied only after the
  decision held for more than upscale_delay_s (30) / downscale_delay_s (600) of 0.1 s control-loop
  periods; ongoing requests averaged over look_back_period_s (30) and pushed every metrics_interval_s
  (10); target_ongoing_requests 2, min 1, max 100 (the `num_replicas="auto"` defaults).  At 1 s ticks a
  decision counts ten control-loop periods.
* **SkyServe** `autoscalers.py` `RequestRateAutoscaler`: target = ceil(requests in the last 60 s / 60 /
  target_qps_per_replica), clipped; checked every 20 s; applied after 300/20 = 15 consecutive "up"
  checks or 1200/20 = 60 "down" checks; at once from zero.  SkyServe has no default target QPS.
* **Knative KPA** `pkg/autoscaler/scaling/autoscaler.go`: every 2 s, desired = ceil(average concurrency /
  (target × 0.7)) over the 60 s stable window and over the 6 s panic window, both clipped to
  [floor(ready / 2), ceil(1000 · ready)]; panic starts when the panic figure is ≥ 2 × ready, never
  scales down while it lasts, and ends 60 s after the last time it was over the threshold.  The target
  is the revision's containerConcurrency when set (here: the replica's batch slots), 100 otherwise.
* **PID** (Quart's shape: an M/M/c model predicts the delay, a PID corrects the replica count toward
  the latency target): the feed-forward is the smallest count whose model p95 meets the SLO at the
  arrival rate of the last `window_s`; the feedback u = Kp·e + Ki·∫e + Kd·ė on e = p95/SLO − 1 (clipped
  to [−1, 4]) scales it up, output = ceil(feed-forward × (1 + max(u, 0))), clamped to [min, max].
  The feed-forward's rate is the window's, extrapolated one cold start ahead while it rises (at most
  25 % above the latest tick), so replicas are asked for before the load arrives.
  Anti-windup and the actuation delay: while replicas are starting the integral and the correction are
  held (the latency seen then says nothing about the count asked for; only a rising feed-forward is
  followed), and the integral is clamped to [0, i_max] and not integrated while the output is
  saturated.  A scale-down goes only as low as the model predicts still meets the SLO *with the
  per-server rate calibrated on the latency just observed* (the μ̂ at which the model reproduces it,
  never above the model's μ) — so a model that is too optimistic cannot talk it into a count the real
  system cannot carry, and a stationary load settles on one count instead of toggling between two.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from msquant_desktop.domain.queueing import Infeasible, QueueFigures, SizingTarget, mmc, size_servers


class Tick(NamedTuple):
    """What a controller can measure at the end of one replay tick."""

    now: float
    dt: float
    arrival_rate: float  # requests/s during the tick
    in_system: float  # requests queued or running (all replicas), NaN when the controller does not use it
    ready: int  # replicas serving
    target: int  # replicas asked for (serving + starting)
    p95_latency: float = math.nan  # the tick's p95 time in system, set on decision ticks when asked for


class Controller(Protocol):
    name: str
    decision_interval_s: float
    uses_in_system: bool
    uses_latency: bool

    def observe(self, tick: Tick) -> None: ...

    def decide(self, tick: Tick) -> int: ...


class WindowAverage:
    """Mean of the samples of the last `seconds`, one sample per tick of equal length (running sums);
    `recent_*` covers only the newest `recent_seconds` of them (a second, shorter window for free)."""

    def __init__(self, seconds: float, recent_seconds: float | None = None) -> None:
        self.seconds = seconds
        self.recent_seconds = recent_seconds
        self._items: deque[float] = deque()
        self._size = 0
        self._recent_size = 0
        self._sum = 0.0
        self._recent_sum = 0.0
        self._dt = 0.0

    def add(self, now: float, value: float, dt: float) -> None:
        items = self._items
        if not self._size:
            self._dt = dt
            self._size = max(1, round(self.seconds / dt))
            self._recent_size = max(1, round((self.recent_seconds or self.seconds) / dt))
        v = value * dt
        if len(items) == self._size:
            self._sum -= items.popleft()
        items.append(v)
        self._sum += v
        self._recent_sum += v
        if len(items) > self._recent_size:
            self._recent_sum -= items[-self._recent_size - 1]

    @property
    def span(self) -> float:
        """Seconds of samples held (up to the window)."""
        return len(self._items) * self._dt

    @property
    def mean(self) -> float:
        span = self.span
        return self._sum / span if span > 0 else 0.0

    @property
    def total(self) -> float:
        return self._sum

    @property
    def recent_mean(self) -> float:
        span = min(len(self._items), self._recent_size) * self._dt
        return self._recent_sum / span if span > 0 else 0.0

    @property
    def recent_total(self) -> float:
        return self._recent_sum


def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


# ------------------------------------------------------------------------------------------------
# Ray Serve
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RayServeParams:
    target_ongoing_requests: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 100
    upscaling_factor: float = 1.0
    downscaling_factor: float = 1.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    control_loop_interval_s: float = 0.1


class RayServeController:
    name = "ray"
    uses_in_system = True
    uses_latency = False

    def __init__(self, params: RayServeParams | None = None, decision_interval_s: float = 1.0) -> None:
        self.params = params or RayServeParams()
        self.decision_interval_s = decision_interval_s
        self._window = WindowAverage(self.params.look_back_period_s)
        self._reported = 0.0
        self._next_push = 0.0
        self._counter = 0.0  # in control-loop periods; > 0 scaling up, < 0 scaling down
        self._last_key: tuple[float, int] | None = None
        self._last_desired = 0
        p = self.params
        self._periods = decision_interval_s / p.control_loop_interval_s
        self._up_periods = int(p.upscale_delay_s / p.control_loop_interval_s)
        self._down_periods = int(p.downscale_delay_s / p.control_loop_interval_s)
        self._push_s = p.metrics_interval_s

    def observe(self, tick: Tick) -> None:
        self._window.add(tick.now, tick.in_system, tick.dt)
        if tick.now >= self._next_push:  # replicas push their look-back average every metrics_interval_s
            self._reported = self._window.mean
            self._next_push = tick.now + self._push_s

    def desired(self, total: float, running: int) -> int:
        """`_core_replica_queue_length_policy` + `_apply_scaling_factors` + bounds."""
        p = self.params
        raw = total / p.target_ongoing_requests
        factor = p.upscaling_factor if raw - running > 0 else p.downscaling_factor
        scaled = math.ceil(running + factor * (raw - running))
        if math.ceil(raw) < running and scaled == running:
            scaled -= 1
        return _clip(scaled, p.min_replicas, p.max_replicas)

    def decide(self, tick: Tick) -> int:
        ready, target = tick.ready, tick.target
        if ready == 0:  # cold-start fast path
            up = math.ceil(self.params.upscaling_factor)
            return max(up, target) if self._reported > 0 else target
        key = (self._reported, ready)
        if key != self._last_key:
            self._last_key = key
            self._last_desired = self.desired(self._reported, ready)
        desired = self._last_desired
        if desired > target:
            self._counter = max(self._counter, 0.0) + self._periods
            if self._counter > self._up_periods:
                self._counter = 0.0
                return desired
        elif desired < target:
            self._counter = min(self._counter, 0.0) - self._periods
            if self._counter < -self._down_periods:
                self._counter = 0.0
                return max(1, desired)
        else:
            self._counter = 0.0
        return target


# ------------------------------------------------------------------------------------------------
# SkyServe
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkyServeParams:
    target_qps_per_replica: float
    min_replicas: int = 1
    max_replicas: int = 100
    qps_window_s: float = 60.0
    decision_interval_s: float = 20.0
    upscale_delay_s: float = 300.0
    downscale_delay_s: float = 1200.0


class SkyServeController:
    name = "skyserve"
    uses_in_system = False
    uses_latency = False

    def __init__(self, params: SkyServeParams) -> None:
        if params.target_qps_per_replica <= 0:
            raise ValueError("SkyServe needs a target QPS per replica > 0")
        self.params = params
        self.decision_interval_s = params.decision_interval_s
        self._window = WindowAverage(params.qps_window_s)
        self._up = 0
        self._down = 0
        self._up_threshold = int(params.upscale_delay_s / params.decision_interval_s)
        self._down_threshold = int(params.downscale_delay_s / params.decision_interval_s)

    def observe(self, tick: Tick) -> None:
        self._window.add(tick.now, tick.arrival_rate, tick.dt)

    def decide(self, tick: Tick) -> int:
        p = self.params
        qps = self._window.total / p.qps_window_s  # requests in the window / its length
        wanted = _clip(math.ceil(qps / p.target_qps_per_replica), p.min_replicas, p.max_replicas)
        if tick.target == 0:
            return wanted
        if wanted > tick.target:
            self._up += 1
            self._down = 0
            if self._up >= self._up_threshold:
                self._up = 0
                return wanted
        elif wanted < tick.target:
            self._down += 1
            self._up = 0
            if self._down >= self._down_threshold:
                self._down = 0
                return wanted
        else:
            self._up = self._down = 0
        return tick.target


# ------------------------------------------------------------------------------------------------
# Knative KPA
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpaParams:
    target_concurrency: float = 100.0  # containerConcurrency when set, else Knative's default target
    target_utilization: float = 0.7
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold: float = 2.0  # 200 %
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    tick_s: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 100


class KpaController:
    name = "kpa"
    uses_in_system = True
    uses_latency = False

    def __init__(self, params: KpaParams | None = None) -> None:
        self.params = params or KpaParams()
        p = self.params
        self.decision_interval_s = p.tick_s
        self._window = WindowAverage(p.stable_window_s, p.stable_window_s * p.panic_window_percentage / 100.0)
        self._panic_since: float | None = None
        self._max_panic_pods = 0

    def observe(self, tick: Tick) -> None:
        self._window.add(tick.now, tick.in_system, tick.dt)

    def decide(self, tick: Tick) -> int:
        p = self.params
        ready = float(max(1, tick.ready))
        target = p.target_concurrency * p.target_utilization
        max_up = math.ceil(p.max_scale_up_rate * ready)
        max_down = math.floor(ready / p.max_scale_down_rate)
        dspc = math.ceil(self._window.mean / target)
        dppc = math.ceil(self._window.recent_mean / target)
        stable_pods = int(min(max(dspc, max_down), max_up))
        panic_pods = int(min(max(dppc, max_down), max_up))
        over = dppc / ready >= p.panic_threshold
        if over:
            self._panic_since = tick.now
        elif self._panic_since is not None and self._panic_since + p.stable_window_s < tick.now:
            self._panic_since = None
            self._max_panic_pods = 0
        desired = stable_pods
        if self._panic_since is not None:
            desired = max(desired, panic_pods)
            if desired > self._max_panic_pods:
                self._max_panic_pods = desired
            desired = self._max_panic_pods
        return _clip(desired, p.min_replicas, p.max_replicas)


# ------------------------------------------------------------------------------------------------
# PID on the latency SLO
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PidParams:
    slo_p95_s: float
    service_rate: float  # the model's requests/s per replica
    servers_per_replica: int = 1
    cv_arrival: float = 1.0
    kp: float = 0.5
    ki: float = 0.05
    kd: float = 0.0
    interval_s: float = 10.0
    window_s: float = 30.0
    error_max: float = 4.0
    integral_max: float = 40.0
    min_replicas: int = 1
    max_replicas: int = 1000


@dataclass
class _PidState:
    integral: float = 0.0
    last_error: float = 0.0


class PidController:
    name = "pid"
    uses_in_system = False
    uses_latency = True

    def __init__(self, params: PidParams, cold_start_s: float = 0.0) -> None:
        if params.slo_p95_s <= 0 or params.service_rate <= 0:
            raise ValueError("the PID needs an SLO > 0 and a service rate > 0")
        self.params = params
        self.decision_interval_s = params.interval_s
        self.cold_start_s = cold_start_s
        self._rate = WindowAverage(2 * params.window_s, params.window_s)
        self._state = _PidState()
        self._ff_cache: dict[int, int] = {}
        self._safe_cache: dict[tuple[int, int, float], int] = {}

    # -- the model ---------------------------------------------------------------------------------

    def _per_server_rate(self) -> float:
        return self.params.service_rate / self.params.servers_per_replica

    def feed_forward(self, arrival_rate: float) -> int:
        """The fewest replicas whose model p95 meets the SLO (max_replicas when none can).

        The rate is first rounded up to a grid 0.1 % apart (cached), so the answer errs on the safe side.
        """
        p = self.params
        if arrival_rate <= 0:
            return p.min_replicas
        step = math.ceil(math.log(arrival_rate) / _FF_GRID)
        cached = self._ff_cache.get(step)
        if cached is not None:
            return cached
        sizing = size_servers(
            math.exp(step * _FF_GRID),
            self._per_server_rate(),
            SizingTarget(max_time_in_system_percentile=(0.95, p.slo_p95_s)),
            cv_arrival=p.cv_arrival,
            max_servers=p.max_replicas * p.servers_per_replica,
        )
        if isinstance(sizing, Infeasible):
            result = p.max_replicas
        else:
            result = _clip(-(-sizing.servers // p.servers_per_replica), p.min_replicas, p.max_replicas)
        self._ff_cache[step] = result
        return result

    def predicted_rate(self, latest: float) -> float:
        """The window's rate, extrapolated one cold start ahead while it rises (never below it, and at
        most 25 % above the latest tick's rate: a step is not a trend)."""
        recent = self._rate.recent_mean
        w = self.params.window_s
        earlier = (
            (self._rate.total - self._rate.recent_total) / w if self._rate.span >= 2 * w - 1e-9 else recent
        )
        slope = max(0.0, (recent - earlier) / w)
        ahead = recent + slope * (self.cold_start_s + self.params.interval_s)
        return min(ahead, max(recent, PREDICTION_CAP * latest))

    # -- the loop ----------------------------------------------------------------------------------

    def observe(self, tick: Tick) -> None:
        self._rate.add(tick.now, tick.arrival_rate, tick.dt)

    def decide(self, tick: Tick) -> int:
        p = self.params
        s = self._state
        lam = self._rate.recent_mean
        base = self.feed_forward(self.predicted_rate(tick.arrival_rate))
        observed = tick.p95_latency
        error = 0.0 if math.isnan(observed) else min(max(observed / p.slo_p95_s - 1.0, -1.0), p.error_max)
        derivative = (error - s.last_error) / p.interval_s
        s.last_error = error
        if tick.ready < tick.target:
            # Actuation pending: what is observed now says nothing about the count asked for; hold the
            # integral and the correction, follow only a rising feed-forward.
            return max(tick.target, base)
        if not (tick.target >= p.max_replicas and error > 0):  # no integration while saturated
            s.integral = min(max(s.integral + error * p.interval_s, 0.0), p.integral_max)
        u = max(0.0, p.kp * error + p.ki * s.integral + p.kd * derivative)
        desired = _clip(math.ceil(base * (1.0 + u) - 1e-9), p.min_replicas, p.max_replicas)
        if desired < tick.target:
            desired = self._lowest_safe(lam, tick, desired, observed)
        return desired

    def calibrated_server_rate(self, arrival_rate: float, replicas: int, observed: float) -> float:
        """The per-server rate μ̂ at which the model's p95 at `replicas` equals the observed p95 — the
        model's own μ when the observation says nothing (no replica, infinite latency, no load).
        Bisection on ln μ̂; never above the model's μ (a scale-down is only ever made more careful)."""
        mu = self._per_server_rate()
        servers = replicas * self.params.servers_per_replica
        if servers <= 0 or arrival_rate <= 0 or not math.isfinite(observed) or observed <= 0:
            return mu
        if self._p95_at_rate(arrival_rate, mu, servers) >= observed:
            return mu
        lo = math.log(arrival_rate / servers) + 1e-12  # just stable: the p95 is unbounded there
        hi = math.log(mu)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if self._p95_at_rate(arrival_rate, math.exp(mid), servers) > observed:
                lo = mid
            else:
                hi = mid
        return math.exp(hi)

    def _p95_at_rate(self, arrival_rate: float, server_rate: float, servers: int) -> float:
        q = mmc(arrival_rate, server_rate, servers, self.params.cv_arrival)
        return q.time_in_system_percentile(0.95) if isinstance(q, QueueFigures) else math.inf

    def _lowest_safe(self, lam: float, tick: Tick, desired: int, observed: float) -> int:
        """The lowest count in [desired, target] that still meets the SLO by the model with the service
        rate calibrated on what was just observed (so a model that is too optimistic cannot talk the
        controller into a count the real system cannot carry)."""
        key = (
            tick.target,
            math.ceil(math.log(max(lam, 1e-12)) / _FF_GRID),
            round(math.log(max(observed, 1e-12)), 2),
        )
        cached = self._safe_cache.get(key)
        if cached is not None:
            return max(desired, cached)
        rate = self.calibrated_server_rate(lam, max(tick.ready, 1), observed)
        spr = self.params.servers_per_replica
        count = desired
        while count < tick.target and self._p95_at_rate(lam, rate, count * spr) > self.params.slo_p95_s:
            count += 1
        if len(self._safe_cache) > 10_000:
            self._safe_cache.clear()
        self._safe_cache[key] = count
        return count


_FF_GRID = math.log(1.001)
PREDICTION_CAP = 1.25


CONTROLLER_NAMES = ("pid", "ray", "skyserve", "kpa")
