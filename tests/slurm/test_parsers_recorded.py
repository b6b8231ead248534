"""Recorded real outputs of SLURM 22.05 (tests/slurm/fixtures, captured from the testbed) parse,
and the pure policy decides final states the way the issue asks (never "completed" by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import (
    final_from_log,
    final_from_marker,
    final_from_slurm,
    map_slurm_state,
    next_poll_interval,
)
from msquant_desktop.slurm.client import detect_wandb
from msquant_desktop.slurm.gpus import gpu_view
from msquant_desktop.slurm.parsers import (
    parse_gres,
    parse_nodes,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_job,
    parse_squeue,
    parse_version,
)
from msquant_desktop.slurm.profiles import ProfileError, dump_profiles, parse_profiles

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_busy_nodes_parse_with_typed_gres_used() -> None:
    node1, node2 = parse_nodes(fixture("scontrol_show_node_busy.txt"))
    assert (node1.name, node1.state, node1.partitions) == ("node1", "ALLOCATED", ("debug",))
    assert node1.gpus_total == {"a100": 2} and node1.gpus_used == {"a100": 2}
    assert node2.gpus_total == {"a100": 1, "h100": 2} and node2.gpus_used == {"a100": 0, "h100": 2}
    assert (node2.cpus_total, node2.cpus_alloc, node2.memory_mb) == (4, 1, 8000)


def test_drained_node_is_excluded_and_shown_with_its_reason() -> None:
    nodes = parse_nodes(fixture("scontrol_show_node_drain.txt"))
    view = gpu_view(nodes, [])
    assert not nodes[1].usable and nodes[1].reason and nodes[1].reason.startswith("fan broken")
    assert view.by_type == {"a100": view.by_type["a100"]} and view.by_type["a100"].total == 2
    assert view.unusable == ["node2: IDLE+DRAIN (fan broken [root@2026-11-23T10:46:38])"]


def test_squeue_with_non_utf8_name_untyped_gres_and_no_gres() -> None:
    entries = {e.job_id: e for e in parse_squeue(fixture("squeue_busy.txt"))}
    assert entries["28"].name == "r\ufffdsum\ufffd|x"  # latin-1 bytes and a '|' inside the name
    assert entries["28"].gres == {"a100": 1}
    assert entries["29"].gres == {"": 1}  # untyped gres:gpu:1
    assert entries["32"].gres == {}  # N/A
    assert (entries["31"].state, entries["31"].reason, entries["31"].nodes) == ("PENDING", "Resources", None)
    assert map_slurm_state(entries["31"].state) is JobState.QUEUED


def test_sacct_scontrol_sbatch_and_version_parse() -> None:
    acct = {e.job_id: e for e in parse_sacct(fixture("sacct_parsable.txt"))}
    assert acct["30"].state == "COMPLETED" and acct["30"].exit_code == "0:0"
    job = parse_scontrol_job(fixture("scontrol_show_job_pending.txt"))
    assert (job["JobState"], job["Reason"], job["Dependency"], job["JobName"]) == (
        "PENDING",
        "Resources",
        "(null)",
        "pend",
    )
    assert [parse_sbatch_parsable(line) for line in fixture("sbatch_parsable.txt").decode().split()] == [
        "6",
        "7",
        "8",
        "9",
        "10",
    ]
    assert parse_sbatch_parsable("42;cluster2\n") == "42"
    with pytest.raises(ValueError):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed")
    assert parse_version(fixture("sinfo_version.txt")) == "22.05.8"


def test_gres_forms() -> None:
    assert parse_gres("(null)") == {} and parse_gres("N/A") == {}
    assert parse_gres("gpu:a100:2(S:0-1),gpu:h100:1") == {"a100": 2, "h100": 1}
    assert parse_gres("gpu:4") == {"": 4} and parse_gres("gpu:a100:1(IDX:0),mps:100") == {"a100": 1}


def test_final_state_policy() -> None:
    assert final_from_slurm("RUNNING", "0:0", "sacct") is None
    failed = final_from_slurm("FAILED", "3:0", "sacct")
    assert failed and (failed.state, failed.exit_code) == (JobState.FAILED, 3)
    cancelled = final_from_slurm("CANCELLED by 1001", "0:15", "sacct")
    assert cancelled and cancelled.state is JobState.CANCELLED
    assert map_slurm_state("CANCELLED+") is JobState.CANCELLED and map_slurm_state("WEIRD") is None
    assert final_from_marker("exit=0 signal= at=x").state is JobState.COMPLETED  # type: ignore[union-attr]
    assert final_from_marker("exit=143 signal=TERM at=x").state is JobState.CANCELLED  # type: ignore[union-attr]
    assert final_from_marker("garbage") is None
    log = "hello\nslurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2026-11-23T11:00:00 DUE TO TIME LIMIT ***\n"
    assert final_from_log(log).state is JobState.TIMEOUT  # type: ignore[union-attr]
    assert final_from_log("slurmstepd: error: Detected 1 oom-kill event(s)").state is JobState.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert final_from_log("all fine") is None
    assert next_poll_interval(1, 5) == 2.0 and next_poll_interval(0, 0) < next_poll_interval(0, 3) <= 60


def test_wandb_links_and_offline_runs_are_found() -> None:
    text = (
        "wandb: 🚀 View run at https://wandb.ai/team/proj/runs/abc123\n"
        "wandb: You can sync this run to the cloud by running:\n"
        "wandb: wandb sync /scratch/u/run/wandb/offline-run-20261123_110000-xyz789\n"
    )
    urls, offline = detect_wandb(text)
    assert urls == ["https://wandb.ai/team/proj/runs/abc123"]
    assert offline == ["/scratch/u/run/wandb/offline-run-20261123_110000-xyz789"]


def test_profiles_validate_naming_the_field_and_round_trip() -> None:
    text = (
        "clusters:\n- name: a\n  host: me@login.example.edu\n  ssh_key_path: ~/.ssh/id\n  workspace: /scratch/me\n"
        "  allowed_partitions: [gpu]\n  allowed_gpu_types: [a100]\n"
    )
    profiles = parse_profiles(text)
    assert parse_profiles(dump_profiles(profiles)) == profiles
    with pytest.raises(ProfileError, match="'port'"):
        parse_profiles(text + "  port: seventy\n")
    with pytest.raises(ProfileError, match="'workspace'"):
        parse_profiles("clusters:\n- name: a\n  host: h\n")
    with pytest.raises(ProfileError, match="secrets"):
        parse_profiles(text + "  password: hunter2\n")
    with pytest.raises(ProfileError, match="allowed_partitions"):
        parse_profiles(text.replace("[gpu]", "gpu"))


def test_node_without_gres_parses_as_no_gpus() -> None:
    """A GPU-less node that has not registered: `Gres=(null)`, untyped `GresUsed=gpu:0`, state UNKNOWN."""
    (node3,) = parse_nodes(fixture("scontrol_show_node_nogres.txt"))
    assert (node3.name, node3.gpus_total, node3.gpus_used, node3.cpus_total) == ("node3", {}, {}, 2)
    assert not node3.usable
    lines = dict(line.split("|")[:2] for line in fixture("sinfo_nodes_nogres.txt").decode().splitlines())
    assert parse_gres(lines["node3"]) == {} and parse_gres(lines["node2"]) == {"a100": 1, "h100": 2}
    view = gpu_view(parse_nodes(fixture("scontrol_show_node_busy.txt")) + [node3], [])
    assert view.by_type["a100"].total == 3 and "node3: UNKNOWN" in view.unusable
