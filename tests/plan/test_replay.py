"""Replay: the load model, the controllers' published rules, and the PID settling without toggling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from msquant_desktop.domain.autoscale import (
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
from msquant_desktop.domain.queueing import QueueFigures, mmc
from msquant_desktop.plan.queue_tables import QueueTables
from msquant_desktop.plan.replay import ReplayConfig, make_controller, model_replicas, replay
from msquant_desktop.plan.traces import Trace, TraceError, load_trace_csv, shape

CONFIG = ReplayConfig(
    service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, cold_start_s=120.0, max_replicas=100
)


def constant(rate: float, seconds: float) -> Trace:
    return Trace(np.array([0.0, seconds]), np.array([rate, rate]), "constant")


class Fixed:
    """A controller that never changes anything (to check the load model alone)."""

    name = "fixed"
    decision_interval_s = 1e9
    uses_in_system = False
    uses_latency = False

    def observe(self, tick: Tick) -> None:
        pass

    def decide(self, tick: Tick) -> int:
        return tick.target


def settled(result, after_s: float) -> set[int]:  # type: ignore[no-untyped-def]
    return set(result.ready[int(after_s / result.config.tick_s) :].tolist())


# -- the load model -------------------------------------------------------------------------------


def test_queue_tables_match_the_exact_figures() -> None:
    tables = QueueTables(0.25)
    for c in (1, 3, 16, 160, 1600):
        for rho in (0.01, 0.3, 0.7, 0.9, 0.97, 0.995, 0.9995):
            lam = rho * c * 0.25
            q = mmc(lam, 0.25, c)
            assert isinstance(q, QueueFigures)
            assert tables.p95(lam, c) == pytest.approx(q.time_in_system_percentile(0.95), rel=1e-4)
            assert tables.in_system(lam, c) == pytest.approx(q.mean_in_system, rel=1e-4)
    many = tables.p95_many(np.array([0.5, 2.0, 30.0]), np.array([3, 16, 160]))
    assert many[1] == pytest.approx(tables.p95(2.0, 16))


def test_fixed_replicas_accounting() -> None:
    config = ReplayConfig(
        service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, initial_replicas=3, gpus_per_replica=2
    )
    result = replay(constant(6.0, 3600), Fixed(), config)
    assert result.gpu_hours == pytest.approx(3 * 2 * 1.0)
    assert result.scaling_actions == 0 and result.slo_violation_minutes == 0
    q = mmc(6.0, 0.25, 48)
    assert isinstance(q, QueueFigures)
    assert result.p95_latency[0] == pytest.approx(q.time_in_system_percentile(0.95), rel=1e-4)


def test_overload_builds_a_fluid_backlog() -> None:
    config = ReplayConfig(service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, initial_replicas=1)
    result = replay(constant(6.0, 600), Fixed(), config)
    assert result.backlog[-1] == pytest.approx((6.0 - 4.0) * 600)
    assert result.slo_violation_minutes == pytest.approx(10.0, abs=0.5)
    # an arrival waits the backlog out: backlog / capacity, plus its own service
    assert result.p95_latency[-1] == pytest.approx(1200 / 4.0 - math.log(0.05) / 0.25)


# -- traces ---------------------------------------------------------------------------------------


def test_trace_csv(tmp_path: Path) -> None:
    file = tmp_path / "load.csv"
    file.write_text("time,requests_per_s\n# a comment\n0,2\n10,12\n20,12\n")
    trace = load_trace_csv(file)
    t, rates = trace.on_ticks(1.0)
    assert len(t) == 20 and rates[0] == 2 and rates[5] == pytest.approx(7.0) and rates[15] == 12
    (tmp_path / "bad.csv").write_text("0,1\n5,x\n")
    with pytest.raises(TraceError, match="line 2"):
        load_trace_csv(tmp_path / "bad.csv")
    (tmp_path / "neg.csv").write_text("0,-1\n")
    with pytest.raises(TraceError):
        load_trace_csv(tmp_path / "neg.csv")


def test_shapes() -> None:
    day = shape("diurnal", 10, 100)
    t, r = day.on_ticks(60.0)
    assert len(t) == 1440
    assert t[np.argmin(r)] == 4 * 3600 and t[np.argmax(r)] == 16 * 3600
    step = shape("step", 1, 9, duration_s=100, at_s=30)
    assert step.rates[29] == 1 and step.rates[30] == 9
    square = shape("square", 1, 9, duration_s=100, period_s=20)
    assert list(square.rates[[0, 9, 10, 19, 20]]) == [1, 1, 9, 9, 1]
    sine = shape("sine", 0, 10, duration_s=100, period_s=100)
    assert sine.rates[25] == pytest.approx(10) and sine.rates[75] == pytest.approx(0, abs=1e-9)
    with pytest.raises(TraceError):
        shape("sawtooth", 1, 2)


# -- PID ------------------------------------------------------------------------------------------


def test_pid_settles_on_a_stationary_load_and_does_not_toggle() -> None:
    config = ReplayConfig(
        service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, cold_start_s=120.0, initial_replicas=1
    )
    result = replay(constant(40.0, 4 * 3600), make_controller("pid", config), config)
    final = model_replicas(config, 40.0)
    assert settled(result, 1800) == {final}
    assert [a for a in result.actions if a[0] > 1800] == []
    assert result.p95_latency[-1] <= config.slo_p95_s


def test_pid_with_an_optimistic_model_still_settles() -> None:
    """The controller believes a replica is 30 % faster than it is: the feedback has to add replicas,
    and the calibrated scale-down check keeps it from toggling."""
    config = ReplayConfig(service_rate=4.0, slo_p95_s=20.0, servers_per_replica=16, cold_start_s=120.0)
    pid = PidController(
        PidParams(slo_p95_s=20.0, service_rate=1.3 * 4.0, servers_per_replica=16), cold_start_s=120.0
    )
    result = replay(constant(40.0, 6 * 3600), pid, config)
    last = settled(result, 3 * 3600)
    assert len(last) == 1
    assert [a for a in result.actions if a[0] > 3 * 3600] == []
    assert float(result.p95_latency[-3600:].max()) <= config.slo_p95_s
    assert last.pop() > model_replicas(
        ReplayConfig(service_rate=5.2, slo_p95_s=20.0, servers_per_replica=16), 40.0
    )


def test_pid_holds_while_replicas_start() -> None:
    pid = PidController(
        PidParams(slo_p95_s=20.0, service_rate=4.0, servers_per_replica=16), cold_start_s=120.0
    )
    for i in range(40):
        pid.observe(Tick(float(i + 1), 1.0, 40.0, math.nan, 2, 6))
    before = pid._state.integral
    desired = pid.decide(Tick(41.0, 1.0, 40.0, math.nan, 2, 6, p95_latency=500.0))
    assert desired == max(6, pid.feed_forward(40.0)) and pid._state.integral == before


# -- the published rules --------------------------------------------------------------------------


def ticks(controller, seconds: int, rate: float, in_system: float, ready: int, target: int):  # type: ignore[no-untyped-def]
    """Feed `seconds` ticks; return the decisions (time, desired) that changed the target."""
    changes = []
    next_at = 0.0
    for i in range(seconds):
        tick = Tick(float(i + 1), 1.0, rate, in_system, ready, target)
        controller.observe(tick)
        if tick.now >= next_at:
            desired = controller.decide(tick)
            next_at = tick.now + controller.decision_interval_s
            if desired != target:
                changes.append((tick.now, desired))
                target = ready = desired
    return changes


def test_ray_serve_rule_and_delays() -> None:
    ray = RayServeController()
    assert ray.desired(total=10.0, running=2) == 5  # 10 ongoing / 2 per replica
    assert ray.desired(total=0.5, running=3) == 1  # clipped at min_replicas
    slow = RayServeController(RayServeParams(downscaling_factor=0.1))
    assert slow.desired(total=3.9, running=3) == 2  # ceil(3 − 0.1·1.05) = 3 would block it: minus one
    # 20 ongoing on 2 replicas wants 10; it happens after more than 300 control-loop periods (30 s).
    changes = ticks(RayServeController(), 120, 0.0, 20.0, 2, 2)
    assert changes[0] == (31.0, 10)
    # and down only after 600 s of wanting fewer
    changes = ticks(RayServeController(), 900, 0.0, 2.0, 4, 4)
    assert changes[0][0] == 601.0 and changes[0][1] == 1


def test_skyserve_rule_and_delays() -> None:
    sky = SkyServeController(SkyServeParams(target_qps_per_replica=2.0))
    changes = ticks(sky, 600, 10.0, math.nan, 1, 1)  # 10 QPS / 2 per replica = 5
    assert changes[0] == (301.0, 5)  # the 16th check, 20 s apart: 15 consecutive "up" checks
    sky = SkyServeController(SkyServeParams(target_qps_per_replica=2.0))
    changes = ticks(sky, 1500, 2.0, math.nan, 5, 5)
    assert changes[0] == (1181.0, 1)  # the 60th consecutive "down" check (the first at t = 1)
    sky = SkyServeController(SkyServeParams(target_qps_per_replica=2.0))
    assert sky.decide(Tick(1.0, 1.0, 10.0, math.nan, 0, 0)) >= 1  # at once from zero


def test_kpa_panics_and_never_scales_down_while_it_lasts() -> None:
    kpa = KpaController(KpaParams(target_concurrency=10.0))  # target 7 per pod
    for i in range(60):
        kpa.observe(Tick(float(i + 1), 1.0, 0.0, 14.0, 2, 2))
    assert kpa.decide(Tick(60.0, 1.0, 0.0, 14.0, 2, 2)) == 2  # 14/7: no change, no panic
    for i in range(60, 66):
        kpa.observe(Tick(float(i + 1), 1.0, 0.0, 70.0, 2, 2))  # a burst: 70 concurrent
    burst = kpa.decide(Tick(66.0, 1.0, 0.0, 70.0, 2, 2))
    assert kpa._panic_since is not None and burst == 10  # ceil(70/7) from the 6 s panic window
    for i in range(66, 100):
        kpa.observe(Tick(float(i + 1), 1.0, 0.0, 7.0, 10, 10))
    assert kpa.decide(Tick(100.0, 1.0, 0.0, 7.0, 10, 10)) == 10  # in panic: no scale-down
    for i in range(100, 140):
        kpa.observe(Tick(float(i + 1), 1.0, 0.0, 7.0, 10, 10))
    after = kpa.decide(Tick(140.0, 1.0, 0.0, 7.0, 10, 10))  # 60 s after the last panic reading
    assert kpa._panic_since is None and after == 5  # down at most by half (max scale-down rate 2)


@pytest.mark.parametrize("name", ["pid", "ray", "skyserve", "kpa"])
def test_every_controller_replays_a_day(name: str) -> None:
    result = replay(shape("diurnal", 5.0, 60.0), make_controller(name, CONFIG), CONFIG)
    summary = result.summary()
    assert summary["ticks"] == 86400 and summary["gpu_hours"] > 0
    series = result.series(300.0)
    assert len(series["t_s"]) == 288 and all(v is None or v > 0 for v in series["p95_latency_s"])
