"""M/M/c figures against textbook answers; sizing; G/G/c; the unstable value."""

from __future__ import annotations

import math

import pytest

from msquant_desktop.domain.queueing import (
    GGC,
    MMC,
    Infeasible,
    QueueFigures,
    Sizing,
    SizingTarget,
    Unstable,
    cv_from_gamma_shape,
    erlang_b,
    erlang_c,
    min_stable_servers,
    mmc,
    quantile_by_bisection,
    size_servers,
)


def figures(lam: float, mu: float, c: int) -> QueueFigures:
    q = mmc(lam, mu, c)
    assert isinstance(q, QueueFigures)
    return q


def test_two_servers_textbook() -> None:
    q = figures(1, 1, 2)
    assert q.p_wait == pytest.approx(1 / 3, rel=1e-14)
    assert q.mean_wait == pytest.approx(1 / 3, rel=1e-14)
    assert q.mean_time_in_system == pytest.approx(4 / 3, rel=1e-14)
    assert q.wait_percentile(0.95) == pytest.approx(math.log(20 / 3), rel=1e-14)
    assert q.utilization == 0.5 and q.mean_queue_length == pytest.approx(1 / 3)
    assert q.mean_in_system == pytest.approx(4 / 3)  # Little's law
    assert q.model == MMC and q.exact


@pytest.mark.parametrize(
    ("lam", "mu", "c", "expected"),
    [(1, 2, 1, 1 / 2), (2, 1, 3, 4 / 9), (8, 1, 10, 0.4091802)],
)
def test_erlang_c_textbook(lam: float, mu: float, c: int, expected: float) -> None:
    assert figures(lam, mu, c).p_wait == pytest.approx(expected, abs=5e-8)


def test_single_server_is_mm1() -> None:
    q = figures(0.6, 1.0, 1)
    assert q.p_wait == pytest.approx(0.6)  # ρ
    assert q.mean_time_in_system == pytest.approx(1 / (1 - 0.6))
    # M/M/1 sojourn is Exp(μ − λ): its p95 is ln 20 / (μ − λ)
    assert q.time_in_system_percentile(0.95) == pytest.approx(math.log(20) / 0.4, rel=1e-12)


def test_erlang_b_recursion_equals_the_factorial_form_where_that_works() -> None:
    for c, a in [(1, 0.5), (5, 3.2), (20, 17.0), (60, 41.5)]:
        terms = [a**k / math.factorial(k) for k in range(c + 1)]
        assert erlang_b(c, a) == pytest.approx(terms[-1] / sum(terms), rel=1e-12)
        top = a**c / math.factorial(c) * c / (c - a)
        assert erlang_c(c, a) == pytest.approx(top / (sum(terms[:-1]) + top), rel=1e-12)


@pytest.mark.parametrize("c", [171, 1000, 5000, 20000])
def test_thousands_of_servers_stay_finite(c: int) -> None:
    # The factorial form overflows past c ≈ 170; the recursion does not.
    with pytest.raises(OverflowError):
        float(math.factorial(c))
    a = 0.98 * c
    q = figures(a, 1.0, c)
    assert 0.0 < q.p_wait < 1.0
    assert math.isfinite(q.mean_wait) and math.isfinite(q.time_in_system_percentile(0.99))
    # Against Erlang C summed in logs (lgamma), which does not overflow either.
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    m = max(max(logs), top)
    total = sum(math.exp(v - m) for v in logs) + math.exp(top - m)
    assert q.p_wait == pytest.approx(math.exp(top - m) / total, rel=1e-9)


@pytest.mark.parametrize(("lam", "mu", "c"), [(2, 1, 2), (3, 1, 2), (10, 2, 5), (1e6, 1, 1000)])
def test_overload_is_unstable_not_a_number(lam: float, mu: float, c: int) -> None:
    q = mmc(lam, mu, c)
    assert isinstance(q, Unstable)
    assert q.utilization >= 1
    assert q.min_stable_servers == min_stable_servers(lam, mu) == math.floor(lam / mu) + 1
    assert "unstable" in q.explain()
    with pytest.raises(ValueError):
        erlang_c(c, lam / mu)


def test_wait_tail_and_its_percentiles_agree() -> None:
    q = figures(8, 1, 10)  # C ≈ 0.409
    for p in (0.9, 0.95, 0.99):
        t = q.wait_percentile(p)
        assert q.wait_tail(t) == pytest.approx(1 - p, rel=1e-12)
    assert q.wait_percentile(0.5) == 0.0  # more than half do not wait at all
    # fewer than 5 % wait: the p95 wait is 0
    assert figures(1, 1, 5).wait_percentile(0.95) == 0.0


