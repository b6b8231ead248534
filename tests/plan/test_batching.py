"""The batching replica: exact chain, its reduction to Erlang C, and the time-in-system tail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msquant_desktop.domain.batching import BatchingFigures, BatchingReplica, solve_batching
from msquant_desktop.domain.queueing import QueueFigures, Unstable, mmc
from msquant_desktop.plan.batching_tail import p95_at, smallest_replicas, sojourn_tail


def solved(replica: BatchingReplica, lam: float) -> BatchingFigures:
    f = solve_batching(replica, lam)
    assert isinstance(f, BatchingFigures)
    return f


@pytest.mark.parametrize("lam", [0.5, 2.0, 3.5, 3.95])
def test_constant_step_time_is_erlang_c(lam: float) -> None:
    """β = 0: μ(n) = min(n, B)/(L·α) — M/M/B with per-server rate 1/(L·α), figure for figure."""
    replica = BatchingReplica(alpha_s=0.02, beta_s=0.0, output_tokens=100, max_batch=8)
    f = solved(replica, lam)
    q = mmc(lam, 1 / (100 * 0.02), 8)
    assert isinstance(q, QueueFigures)
    assert f.p_wait == pytest.approx(q.p_wait, rel=1e-12)
    assert f.mean_wait == pytest.approx(q.mean_wait, rel=1e-12)
    assert f.mean_time_in_system == pytest.approx(q.mean_time_in_system, rel=1e-12)
    assert f.mean_in_system == pytest.approx(q.mean_in_system, rel=1e-12)
    for p in (0.9, 0.95, 0.99):
        assert f.wait_percentile(p) == pytest.approx(q.wait_percentile(p), rel=1e-12, abs=1e-15)
    tail = sojourn_tail(f)
    for t in (0.5, 2.0, 5.0, 20.0):
        assert tail.tail(t) == pytest.approx(q.time_in_system_tail(t), rel=1e-6, abs=1e-8)
    for p in (0.5, 0.95, 0.99):
        assert tail.percentile(p, 1.0) == pytest.approx(q.time_in_system_percentile(p), rel=1e-6)


def test_without_a_binding_cap_the_count_is_negative_binomial() -> None:
    """λ/μ(n) = q·(r − 1 + n)/n with r = α/β + 1, q = λ·L·β: N ~ NegBin(r, q), E[N] = r·q/(1 − q)."""
    alpha, beta, length = 0.012, 0.0005, 200
    replica = BatchingReplica(alpha, beta, length, max_batch=5000)
    lam = 7.0
    q = lam * length * beta
    r = alpha / beta + 1
    f = solved(replica, lam)
    assert f.mean_in_system == pytest.approx(r * q / (1 - q), rel=1e-9)
    assert f.mean_time_in_system == pytest.approx(r * q / (1 - q) / lam, rel=1e-9)
    assert f.p_wait < 1e-12


def test_kv_cache_caps_the_batch() -> None:
    roomy = BatchingReplica(0.015, 0.0004, 256, max_batch=64)
    tight = BatchingReplica(0.015, 0.0004, 256, max_batch=64, kv_max_sequences=16)
    assert tight.batch_cap == 16 and roomy.batch_cap == 64
    assert tight.max_throughput == pytest.approx(16 / (256 * (0.015 + 0.0004 * 16)))
    assert tight.max_throughput < roomy.max_throughput
    lam = 0.8 * tight.max_throughput
    assert solved(tight, lam).p_wait > solved(roomy, lam).p_wait


def test_at_or_above_full_batch_throughput_it_is_unstable() -> None:
    replica = BatchingReplica(0.015, 0.0004, 256, max_batch=32)
    assert isinstance(solve_batching(replica, replica.max_throughput), Unstable)
    assert isinstance(solve_batching(replica, 2 * replica.max_throughput), Unstable)
    assert math.isinf(p95_at(replica, replica.max_throughput * 3, 2))


def test_the_tail_integrates_to_the_exact_mean() -> None:
    """∫ P(T > t) dt = E[T]: the uniformized tail against Little's law on the exact chain."""
    replica = BatchingReplica(0.015, 0.0004, 128, max_batch=32)
    f = solved(replica, 0.9 * replica.max_throughput)
    tail = sojourn_tail(f)
    assert tail.tail(0.0) == 1.0
    t = np.linspace(0, 40 * f.mean_time_in_system, 20001)
    values = np.array([tail.tail(float(x)) for x in t])
    assert np.all(np.diff(values) <= 1e-12)  # a survival function
    assert float(np.trapezoid(values, t)) == pytest.approx(f.mean_time_in_system, rel=2e-3)
    assert f.truncated_mass < 1e-8


def test_smallest_replicas_is_the_smallest() -> None:
    replica = BatchingReplica(0.015, 0.0004, 128, max_batch=32)
    lam, slo = 40.0, 6.0
    sized = smallest_replicas(replica, lam, slo)
    assert sized is not None
    n, p95 = sized
    assert p95 <= slo and p95 == pytest.approx(p95_at(replica, lam, n))
    assert p95_at(replica, lam, n - 1) > slo
    # An SLO below one request's own p95 at batch 1 (ln 20 · L · ITL(1) ≈ 5.9 s) is out of reach.
    assert smallest_replicas(replica, lam, 5.5) is None


def test_bad_replicas_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchingReplica(0.0, 0.0, 100, 8)
    with pytest.raises(ValueError):
        BatchingReplica(0.01, 0.0, 0, 8)
    with pytest.raises(ValueError):
        BatchingReplica(0.01, 0.0, 100, 0)
