"""Queueing figures for serving capacity: M/M/c through Erlang C, its tails, sizing, and G/G/c.

Standard library only.  λ is the arrival rate, μ one server's service rate, c the number of servers,
a = λ/μ the offered load and ρ = a/c the utilisation; any consistent time unit works.

* **Erlang C** (the probability an arrival waits) comes from the Erlang B recursion
  B₀ = 1, B_k = a·B_{k−1}/(k + a·B_{k−1}), then C = c·B_c/(c − a(1 − B_c)).  The factorial form
  overflows doubles past c ≈ 170; the recursion stays in [0, 1] for any c (Cooper, *Introduction to
  Queueing Theory*, 2nd ed., §5.3; the facts file "serving-planner").
* **Means**: Wq = C/(cμ − λ), Lq = λ·Wq, W = Wq + 1/μ, L = λ·W (Little's law).
* **Wait tail** (FCFS): P(Wq > t) = C·e^{−θt} with θ = cμ − λ, so the p-quantile is
  ln(C/(1 − p))/θ when C > 1 − p and 0 otherwise.
* **Time in system** T = Wq + S with S ~ Exp(μ) independent of Wq.  Its tail has the closed form
  P(T > t) = e^{−μt} + C·μ·(e^{−μt} − e^{−θt})/(θ − μ)   (θ ≠ μ),
  P(T > t) = e^{−μt}·(1 + C·μ·t)                       (θ = μ),
  evaluated as one expression with `expm1` so it stays accurate when θ → μ; its quantiles are found by
  Newton's method on ln P(T > t) with the closed-form density, inside a bisection bracket (to 1e−13).
* **λ ≥ cμ** has no steady state: the answer is the value `Unstable`, never a number.
* **Bursty arrivals (G/G/c)**: the Allen–Cunneen approximation
  Wq(G/G/c) ≈ Wq(M/M/c)·(CV_a² + CV_s²)/2 (A. O. Allen, *Probability, Statistics, and Queueing Theory*,
  2nd ed., Academic Press 1990, §6.4; for c = 1 it is Kingman's heavy-traffic formula, Kingman 1961).
  Gamma inter-arrival gaps with shape k (vLLM's benchmark "burstiness") have CV_a² = 1/k.  We keep
  P(wait) at its M/M/c value and stretch the exponential wait by the same factor, so the mean matches
  Allen–Cunneen; the figures are then labelled approximate (`exact` is False).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

MMC = "M/M/c"
GGC = "G/G/c (Allen-Cunneen)"


@dataclass(frozen=True)
class Unstable:
    """λ ≥ cμ: the queue grows without bound, so no waiting figure exists."""

    arrival_rate: float
    service_rate: float
    servers: int

    @property
    def offered_load(self) -> float:
        return self.arrival_rate / self.service_rate

    @property
    def utilization(self) -> float:
        """λ/(cμ) ≥ 1: the offered load per server (a ratio, not a steady-state figure)."""
        return self.offered_load / self.servers

    @property
    def min_stable_servers(self) -> int:
        return min_stable_servers(self.arrival_rate, self.service_rate)

    def explain(self) -> str:
        return (
            f"unstable: {self.arrival_rate:g}/s arrive but {self.servers} server(s) complete at most "
            f"{self.servers * self.service_rate:g}/s; at least {self.min_stable_servers} are needed"
        )


@dataclass(frozen=True)
class Infeasible:
    """No number of servers meets the target (e.g. P(wait) ≤ 0, or a latency below the service time)."""

    reason: str


def _check_rates(arrival_rate: float, service_rate: float) -> None:
    if not (arrival_rate >= 0 and math.isfinite(arrival_rate)):
        raise ValueError(f"the arrival rate must be a finite number ≥ 0, not {arrival_rate!r}")
    if not (service_rate > 0 and math.isfinite(service_rate)):
        raise ValueError(f"the service rate must be a finite number > 0, not {service_rate!r}")


def min_stable_servers(arrival_rate: float, service_rate: float) -> int:
    """floor(a) + 1: the fewest servers with λ < cμ."""
    _check_rates(arrival_rate, service_rate)
    return math.floor(arrival_rate / service_rate) + 1


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c by the stable recursion (any c, any a ≥ 0)."""
    if servers < 0:
        raise ValueError("the number of servers must be ≥ 0")
    b = 1.0
    a = offered_load
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c_from_b(servers: int, offered_load: float, b: float) -> float:
    """Erlang C from Erlang B for the same (c, a); requires a < c."""
    return servers * b / (servers - offered_load * (1.0 - b))


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c; raises ValueError when a ≥ c (no steady state)."""
    if servers < 1:
        raise ValueError("the number of servers must be ≥ 1")
    if offered_load >= servers:
        raise ValueError(f"no steady state: offered load {offered_load:g} ≥ {servers} servers")
    if offered_load <= 0:
        return 0.0
    return erlang_c_from_b(servers, offered_load, erlang_b(servers, offered_load))


def variability_factor(cv_arrival: float = 1.0, cv_service: float = 1.0) -> float:
    """Allen–Cunneen's (CV_a² + CV_s²)/2; 1 for Poisson arrivals and exponential service."""
    if cv_arrival < 0 or cv_service < 0:
        raise ValueError("coefficients of variation must be ≥ 0")
    return (cv_arrival * cv_arrival + cv_service * cv_service) / 2.0


