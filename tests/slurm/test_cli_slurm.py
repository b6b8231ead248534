"""`msquant-desktop slurm ...` in child processes against the real testbed."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from msquant_desktop.slurm.profiles import save_profiles
from tests.conftest import run_cli_argv

pytestmark = pytest.mark.slurm


def test_slurm_cli_end_to_end(testbed, profile, bare_repo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])
    data = tmp_path / "data"

    def cli(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = run_cli_argv("--data-dir", str(data), "slurm", command, "--clusters", str(clusters), *args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    listed = cli("clusters")
    assert listed.returncode == 0 and listed.stdout.startswith("testbed\t")
    tested = cli("test", "testbed")
    assert tested.returncode == 0 and "SLURM 22.05" in tested.stdout and "accounting on" in tested.stdout
    gpus = json.loads(cli("gpus", "testbed", "--json").stdout)
    assert gpus["by_type"]["a100"]["total"] == 3 and gpus["by_type"]["h100"]["total"] == 2
    missing = cli("gpus", "nosuch")
    assert missing.returncode == 1 and "no cluster named 'nosuch'" in missing.stderr

    repo_path, first, _ = bare_repo
    submitted = cli(
        "submit",
        "testbed",
        "--repo",
        repo_path,
        "--commit",
        first,
        "--name",
        "cli-job",
        "--override",
        "a=$(b) c",
        "--",
        "sh",
        "-c",
        "sleep 60",  # the override arrives as $0 and is ignored
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (status,) = [j for j in json.loads(cli("status", "--json").stdout)["jobs"] if str(j["id"]) == job_id]
        if status["state"] == "RUNNING":
            break
        time.sleep(0.5)
    assert status["state"] == "RUNNING" and status["slurm_job_id"]
    time.sleep(1)
    assert f"at commit {first}" in cli("logs", job_id).stdout
    cancelled = cli("cancel", job_id)
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout
    (final,) = [j for j in json.loads(cli("status", "--json").stdout)["jobs"] if str(j["id"]) == job_id]
    assert final["state"] == "CANCELLED"


def test_slurm_cli_refuses_an_unknown_host_key(testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [testbed.profile(empty)])
    result = subprocess.run(
        run_cli_argv(
            "--data-dir", str(tmp_path / "d"), "slurm", "test", "testbed", "--clusters", str(clusters)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "SHA256:" in result.stderr and "not known" in result.stderr
    assert empty.read_text() == ""
