"""The serving plan at a high load: sizing and the latency curve skip the exact tail only where the
p95 is certainly over the line, and stay fast (the dialog computes them on every change)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from bench.plan_bench import LLAMA3_70B
from msquant_desktop.domain.batching import BatchingFigures, BatchingReplica, solve_batching
from msquant_desktop.plan.batching_tail import p95_at, p95_lower_bound, smallest_replicas, sojourn_tail
from msquant_desktop.services.serving_plan import CURVE_CEILING, ServingGoal, latency_curve, scheme_rows

REPLICA = BatchingReplica(alpha_s=0.015, beta_s=0.0004, output_tokens=128, max_batch=32)


def test_the_lower_bound_is_below_the_exact_p95_and_only_replaces_it_above_the_line() -> None:
    for rho in (0.3, 0.8, 0.95, 0.99):
        figures = solve_batching(REPLICA, rho * REPLICA.max_throughput)
        assert isinstance(figures, BatchingFigures)
        exact = sojourn_tail(figures).percentile(0.95, figures.mean_time_in_system)
        bound = p95_lower_bound(figures)
        assert bound <= exact
        lam = rho * REPLICA.max_throughput
        assert p95_at(REPLICA, lam, 1) == exact
        assert p95_at(REPLICA, lam, 1, known_above=exact * 2) == exact  # under the line: exact
        if bound > 1.0:
            assert p95_at(REPLICA, lam, 1, known_above=bound / 2) == bound  # certainly above: the bound
    assert p95_at(REPLICA, 2 * REPLICA.max_throughput, 1, known_above=1.0) == math.inf


def test_sizing_is_unchanged_by_the_shortcut() -> None:
    lam = 40.0
    sized = smallest_replicas(REPLICA, lam, 10.0)
    assert sized is not None
    n, p95 = sized
    assert p95 <= 10.0 < p95_at(REPLICA, lam, n - 1)  # the fewest: one fewer misses the SLO exactly


def test_a_70b_plan_at_400_requests_per_second_takes_well_under_a_second(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_70B))
    goal = ServingGoal(arrival_rate=400.0, slo_p95_s=30.0)
    started = time.process_time()
    rows = scheme_rows(tmp_path, "a100-80gb", goal)
    curves = {r["scheme"]: latency_curve(r, goal) for r in rows}
    spent = time.process_time() - started
    assert spent < 3.0, spent  # was 12.8 s for the rows alone (one near-saturated tail of 11,701 states)
    w8 = next(r for r in rows if r["scheme"] == "W8A16")
    assert w8["replicas"] == 503 and w8["p95_s"] <= 30.0
    assert curves["W8A16"] and all(p <= CURVE_CEILING * 30.0 for _, p in curves["W8A16"])