def cv_from_gamma_shape(shape: float) -> float:
    """CV of gamma-distributed gaps with the given shape (vLLM's `--burstiness`): 1/√shape."""
    if shape <= 0:
        raise ValueError("the gamma shape must be > 0")
    return 1.0 / math.sqrt(shape)


def _exp_sum_tail(t: float, mu: float, theta: float) -> float:
    """μ·(e^{−μt} − e^{−θt})/(θ − μ): P(E_μ + E_θ > t) − e^{−μt}, divided by C — without cancellation
    when θ ≈ μ (an `expm1` form) and without overflow when they are far apart (the plain form)."""
    d = theta - mu
    x = d * t
    if abs(x) < 1e-12:
        return mu * t * math.exp(-mu * t)
    if abs(x) < 1.0:
        return mu * math.exp(-mu * t) * -math.expm1(-x) / d
    return mu * (math.exp(-mu * t) - math.exp(-theta * t)) / d


def quantile_by_bisection(tail: Callable[[float], float], p: float, scale: float) -> float:
    """The smallest t with tail(t) ≤ 1 − p for a decreasing tail with tail(0) ≥ 1 − p; `scale` a hint."""
    target = 1.0 - p
    if tail(0.0) <= target:
        return 0.0
    lo, hi = 0.0, max(scale, 1e-300)
    while tail(hi) > target:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if tail(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def quantile_by_newton(
    tail: Callable[[float], float],
    density: Callable[[float], float],
    p: float,
    lo: float,
    hi: float,
) -> float:
    """The p-quantile of a continuous decreasing tail bracketed by [lo, hi]: Newton steps on ln tail(t),
    halving the bracket whenever a step would leave it."""
    target = 1.0 - p
    while tail(hi) > target:  # a bracket that was too tight: widen it
        lo, hi = hi, 2.0 * hi + 1e-300
        if hi > 1e300:
            return math.inf
    log_target = math.log(target)
    t = 0.5 * (lo + hi)
    for _ in range(200):
        s = tail(t)
        if s > target:
            lo = t
        else:
            hi = t
        f = density(t)
        step_ok = False
        if s > 0 and f > 0:
            nxt = t + (math.log(s) - log_target) * s / f
            if lo <= nxt <= hi:  # at the root hi == t: a Newton step onto it must stay allowed
                step_ok = True
        if not step_ok:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - t) <= 1e-13 * max(nxt, 1e-300) or hi - lo <= 1e-13 * hi:
            return nxt
        t = nxt
    return t


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"a percentile must lie strictly between 0 and 1, not {p!r}")