def test_time_in_system_tail_closed_form() -> None:
    # c = 2, λ = μ = 1: θ = cμ − λ = 1 = μ, so P(T > t) = e^{−t}(1 + t/3).
    q = figures(1, 1, 2)
    for t in (0.0, 0.5, 1.0, 3.0, 10.0):
        assert q.time_in_system_tail(t) == pytest.approx(math.exp(-t) * (1 + t / 3), rel=1e-13)
    # θ ≠ μ: against a numerical convolution of the wait and an Exp(μ) service.
    q = figures(3, 1, 4)
    theta, c, mu = 1.0, q.p_wait, 1.0
    for t in (0.5, 2.0, 6.0):
        steps = 20000
        h = t / steps
        conv = sum(
            c * theta * math.exp(-theta * (i + 0.5) * h) * math.exp(-mu * (t - (i + 0.5) * h)) * h
            for i in range(steps)
        )
        exact = (1 - c) * math.exp(-mu * t) + c * math.exp(-theta * t) + conv
        assert q.time_in_system_tail(t) == pytest.approx(exact, rel=1e-6)


def test_time_in_system_percentiles_solve_the_tail() -> None:
    for lam, mu, c in [(1, 1, 2), (8, 1, 10), (999, 1, 1000), (0.5, 1, 1), (49.9, 1, 50), (0.001, 1, 3)]:
        q = figures(lam, mu, c)
        for p in (0.5, 0.95, 0.99):
            t = q.time_in_system_percentile(p)
            assert q.time_in_system_tail(t) == pytest.approx(1 - p, rel=1e-9)
            assert t == pytest.approx(quantile_by_bisection(q.time_in_system_tail, p, 1.0), rel=1e-9)
            assert t >= q.wait_percentile(p) and t >= -math.log(1 - p) / mu


def test_sizing_returns_the_smallest_c() -> None:
    cases = [
        SizingTarget(max_p_wait=0.1),
        SizingTarget(max_mean_wait=0.05),
        SizingTarget(max_wait_percentile=(0.95, 0.2)),
        SizingTarget(max_wait_percentile=(0.99, 0.0)),
        SizingTarget(max_time_in_system_percentile=(0.95, 3.5)),
    ]
    for target in cases:
        sizing = size_servers(40, 1, target)
        assert isinstance(sizing, Sizing)
        c = sizing.servers
        assert target.met_by(figures(40, 1, c))
        below = mmc(40, 1, c - 1)
        assert isinstance(below, Unstable) or not target.met_by(below)


def test_sizing_in_the_thousands() -> None:
    sizing = size_servers(4000, 1, SizingTarget(max_wait_percentile=(0.99, 0.01)))
    assert isinstance(sizing, Sizing) and 4000 < sizing.servers < 4300


def test_sizing_says_when_no_count_can_meet_the_target() -> None:
    assert isinstance(size_servers(5, 1, SizingTarget(max_p_wait=0)), Infeasible)
    assert isinstance(size_servers(5, 1, SizingTarget(max_mean_wait=0)), Infeasible)
    # the p95 of an Exp(1) service alone is ln 20 ≈ 3.0: a p95 latency of 2.9 is out of reach
    no = size_servers(5, 1, SizingTarget(max_time_in_system_percentile=(0.95, 2.9)))
    assert isinstance(no, Infeasible) and "service time alone" in no.reason


def test_allen_cunneen_scales_the_mean_wait() -> None:
    poisson = figures(8, 1, 10)
    bursty = mmc(8, 1, 10, cv_arrival=2.0)
    assert isinstance(bursty, QueueFigures)
    assert bursty.model == GGC and not bursty.exact
    assert bursty.p_wait == poisson.p_wait
    assert bursty.mean_wait == pytest.approx(poisson.mean_wait * (4 + 1) / 2)
    smooth = mmc(8, 1, 10, cv_arrival=0.0, cv_service=0.0)  # D/D/c: nobody waits
    assert (
        isinstance(smooth, QueueFigures) and smooth.mean_wait == 0.0 and smooth.wait_percentile(0.99) == 0.0
    )
    # vLLM's burstiness: gamma shape k has CV 1/√k
    assert cv_from_gamma_shape(0.25) == pytest.approx(2.0)
    sized_bursty = size_servers(40, 1, SizingTarget(max_mean_wait=0.05), cv_arrival=2.0)
    sized = size_servers(40, 1, SizingTarget(max_mean_wait=0.05))
    assert isinstance(sized_bursty, Sizing) and isinstance(sized, Sizing)
    assert sized_bursty.servers > sized.servers


@pytest.mark.parametrize(
    "call",
    [
        lambda: mmc(-1, 1, 1),
        lambda: mmc(1, 0, 1),
        lambda: mmc(1, 1, 0),
        lambda: mmc(float("nan"), 1, 1),
        lambda: figures(1, 1, 2).wait_percentile(1.0),
    ],
)
def test_bad_inputs_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()
