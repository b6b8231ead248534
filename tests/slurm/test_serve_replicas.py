"""A serving plan's replicas as SLURM jobs on the real testbed (node1: 2 a100; node2: 1 a100 + 2 h100,
fake GPUs by GRES): placed across the nodes, each pinned to its node with its GPUs, tracked to the end,
grouped in the store, and a running group cancelled — from `plan place --submit` / `plan replicas`, and
from the planner's placement panel with the confirmation accepted."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.services.serve_placement import group_jobs, placement_preview
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect
from tests.conftest import run_cli_argv

pytestmark = pytest.mark.slurm

# The serve command is a harmless stand-in for vllm: it prints what a server would be given.  Every
# word of the template reaches the job quoted: the $VARIABLES are bash -c's to expand, on the node.
ECHO = (
    "bash -c 'echo SERVE node=$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES model=$0 tp=$1 port=$2 "
    "replica=$3 group=$MSQUANT_SERVE_GROUP; sleep 2' {model} {tp} {port} {replica}"
)
MODEL = "/models/my model $(touch /tmp/pwned)"


def _plan(
    tmp_path: Path, clusters: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*run_cli_argv("--data-dir", str(tmp_path / "data"), "plan"), *args, "--clusters", str(clusters)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _sacct(testbed, slurm_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return (
        testbed.run_as_root("sacct", "-j", slurm_id, "-X", "-n", "-P", "-o", "NodeList,AllocTRES,State")
        .strip()
        .split("|")
    )


def _wait_sacct(testbed, slurm_id: str, state: str, timeout: float = 60) -> list[str]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    row = _sacct(testbed, slurm_id)
    while not (len(row) == 3 and row[2].startswith(state)) and time.monotonic() < deadline:
        time.sleep(0.5)
        row = _sacct(testbed, slurm_id)
    return row


def test_cli_places_two_replicas_across_the_nodes_and_they_complete_there(testbed, profile, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    # The cluster's own serve command (clusters.yaml `serve_template:`) is used unless --template is given.
    save_profiles(clusters, [dataclasses.replace(profile, serve_template=ECHO)])
    base = ("place", "testbed", "--model", MODEL, "--replicas", "2", "--tp", "1", "--gpu-type", "a100")
    shown = _plan(tmp_path, clusters, *base, "--template", ECHO, "--json")
    assert shown.returncode == 0, shown.stderr
    preview = json.loads(shown.stdout)
    assert preview["fits"] and [r["node"] for r in preview["replicas"]] == ["node1", "node2"]  # spread
    assert "#SBATCH --nodelist=node1" in preview["replicas"][0]["script"]
    assert not (tmp_path / "data").joinpath("runs").exists() or not any((tmp_path / "data/runs").iterdir())

    bad = _plan(tmp_path, clusters, *base, "--template", "vllm serve {model} --gpus {gpus}")
    assert bad.returncode == 2 and "unknown field" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    big = _plan(
        tmp_path, clusters, "place", "testbed", "--model", "/m", "--replicas", "1", "--tp", "3", "--submit"
    )
    assert (
        big.returncode == 3
        and "nothing submitted" in big.stdout
        and "most free on one node is 2" in big.stdout
    )

    sent = _plan(tmp_path, clusters, *base, "--group", "serve-cli-test", "--submit", "--json")
    assert sent.returncode == 0, sent.stderr
    out = json.loads(sent.stdout)
    assert out["group"] == "serve-cli-test" and all(s["submitted"] for s in out["submitted"])
    slurm_ids = [s["slurm_job_id"] for s in out["submitted"]]
    for slurm_id, node in zip(slurm_ids, ("node1", "node2"), strict=True):
        nodelist, tres, state = _wait_sacct(testbed, slurm_id, "COMPLETED")
        assert (nodelist, state) == (node, "COMPLETED")
        assert "gres/gpu:a100=1" in tres
    deadline = time.monotonic() + 60
    while True:
        listed = _plan(tmp_path, clusters, "replicas", "serve-cli-test", "--json")
        rows = json.loads(listed.stdout)["jobs"]
        if all(r["state"] == "COMPLETED" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [(r["replica"], r["node"], r["port"], r["state"]) for r in rows] == [
        (0, "node1", 8000, "COMPLETED"),
        (1, "node2", 8000, "COMPLETED"),
    ]
    for row in rows:
        log = subprocess.run(
            [
                *run_cli_argv("--data-dir", str(tmp_path / "data"), "slurm"),
                "logs",
                str(row["job"]),
                "--clusters",
                str(clusters),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        line = next(x for x in log.splitlines() if x.startswith("SERVE "))
        assert f"node={row['node']}" in line and "gpus=0" in line and f"port={row['port']}" in line
        assert f"model={MODEL} tp=1" in line and f"replica={row['replica']} group=serve-cli-test" in line
    assert not Path("/tmp/pwned").exists()


def test_the_placement_panel_submits_a_group_and_cancels_it(qtbot, testbed, profile, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.ui.plan.placement_panel import PlacementPanel

    save_profiles(tmp_path / "clusters.yaml", [profile])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"),
        tmp_path / "runs",
        tmp_path / "clusters.yaml",
        ssh_config=Path("/nonexistent"),
    )
    try:
        panel = PlacementPanel(service)
        qtbot.addWidget(panel)
        qtbot.waitUntil(lambda: service.status("testbed") == "connected", timeout=15_000)
        panel.reload_clusters()
        qtbot.waitUntil(lambda: panel.current_view() is not None, timeout=15_000)
        view = panel.current_view()
        assert view is not None
        template = "bash -c 'echo SERVE node=$SLURMD_NODENAME; sleep 300' {model} {port}"
        result = placement_preview(
            view, panel.cluster_profile("testbed"), 2, 1, "h100", "/models/m", "serve-gui-test", template
        )
        panel.show_result(result)
        assert panel.submit_button.isEnabled() and panel.submit_button.text() == "Submit 2 replicas…"
        panel.submit_button.click()
        dialog = panel.confirm_dialog
        assert dialog is not None and dialog.tabs.count() == 2
        assert dialog.editors[0].toPlainText() == result["plan"].scripts[0]  # exactly what is sent
        dialog.submit_button.click()  # accepted
        ids = panel.group_job_ids
        assert len(ids) == 2
        repo = service.repo
        qtbot.waitUntil(lambda: all(repo.get(i).state is JobState.RUNNING for i in ids), timeout=60_000)
        jobs = group_jobs(repo, "serve-gui-test")
        assert [j.id for j in jobs] == ids and {j.spec.meta["serve"]["node"] for j in jobs} == {"node2"}
        for job in jobs:
            queued = testbed.run_as_root("squeue", "-h", "-j", job.slurm_job_id or "", "-o", "%N %b %T")
            assert queued.split()[0] == "node2" and "h100:1" in queued and "RUNNING" in queued
        assert {j.spec.meta["serve"]["port"] for j in jobs} == {8000, 8001}  # one node: two ports
        assert panel.cancel_button.isEnabled()
        panel.cancel_button.click()
        qtbot.waitUntil(lambda: all(repo.get(i).state is JobState.CANCELLED for i in ids), timeout=60_000)
        for job in jobs:
            assert _wait_sacct(testbed, job.slurm_job_id or "", "CANCELLED")[2].startswith("CANCELLED")
        qtbot.waitUntil(lambda: not panel.cancel_button.isEnabled(), timeout=5_000)
        assert "CANCELLED" in panel.jobs_label.text()
    finally:
        service.shutdown()