@dataclass(frozen=True)
class QueueFigures:
    """Steady-state figures of one stable M/M/c (or its G/G/c approximation)."""

    arrival_rate: float
    service_rate: float
    servers: int
    p_wait: float
    cv_arrival: float = 1.0
    cv_service: float = 1.0

    @property
    def exact(self) -> bool:
        """True for M/M/c (Poisson arrivals, exponential service); False under Allen–Cunneen."""
        return self.cv_arrival == 1.0 and self.cv_service == 1.0

    @property
    def model(self) -> str:
        return MMC if self.exact else GGC

    @property
    def offered_load(self) -> float:
        return self.arrival_rate / self.service_rate

    @property
    def utilization(self) -> float:
        return self.offered_load / self.servers

    @cached_property
    def decay_rate(self) -> float:
        """θ of the wait tail C·e^{−θt}: cμ − λ, divided by the variability factor for G/G/c."""
        factor = variability_factor(self.cv_arrival, self.cv_service)
        gap = self.servers * self.service_rate - self.arrival_rate
        return math.inf if factor == 0 else gap / factor  # D/D/c: nobody waits

    @property
    def mean_wait(self) -> float:
        return self.p_wait / self.decay_rate

    @property
    def mean_queue_length(self) -> float:
        return self.arrival_rate * self.mean_wait

    @property
    def mean_time_in_system(self) -> float:
        return self.mean_wait + 1.0 / self.service_rate

    @property
    def mean_in_system(self) -> float:
        return self.arrival_rate * self.mean_time_in_system

    def wait_tail(self, t: float) -> float:
        """P(Wq > t)."""
        return 1.0 if t < 0 else self.p_wait * math.exp(-self.decay_rate * t)

    def wait_percentile(self, p: float) -> float:
        """The p-quantile of the wait: ln(C/(1 − p))/θ, or 0 when at most 1 − p of arrivals wait."""
        _check_p(p)
        if self.p_wait <= 1.0 - p:
            return 0.0
        return math.log(self.p_wait / (1.0 - p)) / self.decay_rate

    def time_in_system_tail(self, t: float) -> float:
        """P(T > t) with T = Wq + S, S ~ Exp(μ): the closed form in the module docstring."""
        if t < 0:
            return 1.0
        mu = self.service_rate
        return math.exp(-mu * t) + self.p_wait * _exp_sum_tail(t, mu, self.decay_rate)

    def time_in_system_density(self, t: float) -> float:
        """−d/dt P(T > t)."""
        if t < 0:
            return 0.0
        mu = self.service_rate
        theta = self.decay_rate
        # d/dt of e^{−μt} + C·g(t), g = μ(e^{−μt} − e^{−θt})/(θ − μ): g' = −μ·g + μ·e^{−θt}
        g = _exp_sum_tail(t, mu, theta)
        return mu * math.exp(-mu * t) + self.p_wait * (mu * g - mu * math.exp(-theta * t))

    def time_in_system_percentile(self, p: float) -> float:
        """The p-quantile of T: Newton's method on ln P(T > t), kept inside a bisection bracket."""
        _check_p(p)
        # T = W + S: its quantile is at least each one's, and (union bound) at most the sum of their
        # (1 − (1 − p)/2)-quantiles.
        q_service = -math.log(1.0 - p) / self.service_rate
        half = 1.0 - (1.0 - p) / 2.0
        lo = max(q_service, self.wait_percentile(p))
        hi = self.wait_percentile(half) - math.log(1.0 - half) / self.service_rate
        return quantile_by_newton(self.time_in_system_tail, self.time_in_system_density, p, lo, hi)


def mmc(
    arrival_rate: float,
    service_rate: float,
    servers: int,
    cv_arrival: float = 1.0,
    cv_service: float = 1.0,
) -> QueueFigures | Unstable:
    """The M/M/c figures (G/G/c by Allen–Cunneen when a CV is not 1), or `Unstable` when λ ≥ cμ."""
    _check_rates(arrival_rate, service_rate)
    if servers < 1:
        raise ValueError("the number of servers must be ≥ 1")
    variability_factor(cv_arrival, cv_service)  # validates
    a = arrival_rate / service_rate
    if a >= servers:
        return Unstable(arrival_rate, service_rate, servers)
    return QueueFigures(arrival_rate, service_rate, servers, erlang_c(servers, a), cv_arrival, cv_service)


