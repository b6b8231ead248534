"""One serving replica with continuous batching, solved exactly as a birth–death chain.

Standard library only.  The model is llm-d's workload-variant autoscaler's (facts "serving-planner"):
a decode step of a batch of n sequences takes ITL(n) = α + β·n seconds, a request emits L_out tokens
on average, and at most B sequences run at once, B = min(max_num_seqs, what the KV cache holds).  A
replica holding n requests therefore completes them at

    μ(n) = m / (L_out·(α + β·m)),  m = min(n, B),

each running request at γ(m) = 1/(L_out·(α + β·m)) (memoryless output lengths), with Poisson arrivals
at λ and FCFS admission into the batch.  Stable iff λ < μ(B); otherwise the answer is `Unstable`.

**Stationary distribution (exact, no truncation).**  π_n ∝ Π_{k=1..n} λ/μ(k) for n ≤ B (computed in
logs, so a large B cannot overflow); above B every μ(n) = μ(B), so π_n = π_B·r^{n−B} with
r = λ/μ(B) and every tail sum is a geometric series in closed form.  Hence, exactly:
P(wait) = P(N ≥ B) = π_B/(1 − r); E[N]; E[T] = E[N]/λ (Little); and the wait (the time before a
request joins the batch) P(W > t) = P(wait)·e^{−(μ(B) − λ)t}, like M/M/c.

**Time in system (numerical, stated bound).**  A tagged arrival (PASTA: it sees π) either joins the
batch at once with n = k + 1 in the system, or waits: its wait is Exp(μ(B) − λ) and the b requests
arriving behind it meanwhile form a Poisson stream, so "waiting with b behind" is a chain whose exit
rate does not depend on b (exact).  In the batch, with n in the system, it completes at γ(min(n, B)),
the others at (m − 1)·γ, arrivals join at λ.  This absorbing chain (`tagged_chain()`) is solved by
uniformization (Jensen's method: P(T > t) = Σ_k Poisson(k; Λt)·mass left after k steps, Λ = λ + μ(B)),
vectorised in `plan/batching_tail.py`, truncated at n ≤ N where the stationary geometric tail beyond N
is below `tail_epsilon`; the mass cut off is reported as `truncated_mass`.

With β = 0 (the step time does not depend on the batch) μ(n) = min(n, B)/(L_out·α): exactly M/M/B
with per-server rate 1/(L_out·α), and every figure here equals Erlang C's (tests/plan check it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from msquant_desktop.domain.queueing import Unstable


@dataclass(frozen=True)
class BatchingReplica:
    """One replica's decode speed: ITL(n) = alpha_s + beta_s·n seconds per step at batch n."""

    alpha_s: float
    beta_s: float
    output_tokens: float
    max_batch: int
    kv_max_sequences: int | None = None  # what the KV cache holds at the context length (None: no cap)

    def __post_init__(self) -> None:
        if self.alpha_s < 0 or self.beta_s < 0 or self.alpha_s + self.beta_s <= 0:
            raise ValueError("the step time α + β·n must be positive (α ≥ 0, β ≥ 0, not both 0)")
        if self.output_tokens <= 0:
            raise ValueError("the mean output length must be > 0 tokens")
        if self.max_batch < 1:
            raise ValueError("the maximum batch must be ≥ 1")
        if self.kv_max_sequences is not None and self.kv_max_sequences < 1:
            raise ValueError("the KV cache holds no sequence at this context length")

    @property
    def batch_cap(self) -> int:
        """B: the most sequences decoding at once (max batch, or fewer when the KV cache is smaller)."""
        if self.kv_max_sequences is None:
            return self.max_batch
        return min(self.max_batch, self.kv_max_sequences)

    def step_time(self, n: int) -> float:
        """ITL(n): seconds per decode step with n sequences in the batch."""
        return self.alpha_s + self.beta_s * n

    def per_request_rate(self, n: int) -> float:
        """γ(n): the completion rate of one running request when n run."""
        return 1.0 / (self.output_tokens * self.step_time(n))

    def completion_rate(self, n: int) -> float:
        """μ(n): requests completed per second when n are in the replica."""
        m = min(n, self.batch_cap)
        return 0.0 if m <= 0 else m * self.per_request_rate(m)

    @property
    def max_throughput(self) -> float:
        """μ(B), requests/s: the replica is stable only below this arrival rate."""
        return self.completion_rate(self.batch_cap)


