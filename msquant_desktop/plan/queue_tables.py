"""M/M/c figures tabulated over the load, per number of servers, for the replay's 86,400 ticks a day.

A replay asks "mean in system" and "p95 time in system" at every tick for whatever (λ, c) it is in;
the Erlang B recursion is O(c) per question.  For each c met, one table is built with numpy over a grid
uniform in u = −ln(1 − ρ) up to ρ_max (the same formulas as `domain/queueing.py`, vectorised), and a
question is answered by linear interpolation in u.  Above ρ_max (near saturation, where the grid would
be coarse) the exact scalar formulas are used instead.  The interpolation error is tested against the
exact figures (tests/plan: < 1e-4 relative).
"""

from __future__ import annotations

import math

import numpy as np

from msquant_desktop.domain.queueing import QueueFigures, mmc, variability_factor

GRID = 2048
CHUNK = 512  # grid points built at a time: a replay's loads visit a few chunks per c
RHO_MAX = 0.999
P95 = 0.95


class QueueTable:
    """One c's figures over the grid, filled chunk by chunk as questions reach them."""

    def __init__(self, servers: int) -> None:
        self.servers = servers
        self.in_system = np.full(GRID + 1, np.nan)  # mean queue length Lq; in system = λ/μ + Lq
        self.p95 = np.full(GRID + 1, np.nan)
        self.built = [False] * (GRID // CHUNK)
        self.in_system_list = [math.nan] * (GRID + 1)
        self.p95_list = [math.nan] * (GRID + 1)


def _p95_vectorised(mu: float, theta: np.ndarray, c_wait: np.ndarray) -> np.ndarray:
    """p95 of T = W + S for arrays of (θ, C) at one μ: Newton steps on ln P(T > t) from the closed-form
    tail and density (as `QueueFigures.time_in_system_percentile`), kept inside the bracket
    [max of the two quantiles, union bound], halving wherever a step would leave it."""
    p = P95
    target = 1.0 - p
    q_service = -math.log(target) / mu
    half = 1.0 - target / 2.0

    def wait_q(prob: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(c_wait / (1.0 - prob)) / theta
        return np.where(c_wait > 1.0 - prob, out, 0.0)

    lo = np.maximum(q_service, wait_q(p))
    hi = wait_q(half) - math.log(1.0 - half) / mu
    d = theta - mu

    def tail_and_density(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # g = μ(e^{−μt} − e^{−θt})/(θ − μ) in the three forms of domain.queueing._exp_sum_tail
        x = d * t
        small = np.abs(x) < 1.0
        e = np.exp(-mu * t)
        e_theta = np.exp(-theta * t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            near = np.where(np.abs(x) < 1e-12, t, -np.expm1(-np.where(small, x, 0.0)) / d)
            far = (e - e_theta) / d
        g = mu * np.where(small, e * near, far)
        tail = e + c_wait * g
        density = mu * e + c_wait * (mu * g - mu * e_theta)
        return tail, density

    t = 0.5 * (lo + hi)
    log_target = math.log(target)
    for _ in range(30):
        tail, density = tail_and_density(t)
        over = tail > target
        lo = np.where(over, t, lo)
        hi = np.where(over, hi, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = t + (np.log(np.maximum(tail, 1e-300)) - log_target) * tail / density
        inside = (step >= lo) & (step <= hi) & np.isfinite(step)  # at the root hi == t: keep Newton
        new = np.where(inside, step, 0.5 * (lo + hi))
        if np.all(np.abs(new - t) <= 1e-12 * np.maximum(new, 1e-300)):
            t = new
            break
        t = new
    result: np.ndarray = t
    return result


class QueueTables:
    """Tables for one per-server service rate and arrival variability, built on first use per c."""

    def __init__(self, service_rate: float, cv_arrival: float = 1.0, cv_service: float = 1.0) -> None:
        if service_rate <= 0:
            raise ValueError("the service rate must be > 0")
        self.service_rate = service_rate
        self.cv_arrival = cv_arrival
        self.cv_service = cv_service
        self.variability = variability_factor(cv_arrival, cv_service)
        self.u_max = -math.log1p(-RHO_MAX)
        self.du = self.u_max / (GRID - 1)
        self._tables: dict[int, QueueTable] = {}

    def table(self, servers: int) -> QueueTable:
        got = self._tables.get(servers)
        if got is None:
            got = QueueTable(servers)
            self._tables[servers] = got
        return got

    def _ensure(self, table: QueueTable, chunk: int) -> None:
        if table.built[chunk]:
            return
        c = table.servers
        mu = self.service_rate
        index = np.arange(chunk * CHUNK, (chunk + 1) * CHUNK + 1)
        rho = -np.expm1(-index * self.du)
        a = rho * c
        theta = c * mu * (1.0 - rho) / self.variability
        # C < P(N = c)·c/(c − a) for N ~ Poisson(a) (Erlang B ≤ P(N = c)); where that bound is below
        # e^-40 nobody waits to double precision and the O(c) recursion is skipped.
        with np.errstate(divide="ignore"):
            log_bound = c * np.log(a) - a - math.lgamma(c + 1) + np.log(c / (c - a))
        live = np.nonzero(log_bound > -40.0)[0]
        c_wait = np.zeros(len(index))
        if len(live):
            al = a[live]
            # 1/B_c = Σ_k c!/(k!·a^{c−k}): the terms follow a Poisson(a) shape in k, so those more than
            # 10 standard deviations below the smallest a (relative weight < e^-50) are left out by
            # starting the recursion there with B = 1.
            a_min = float(al.min())
            start = max(0, int(a_min - 10.0 * math.sqrt(a_min) - 20.0))
            b = np.ones(len(live))
            for k in range(start + 1, c + 1):
                b = al * b / (k + al * b)
            c_wait[live] = c * b / (c - al * (1.0 - b))
        lam = a * mu
        table.in_system[index] = lam * c_wait / theta  # the queue only: the a = λ/μ in service is exact
        p95 = np.full(len(index), -math.log(1.0 - P95) / mu)  # nobody waits: the service time's p95
        if len(live):
            p95[live] = _p95_vectorised(mu, theta[live], c_wait[live])
        table.p95[index] = p95
        table.built[chunk] = True
        # Python lists mirror the arrays: a replay asks one value at a time, and list indexing with
        # float arithmetic is several times faster than numpy scalars.
        table.in_system_list[index[0] : index[-1] + 1] = table.in_system[index].tolist()
        table.p95_list[index[0] : index[-1] + 1] = p95.tolist()

    # -- scalar questions --------------------------------------------------------------------------

    def _exact(self, arrival_rate: float, servers: int) -> QueueFigures | None:
        q = mmc(arrival_rate, self.service_rate, servers, self.cv_arrival, self.cv_service)
        return q if isinstance(q, QueueFigures) else None

    def _lookup(self, servers: int, rho: float, which: str) -> float:
        x = -math.log1p(-rho) / self.du
        j = int(x)
        table = self._tables.get(servers) or self.table(servers)
        if not table.built[j // CHUNK]:
            self._ensure(table, j // CHUNK)
        values = table.in_system_list if which == "in_system" else table.p95_list
        v = values[j]
        return v + (x - j) * (values[j + 1] - v)

    def in_system(self, arrival_rate: float, servers: int) -> float:
        """Mean number in system (stable only: callers check λ < cμ)."""
        rho = arrival_rate / (servers * self.service_rate)
        if rho >= RHO_MAX:
            q = self._exact(arrival_rate, servers)
            return math.inf if q is None else q.mean_in_system
        return arrival_rate / self.service_rate + self._lookup(servers, rho, "in_system")

    def p95(self, arrival_rate: float, servers: int) -> float:
        rho = arrival_rate / (servers * self.service_rate)
        if rho >= RHO_MAX:
            q = self._exact(arrival_rate, servers)
            return math.inf if q is None else q.time_in_system_percentile(P95)
        return self._lookup(servers, rho, "p95")

    # -- many questions at once ---------------------------------------------------------------------

    def p95_many(self, arrival_rate: np.ndarray, servers: np.ndarray) -> np.ndarray:
        """p95 for arrays of stable (λ, c) pairs (c ≥ 1, λ < cμ)."""
        out = np.empty(len(arrival_rate))
        for c in np.unique(servers):
            idx = np.nonzero(servers == c)[0]
            rho = arrival_rate[idx] / (int(c) * self.service_rate)
            near = rho >= RHO_MAX
            x = -np.log1p(-np.minimum(rho, RHO_MAX * 0.999999)) / self.du
            j = np.minimum(x.astype(np.int64), GRID - 1)
            w = x - j
            table = self.table(int(c))
            for chunk in np.unique(j // CHUNK):
                self._ensure(table, int(chunk))
            values = table.p95
            out[idx] = values[j] + w * (values[j + 1] - values[j])
            for k in idx[near]:
                out[k] = self.p95(float(arrival_rate[k]), int(c))
        return out