# ------------------------------------------------------------------------------------------------
# Sizing
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizingTarget:
    """What the smallest c must meet; each bound that is set must hold (None: not asked)."""

    max_p_wait: float | None = None
    max_mean_wait: float | None = None
    max_wait_percentile: tuple[float, float] | None = None  # (p, seconds): P(Wq ≤ seconds) ≥ p
    max_time_in_system_percentile: tuple[float, float] | None = None  # (p, seconds) on Wq + S

    def describe(self) -> str:
        parts = []
        if self.max_p_wait is not None:
            parts.append(f"P(wait) ≤ {self.max_p_wait:g}")
        if self.max_mean_wait is not None:
            parts.append(f"mean wait ≤ {self.max_mean_wait:g}")
        if self.max_wait_percentile is not None:
            p, t = self.max_wait_percentile
            parts.append(f"p{p * 100:g} wait ≤ {t:g}")
        if self.max_time_in_system_percentile is not None:
            p, t = self.max_time_in_system_percentile
            parts.append(f"p{p * 100:g} time in system ≤ {t:g}")
        return ", ".join(parts) or "stable"

    def infeasible_reason(self, service_rate: float) -> str | None:
        """Why no c can ever meet this target; None when a large enough c does."""
        if self.max_p_wait is not None and self.max_p_wait <= 0:
            return "P(wait) is above 0 for any finite number of servers"
        if self.max_mean_wait is not None and self.max_mean_wait <= 0:
            return "the mean wait is above 0 for any finite number of servers"
        if self.max_wait_percentile is not None:
            _check_p(self.max_wait_percentile[0])
            if self.max_wait_percentile[1] < 0:
                return "a wait bound must be ≥ 0"
        if self.max_time_in_system_percentile is not None:
            p, t = self.max_time_in_system_percentile
            _check_p(p)
            floor = -math.log(1.0 - p) / service_rate
            if t <= floor:
                return (
                    f"the p{p * 100:g} of the service time alone is {floor:g}: no number of servers "
                    f"brings the p{p * 100:g} time in system to {t:g}"
                )
        return None

    def met_by(self, q: QueueFigures) -> bool:
        if self.max_p_wait is not None and q.p_wait > self.max_p_wait:
            return False
        if self.max_mean_wait is not None and q.mean_wait > self.max_mean_wait:
            return False
        if self.max_wait_percentile is not None:
            p, t = self.max_wait_percentile
            if q.wait_tail(t) > 1.0 - p:
                return False
        if self.max_time_in_system_percentile is not None:
            p, t = self.max_time_in_system_percentile
            if q.time_in_system_tail(t) > 1.0 - p:
                return False
        return True


@dataclass(frozen=True)
class Sizing:
    """The smallest number of servers meeting a target, with the figures at that size."""

    servers: int
    figures: QueueFigures
    target: SizingTarget


def size_servers(
    arrival_rate: float,
    service_rate: float,
    target: SizingTarget,
    cv_arrival: float = 1.0,
    cv_service: float = 1.0,
    max_servers: int = 10_000_000,
) -> Sizing | Infeasible:
    """The smallest c (≥ the smallest stable one) meeting every bound in `target`.

    Every figure in a target falls as c grows (C falls, θ = cμ − λ grows), so the first c that meets
    it is the answer.  B_c is carried from one c to the next: the whole scan is O(c).
    """
    _check_rates(arrival_rate, service_rate)
    variability_factor(cv_arrival, cv_service)
    reason = target.infeasible_reason(service_rate)
    if reason is not None:
        return Infeasible(reason)
    a = arrival_rate / service_rate
    if a >= max_servers:  # erlang_b below is O(c): a load of 1e300 would never return
        return Infeasible(f"more than {max_servers} servers would be needed")
    c = max(1, math.floor(a) + 1)
    b = erlang_b(c, a)
    while c <= max_servers:
        p_wait = erlang_c_from_b(c, a, b) if a > 0 else 0.0
        figures = QueueFigures(arrival_rate, service_rate, c, p_wait, cv_arrival, cv_service)
        if target.met_by(figures):
            return Sizing(c, figures, target)
        c += 1
        b = a * b / (c + a * b)
    return Infeasible(f"more than {max_servers} servers would be needed")
