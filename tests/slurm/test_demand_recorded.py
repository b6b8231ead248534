"""squeue and scontrol outputs recorded on the testbed and in the field (sources in
fixtures/SOURCES.md): the queue's demand counts per-job, per-node and per-task GPUs and every array
task, within `%N` throttles for "could start now"; node states are read as scontrol spells them."""

from __future__ import annotations

from msquant_desktop.slurm.gpus import gpu_view, startable_instances
from msquant_desktop.slurm.parsers import (
    ArrayTasks,
    parse_array_tasks,
    parse_gres,
    parse_nodes,
    parse_squeue,
    parse_squeue_demand,
)
from tests.slurm.recorded import recorded

# -- the queue's GPU demand -------------------------------------------------------------------------------


def test_array_task_expressions() -> None:
    assert parse_array_tasks("0-467") == ArrayTasks(468)
    assert parse_array_tasks("1,3,5-9") == ArrayTasks(7)
    assert parse_array_tasks("1-99:2") == ArrayTasks(50)
    assert parse_array_tasks("4-10%2") == ArrayTasks(7, throttle=2)
    assert parse_array_tasks("N/A") is None and parse_array_tasks("7") == ArrayTasks(1)
    truncated = parse_array_tasks(recorded("squeue_demand_truncated.txt").split("|")[2])
    assert (
        truncated is not None and truncated.truncated and truncated.count == 19
    )  # 0-1 and 17 more; "19..." was cut
    field = dict(
        (line.split("|")[0], line.split("|")[2])
        for line in recorded("squeue_tres_field_samples.txt").splitlines()
        if line
    )
    assert parse_array_tasks(field["slurmtools#2"].split("_", 1)[1]) == ArrayTasks(468)
    assert parse_array_tasks(field["cluster-scripts#10"]) == ArrayTasks(7, throttle=2)
    assert parse_gres(field["aws-parallelcluster-node#178"]) == {"": 12}
    assert parse_gres(field["slurm_gpustat#18"]) == {"": 2}
    assert parse_gres(field["slurm_opt.c"]) == {"gtx": 1}  # cpu=10 and the license are not GPUs
    assert parse_gres("gres/gpu:a100=2,gres/gpu=1") == {"a100": 2, "": 1}


def test_recorded_demand_counts_per_job_node_task_and_array_tasks() -> None:
    entries = {e.job_id: e for e in parse_squeue_demand(recorded("squeue_demand.txt"))}
    assert entries["20"].gpus_each() == {"": 3}  # --gpus=3 (tres-per-job)
    assert entries["21"].gpus_each() == {"h100": 2}  # --gpus=h100:2
    assert entries["22"].gpus_each() == {"": 3}  # -n 3 --gpus-per-task=1
    assert entries["23"].gpus_each() == {"a100": 2}  # -N 2 --gres=gpu:a100:1 (per node)
    assert (entries["24"].instances, entries["25"].instances, entries["26"].instances) == (468, 7, 50)
    assert entries["19"].instances == 30 and entries["19"].gpus_each() == {"": 2}
    running = [e for e in entries.values() if e.state == "RUNNING"]
    assert len(running) == 5 and all(e.array is None for e in running)
    view = gpu_view([], parse_squeue_demand(recorded("squeue_demand.txt")), running_in_array={"12": 2})
    # 12: 4 h100 tasks; 13: 198 tasks of 1; 19: 30x2; 20: 3; 21: 2 h100; 22: 3; 23: 2 a100; 24: 468;
    # 25: 7 a100; 26: 50; 27 (held): 2
    assert view.pending == {"h100": 4 + 2, "": 198 + 60 + 3 + 3 + 468 + 50 + 2, "a100": 2 + 7}
    # could start now: 12 is at its %2 throttle with 2 running, 27 is held
    assert view.pending_now == {"h100": 2, "": 198 + 60 + 3 + 3 + 468 + 50, "a100": 2 + 7}
    assert not view.pending_at_least


def test_throttle_bounds_what_could_start_now() -> None:
    (entry,) = [e for e in parse_squeue_demand(recorded("squeue_demand.txt")) if e.job_id == "12" and e.array]
    assert startable_instances(entry, {"12": 2}) == 0  # JobArrayTaskLimit: at the limit
    relaxed = entry.__class__(**{**entry.__dict__, "reason": "Resources"})
    assert startable_instances(relaxed, {"12": 1}) == 1
    assert startable_instances(relaxed, {}) == 2  # running unknown: the throttle bounds it


def test_a_truncated_task_list_makes_the_demand_a_lower_bound() -> None:
    view = gpu_view([], parse_squeue_demand(recorded("squeue_demand_truncated.txt")))
    assert view.pending == {"": 19 * 2} and view.pending_at_least


def test_the_old_b_format_is_blind_to_per_job_gpus_and_arrays() -> None:
    """What issue 15 reported, on the recorded output of `%b`: kept as the reason for DEMAND_FORMAT."""
    view = gpu_view([], parse_squeue(recorded("squeue_pending_b_format.txt")))
    assert view.pending == {"a100": 1, "": 2, "h100": 1}


# -- node states --------------------------------------------------------------------------------------------


def test_maintenance_as_scontrol_prints_it_takes_no_work() -> None:
    node1, node2 = parse_nodes(recorded("scontrol_show_node_maint.txt"))
    assert node1.state == "IDLE+MAINTENANCE+RESERVED" and not node1.usable
    assert node2.usable
    for state in ("IDLE+MAINTENANCE", "MIXED+MAINTENANCE", "MAINT", "IDLE+INVALID_REG", "ERROR"):
        assert not node1.__class__(**{**node1.__dict__, "state": state}).usable, state
    view = gpu_view([node1, node2], [])
    assert view.unusable == ["node1: IDLE+MAINTENANCE+RESERVED"] and view.by_type["a100"].total == 1
