"""Time-in-system tail of the batching model: uniformization of `TaggedChain`, vectorised with numpy.

P(T > t) = Σ_k Poisson(k; Λt)·m_k where m_k is the mass of the tagged request still in the replica
after k steps of the uniformized chain (Jensen's method; Grassmann, "Transient solutions in Markovian
queueing systems", Computers & OR 4, 1977).  m_k is computed once per figures object until it drops
below `mass_floor`, so the tail at any t — and every quantile — costs one Poisson-weighted sum; the
error of the tail is at most `mass_floor` plus the stationary mass the chain truncates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msquant_desktop.domain.batching import BatchingFigures, BatchingReplica, TaggedChain, solve_batching
from msquant_desktop.domain.queueing import quantile_by_bisection

MASS_FLOOR = 1e-7


def _log_factorial(k: np.ndarray) -> np.ndarray:
    """ln k! for an array of integers ≥ 0 (exact sums below 256, Stirling's series above)."""
    k = k.astype(float)
    small = k < 256
    out = np.empty_like(k)
    out[small] = _LOG_FACT[k[small].astype(np.int64)]
    big = k[~small]
    out[~small] = (
        (big + 0.5) * np.log(big) - big + 0.5 * math.log(2 * math.pi) + 1 / (12 * big) - 1 / (360 * big**3)
    )
    return out


_LOG_FACT = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, 256, dtype=float)))))
MAX_STEPS = 2_000_000


@dataclass(frozen=True)
class SojournTail:
    """P(T > t) of one batching replica, ready for any t."""

    uniform_rate: float
    masses: np.ndarray  # m_0 = 1 .. m_K
    truncated_mass: float

    def tail(self, t: float) -> float:
        """Σ_k Poisson(k; Λt)·m_k, with m_k held at its last value past the computed steps (an upper
        bound off by at most the mass floor, which keeps the tail monotone)."""
        if t <= 0:
            return 1.0
        x = self.uniform_rate * t
        k_max = len(self.masses) - 1
        spread = 10.0 * math.sqrt(x) + 20.0
        lo = max(0, int(x - spread))
        hi = int(x + spread) + 1
        k = np.arange(lo, hi + 1)
        log_w = -x + k * math.log(x) - _log_factorial(k)
        value = float(np.dot(np.exp(log_w), self.masses[np.minimum(k, k_max)]))
        return min(1.0, max(0.0, value))

    def percentile(self, p: float, scale: float) -> float:
        if not 0 < p < 1:
            raise ValueError("a percentile must lie strictly between 0 and 1")
        return quantile_by_bisection(self.tail, p, scale)


def survival_masses(chain: TaggedChain, mass_floor: float = MASS_FLOOR) -> np.ndarray:
    """m_k for k = 0, 1, ... until it falls below `mass_floor` (or MAX_STEPS)."""
    n_max = chain.bound
    b = chain.batch_cap
    own = np.asarray(chain.own)
    down = np.asarray(chain.down)
    up = np.full(n_max + 1, chain.up)
    up[n_max] = 0.0  # at the bound an arrival is not counted
    up[0] = 0.0
    stay = 1.0 - up - own - down
    stay[0] = 0.0
    up_in = up[:-1].copy()  # serv[n] * up[n] flows to n + 1
    down_in = down[1:].copy()  # serv[n] * down[n] flows to n − 1
    serv = np.asarray(chain.start_service, dtype=float).copy()
    wait = np.zeros(n_max - b + 1)
    wait[0] = chain.start_wait
    wait_up = np.full(len(wait), chain.up)
    wait_up[-1] = 0.0
    wait_up_in = wait_up[:-1].copy()
    wait_stay = 1.0 - chain.leave_wait - wait_up
    leave = chain.leave_wait
    new = np.empty_like(serv)
    tmp = np.empty(n_max)
    wait_new = np.empty_like(wait)
    wait_tmp = np.empty(len(wait) - 1)
    wait_mass = float(chain.start_wait)
    wait_keep = 1.0 - leave
    mass = float(serv.sum()) + wait_mass
    masses = [mass]
    steps = 0
    while mass > mass_floor and steps < MAX_STEPS:
        mass -= float(np.dot(serv, own))  # only a completion of the tagged request leaves
        np.multiply(serv, stay, out=new)
        np.multiply(serv[:-1], up_in, out=tmp)
        new[1:] += tmp
        np.multiply(serv[1:], down_in, out=tmp)
        new[:-1] += tmp
        if wait_mass > mass_floor * 1e-3:
            new[b:] += wait * leave
            np.multiply(wait, wait_stay, out=wait_new)
            if len(wait_tmp):
                np.multiply(wait[:-1], wait_up_in, out=wait_tmp)
                wait_new[1:] += wait_tmp
            wait, wait_new = wait_new, wait
            wait_mass *= wait_keep
        serv, new = new, serv
        masses.append(mass)
        steps += 1
    return np.asarray(masses)