@dataclass(frozen=True)
class BatchingFigures:
    """Steady state of one batching replica at arrival rate λ (stable)."""

    replica: BatchingReplica
    arrival_rate: float
    head: tuple[float, ...]  # π_0 .. π_B (normalised over the whole chain, tail included)
    tail_epsilon: float = 1e-9

    @property
    def ratio(self) -> float:
        """r = λ/μ(B): the geometric ratio of π above B."""
        return self.arrival_rate / self.replica.max_throughput

    @property
    def utilization(self) -> float:
        return self.ratio

    @property
    def p_wait(self) -> float:
        """P(N ≥ B): an arrival finds the batch full and waits (PASTA)."""
        return self.head[-1] / (1.0 - self.ratio)

    @property
    def wait_decay_rate(self) -> float:
        return self.replica.max_throughput - self.arrival_rate

    @property
    def mean_in_system(self) -> float:
        b = self.replica.batch_cap
        r = self.ratio
        head = sum(n * p for n, p in enumerate(self.head[:-1]))
        # Σ_{n≥B} n·π_B·r^{n−B} = π_B·(B/(1−r) + r/(1−r)²)
        return head + self.head[-1] * (b / (1.0 - r) + r / (1.0 - r) ** 2)

    @property
    def mean_batch(self) -> float:
        """E[min(N, B)]: sequences decoding on average."""
        b = self.replica.batch_cap
        return sum(n * p for n, p in enumerate(self.head[:-1])) + b * self.p_wait

    @property
    def mean_time_in_system(self) -> float:
        return self.mean_in_system / self.arrival_rate if self.arrival_rate > 0 else self.mean_service_time

    @property
    def mean_wait(self) -> float:
        return self.p_wait / self.wait_decay_rate

    @property
    def mean_service_time(self) -> float:
        """Mean time from joining the batch to the last token: E[T] − E[W]."""
        if self.arrival_rate <= 0:
            return self.replica.output_tokens * self.replica.step_time(1)
        return self.mean_time_in_system - self.mean_wait

    @property
    def mean_step_time(self) -> float:
        """The inter-token latency a token sees on average: Σ ITL(m)·m·π / E[m]."""
        b = self.replica.batch_cap
        num = sum(self.replica.step_time(n) * n * p for n, p in enumerate(self.head[:-1]))
        num += self.replica.step_time(b) * b * self.p_wait
        den = self.mean_batch
        return num / den if den > 0 else self.replica.step_time(1)

    def wait_tail(self, t: float) -> float:
        return 1.0 if t < 0 else self.p_wait * math.exp(-self.wait_decay_rate * t)

    def wait_percentile(self, p: float) -> float:
        if not 0 < p < 1:
            raise ValueError("a percentile must lie strictly between 0 and 1")
        if self.p_wait <= 1.0 - p:
            return 0.0
        return math.log(self.p_wait / (1.0 - p)) / self.wait_decay_rate

    # -- time in system: the tagged request's absorbing chain (solved in plan/batching_tail.py) ----

    @property
    def truncation_bound(self) -> int:
        """N: the largest number in the system the sojourn computation keeps."""
        b = self.replica.batch_cap
        r = self.ratio
        if r <= 0:
            return b + 1
        return b + max(math.ceil(math.log(self.tail_epsilon) / math.log(r)), 1)

    @property
    def truncated_mass(self) -> float:
        """Stationary probability beyond the bound N (what the sojourn figures leave out)."""
        b = self.replica.batch_cap
        return self.head[-1] * self.ratio ** (self.truncation_bound - b + 1) / (1.0 - self.ratio)

    def tagged_chain(self) -> TaggedChain:
        """The tagged arrival's absorbing chain, uniformized (see the module docstring)."""
        rep = self.replica
        b = rep.batch_cap
        n_max = self.truncation_bound
        lam = self.arrival_rate
        mu_b = rep.max_throughput
        uniform = lam + mu_b
        start_service = [0.0] * (n_max + 1)
        for k, p in enumerate(self.head[:-1]):
            start_service[k + 1] = p
        own = [0.0] * (n_max + 1)
        down = [0.0] * (n_max + 1)
        for n in range(1, n_max + 1):
            m = min(n, b)
            gamma = rep.per_request_rate(m)
            own[n] = gamma / uniform
            down[n] = (m - 1) * gamma / uniform
        return TaggedChain(
            uniform_rate=uniform,
            batch_cap=b,
            up=lam / uniform,
            leave_wait=(mu_b - lam) / uniform,
            own=tuple(own),
            down=tuple(down),
            start_service=tuple(start_service),
            start_wait=self.p_wait,
        )


