"""`slurm logs --follow` on the real testbed: prints the log as it grows and exits with the job's
status (domain.exit_status), as `jobs logs --follow` does for a local job."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import run_cli_argv
from tests.slurm.conftest import slurm_cli

pytestmark = pytest.mark.slurm


def test_slurm_logs_follow_exits_with_the_jobs_status(testbed, profile, bare_repo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = slurm_cli(tmp_path, profile)

    repo_path, first, _ = bare_repo
    script = "echo first-line; sleep 2; echo last-line; exit 5"
    submitted = cli(
        "submit",
        "testbed",
        "--repo",
        repo_path,
        "--commit",
        first,
        "--name",
        "follow",
        "--",
        "sh",
        "-c",
        script,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    followed = cli("logs", job_id, "--follow", "--poll", "1")
    assert followed.returncode == 5, followed.stdout + followed.stderr
    assert "first-line" in followed.stdout and "last-line" in followed.stdout
    assert followed.stdout.index("first-line") < followed.stdout.index("last-line")
    local = subprocess.run(
        run_cli_argv("--data-dir", str(tmp_path / "data"), "jobs", "logs", job_id, "--follow"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert local.returncode == 2 and "slurm logs" in local.stderr  # pointed at the command that can


def test_jobs_wait_waits_for_a_slurm_job_and_exits_with_its_status(
    testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """`jobs wait` takes any job id: a SLURM job's state is polled on its cluster (nothing else is
    watching it) until it ends, and the status is the same table's."""
    cli = slurm_cli(tmp_path, profile)
    repo_path, first, _ = bare_repo
    submitted = cli(
        "submit", "testbed", "--repo", repo_path, "--commit", first, "--name", "waited", "--",
        "sh", "-c", "sleep 2; exit 6",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    clusters = tmp_path / "clusters.yaml"
    waited = subprocess.run(
        run_cli_argv("--data-dir", str(tmp_path / "data"), "jobs", "wait", job_id, "--poll", "1")
        + ["--clusters", str(clusters), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert waited.returncode == 6, waited.stdout + waited.stderr
    (job,) = json.loads(waited.stdout)["jobs"]
    assert (job["state"], job["exit_code"], job["target"]) == ("FAILED", 6, "slurm")