def sojourn_tail(figures: BatchingFigures, mass_floor: float = MASS_FLOOR) -> SojournTail:
    chain = figures.tagged_chain()
    masses = survival_masses(chain, mass_floor)
    return SojournTail(chain.uniform_rate, masses, figures.truncated_mass)


def time_in_system_percentile(figures: BatchingFigures, p: float) -> float:
    return sojourn_tail(figures).percentile(p, figures.mean_time_in_system)


def p95_lower_bound(figures: BatchingFigures) -> float:
    """A lower bound of the p95 time in system that costs nothing: T = W + S with W the wait and S the
    service, which is never faster than one request alone in the batch (ITL grows with the batch), so
    p95(T) ≥ max(p95(W), ln(20)·L_out·ITL(1))."""
    rep = figures.replica
    alone = -math.log(0.05) * rep.output_tokens * rep.step_time(1)
    return max(figures.wait_percentile(0.95), alone)


def p95_at(
    replica: BatchingReplica, arrival_rate: float, replicas: int, known_above: float | None = None
) -> float:
    """p95 time in system with `replicas` replicas behind a random router; inf when unstable.

    With `known_above`, a load whose `p95_lower_bound` already exceeds it answers that bound instead
    of the exact figure (the caller only needs to know it is above): near saturation the chain is
    truncated at tens of thousands of states and its tail costs seconds, for an answer that is
    certainly over the SLO.
    """
    figures = solve_batching(replica, arrival_rate / replicas)
    if not isinstance(figures, BatchingFigures):
        return math.inf
    if known_above is not None:
        bound = p95_lower_bound(figures)
        if bound > known_above:
            return bound
    return sojourn_tail(figures).percentile(0.95, figures.mean_time_in_system)


def smallest_replicas(
    replica: BatchingReplica, arrival_rate: float, slo_p95_s: float, max_replicas: int = 100_000
) -> tuple[int, float] | None:
    """The fewest replicas whose p95 meets the SLO, and that p95; None when none can.

    The p95 falls as replicas are added (each sees less load), towards the p95 of one request alone
    in the batch, ln(20)·L_out·ITL(1): an SLO at or below that is never met.  Exponential search, then
    bisection: O(log n) solves; a count whose p95 is certainly over the SLO (`p95_lower_bound`) costs
    no tail computation.
    """
    alone = -math.log(0.05) * replica.output_tokens * replica.step_time(1)
    if slo_p95_s <= alone:
        return None
    lo = max(1, math.floor(arrival_rate / replica.max_throughput) + 1)
    p_lo = p95_at(replica, arrival_rate, lo, slo_p95_s)
    if p_lo <= slo_p95_s:
        return lo, p_lo
    hi = lo * 2
    p_hi = p95_at(replica, arrival_rate, hi, slo_p95_s)
    while p_hi > slo_p95_s:
        if hi >= max_replicas:
            return None
        lo, hi = hi, min(hi * 2, max_replicas)
        p_hi = p95_at(replica, arrival_rate, hi, slo_p95_s)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p_mid = p95_at(replica, arrival_rate, mid, slo_p95_s)
        if p_mid <= slo_p95_s:
            hi, p_hi = mid, p_mid
        else:
            lo = mid
    return hi, p_hi