@dataclass(frozen=True)
class TaggedChain:
    """A tagged request's path through one replica as a uniformized discrete-time chain.

    Service states n = 1..N (index n; index 0 unused): n in the system, the tagged one in the batch;
    per step it leaves (completes) with probability `own[n]`, moves to n − 1 with `down[n]` (another
    one completes), to n + 1 with `up` (an arrival; at n = N the arrival is not counted).  Waiting
    states j = 0..N − B: waiting with j arrived behind it; per step j + 1 with `up`, into service
    state B + j with `leave_wait`.  `start_*` is where an arrival begins (PASTA).  After k steps the
    mass m_k still in gives P(T > t) = Σ_k Poisson(k; uniform_rate·t)·m_k.
    """

    uniform_rate: float
    batch_cap: int
    up: float
    leave_wait: float
    own: tuple[float, ...]
    down: tuple[float, ...]
    start_service: tuple[float, ...]
    start_wait: float

    @property
    def bound(self) -> int:
        return len(self.own) - 1


def solve_batching(
    replica: BatchingReplica, arrival_rate: float, tail_epsilon: float = 1e-9
) -> BatchingFigures | Unstable:
    """The stationary figures of one batching replica at λ, or `Unstable` when λ ≥ μ(B)."""
    if not (arrival_rate >= 0 and math.isfinite(arrival_rate)):
        raise ValueError("the arrival rate must be a finite number ≥ 0")
    b = replica.batch_cap
    mu_b = replica.max_throughput
    if arrival_rate >= mu_b:
        # One "server" with μ(B): Unstable's min_stable_servers then reads as replicas needed.
        return Unstable(arrival_rate, mu_b, 1)
    if arrival_rate == 0:
        head = tuple([1.0] + [0.0] * b)
        return BatchingFigures(replica, 0.0, head, tail_epsilon)
    log_w = [0.0]
    log_lam = math.log(arrival_rate)
    for n in range(1, b + 1):
        log_w.append(log_w[-1] + log_lam - math.log(replica.completion_rate(n)))
    top = max(log_w)
    weights = [math.exp(v - top) for v in log_w]
    r = arrival_rate / mu_b
    total = sum(weights[:-1]) + weights[-1] / (1.0 - r)
    head = tuple(w / total for w in weights)
    return BatchingFigures(replica, arrival_rate, head, tail_epsilon)


def split_arrivals(arrival_rate: float, replicas: int) -> float:
    """Per-replica rate when a router spreads Poisson arrivals evenly at random (Poisson splitting)."""
    if replicas < 1:
        raise ValueError("at least one replica")
    return arrival_rate / replicas
