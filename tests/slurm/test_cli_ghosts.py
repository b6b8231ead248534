"""Submissions left half-way by a process that died, handled from `msquant-desktop slurm`:
never sent again, shown truly, cancellable and (when they never reached the cluster) forgettable.

The ghosts are made for real: `slurm submit` killed while it waits on a cluster that never answers
(nothing sent), `slurm submit` killed while a slow sbatch runs (sent, answer never read), and a job
stored STARTING without a step, as an older version left a submit cut by a dropped connection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import JobRepository, connect
from tests.conftest import run_cli_argv
from tests.silent_server import silent_server

pytestmark = pytest.mark.slurm


class Cli:
    def __init__(self, data: Path, clusters: Path) -> None:
        self.data, self.clusters = data, clusters

    def argv(self, command: str, *args: str) -> list[str]:
        return run_cli_argv(
            "--data-dir", str(self.data), "slurm", command, "--clusters", str(self.clusters), *args
        )

    def __call__(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command, *args), capture_output=True, text=True, timeout=120)

    def repo(self) -> JobRepository:
        return JobRepository(connect(resolve_paths(self.data).ensure().database))

    def status(self, job_id: int) -> dict:  # type: ignore[type-arg]
        (job,) = [j for j in json.loads(self("status", "--json").stdout)["jobs"] if j["id"] == job_id]
        return job


def killed_once(cli: Cli, repo: JobRepository, until, *submit_args: str) -> int:  # type: ignore[no-untyped-def]
    """Start `slurm submit`, SIGKILL it once `until(job)` holds for the job it stored; the job's id."""
    known = {job.id for job in repo.list_jobs()}
    proc = subprocess.Popen(cli.argv("submit", *submit_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = [job for job in repo.list_jobs() if job.id not in known]
            if jobs and until(jobs[0]):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the submit never reached the step to kill it at")
    finally:
        proc.communicate(timeout=10)
    return jobs[0].id


def jobs_named(testbed, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    queued = testbed.run_as_root("squeue", "-h", "-t", "all", "-n", name, "-o", "%F")
    accounted = testbed.run_as_root(
        "sacct", "-a", "-n", "-X", "-P", "--name", name, "-S", "now-1hour", "-o", "JobID"
    )
    return {line.split("_")[0] for line in (queued + accounted).split() if line.strip()}


def test_ghosts_that_never_reached_the_cluster_are_settled_cancelled_and_forgotten(testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with silent_server() as server:
        clusters = tmp_path / "clusters.yaml"
        hung = ClusterProfile(name="hung", host="someone@127.0.0.1", port=server.port, workspace="/w",
                              known_hosts=str(tmp_path / "kh"))  # fmt: skip
        save_profiles(clusters, [hung])
        cli = Cli(tmp_path / "data", clusters)
        repo = cli.repo()
        submit = ("hung", "--repo", "r", "--commit", "a" * 40, "--name", "ghost", "--", "true")
        ghosts = [
            killed_once(cli, repo, lambda job: job.result.get("submit_step") == "stored", *submit)
            for _ in range(3)
        ]
        for job_id in ghosts:  # the process sending them is gone; nothing was sent
            job = repo.get(job_id)
            assert (job.state, job.result["submit_step"]) == (JobState.STARTING, "stored")
            assert not cluster_jobs.sent_by_another_process(job)
        cancelled, forgotten, settled = ghosts
        connections = len(server.accepted)

        done = cli("cancel", str(cancelled))
        assert done.returncode == 0 and "CANCELLED (it never reached the cluster)" in done.stdout, done
        assert repo.get(cancelled).state is JobState.CANCELLED

        done = cli("forget", str(forgotten))
        assert done.returncode == 0 and "forgotten" in done.stdout, done
        assert repo.find(forgotten) is None

        status = cli.status(settled)  # no connection needed: sbatch never ran, so it never will
        assert status["state"] == "FAILED_TO_START", status
        assert "sbatch never ran" in status["reason"] and status["submit_step"] == "stored"
        assert len(server.accepted) == connections  # none of these needed the cluster


def test_a_submit_killed_while_sbatch_runs_is_found_not_sent_again(
    testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    slow_bin = testbed.dir / "slow-start-bin"
    slow_bin.mkdir(exist_ok=True)
    for tool in ("squeue", "sacct", "scontrol", "scancel", "sinfo"):
        if not (slow_bin / tool).exists():
            (slow_bin / tool).symlink_to(f"/usr/bin/{tool}")
    (slow_bin / "sbatch").write_text('#!/bin/sh\nsleep 4\nexec /usr/bin/sbatch "$@"\n')
    (slow_bin / "sbatch").chmod(0o755)
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile.__class__(**{**profile.__dict__, "slurm_bin": str(slow_bin)})])
    cli = Cli(tmp_path / "data", clusters)
    repo = cli.repo()
    path, first, _ = bare_repo
    from msquant_desktop.slurm.script import remote_paths

    def sbatch_running(job) -> bool:  # type: ignore[no-untyped-def]
        """Killed only once sbatch runs on the cluster (its start is recorded there; the testbed's
        workspace is on this machine): "sbatch-sent" alone is recorded just before the request
        leaves, and a kill that lands before it does means sbatch never ran — a different case."""
        if job.result.get("submit_step") != "sbatch-sent" or "run_id" not in job.spec.meta:
            return False
        started = Path(remote_paths(testbed.workspace, job.spec.meta["run_id"]).sbatch_started)
        return started.is_file() and bool(started.read_text().strip())

    job_id = killed_once(
        cli,
        repo,
        sbatch_running,
        "testbed", "--repo", path, "--commit", first, "--name", "killed", "--", "sleep", "20",
    )  # fmt: skip
    name = repo.get(job_id).spec.meta["slurm_name"]
    first_look = cli.status(job_id)
    assert first_look["state"] == "STARTING" and first_look["slurm_job_id"] is None  # sbatch still sleeping
    deadline = time.monotonic() + 40
    while (found := cli.status(job_id))["slurm_job_id"] is None and time.monotonic() < deadline:
        time.sleep(1)
    assert found["state"] in ("QUEUED", "RUNNING"), found
    assert jobs_named(testbed, name) == {found["slurm_job_id"]}
    done = cli("cancel", str(job_id))
    assert done.returncode == 0 and "CANCELLED" in done.stdout, done
    assert jobs_named(testbed, name) == {found["slurm_job_id"]}  # still exactly one


def test_an_older_versions_ghost_is_looked_up_by_name_never_submitted(
    testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """STARTING without a recorded step (the app before steps were recorded): sbatch may have run,
    so it is looked up; no job of its name and no sbatch record twice, 5 s apart: not submitted."""
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])
    cli = Cli(tmp_path / "data", clusters)
    repo = cli.repo()
    path, first, _ = bare_repo
    paths = resolve_paths(cli.data).ensure()
    submission = SlurmSubmission(
        cluster="testbed", job_name="old", repo_url=path, commit=first, command=("true",)
    )
    ghosts = []
    for _ in range(2):
        job = cluster_jobs.create_job(repo, paths.runs_dir, submission)
        ghosts.append(repo.update(job.id, result={}, claimer_pid=None, claimer_start_time=None).id)
    looked_up, cancelled = ghosts
    done = cli("cancel", str(cancelled))  # looks it up (twice, 5 s apart), then ends it
    assert (
        done.returncode == 0 and "CANCELLED" in done.stdout and "never reached the cluster" in done.stdout
    ), done
    # `cancel` refreshed nothing else: the other one is looked up by `status`, once per call.
    first_look = cli.status(looked_up)
    assert first_look["state"] == "STARTING", first_look
    assert "no job is named" in repo.get(looked_up).result["submit_check"]
    time.sleep(cluster_jobs.ABSENT_CONFIRM_S)
    settled = cli.status(looked_up)
    assert settled["state"] == "FAILED_TO_START" and "looked twice" in settled["reason"], settled
    for job_id in ghosts:
        assert jobs_named(testbed, repo.get(job_id).spec.meta["slurm_name"]) == set()
