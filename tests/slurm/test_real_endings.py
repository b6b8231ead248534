"""Real jobs on the testbed that time out, lose one task under srun, and are killed for memory, each
submitted and followed with `msquant-desktop slurm`: `slurm status` must show how they really ended
and what decided it.

The testbed has no cgroups; its memory limit is Slurm's own without them (jobacct_gather/linux with
OverMemoryKill, see tests/testbed/slurm_testbed.sh).  A testbed started by an older script has no
memory enforcement: the memory test then skips, naming the reason."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from msquant_desktop.slurm.profiles import save_profiles
from tests.conftest import run_cli_argv

pytestmark = pytest.mark.slurm


@pytest.fixture
def cli(testbed, profile, tmp_path: Path):  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    # No time-limit warning: these jobs show SLURM's own endings (the USR1 warning that ends an over-time
    # job first is tests/slurm/test_sbatch_options_testbed.py's).
    save_profiles(clusters, [dataclasses.replace(profile, signal_lead_s=0)])
    data = tmp_path / "data"

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = run_cli_argv("--data-dir", str(data), "slurm", command, "--clusters", str(clusters), *args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    return run


def submit(cli, bare_repo, name: str, *options_and_command: str) -> str:  # type: ignore[no-untyped-def]
    repo, first, _ = bare_repo
    done = cli("submit", "testbed", "--repo", repo, "--commit", first, "--name", name, *options_and_command)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1].rstrip(":")


def wait_final(cli, job_id: str, timeout: float) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        (job,) = [j for j in json.loads(cli("status", "--json").stdout)["jobs"] if str(j["id"]) == job_id]
        if job["state"] not in ("STARTING", "QUEUED", "RUNNING", "CANCELLING") or time.monotonic() > deadline:
            return job
        time.sleep(2)


def status_line(cli, job_id: str) -> str:  # type: ignore[no-untyped-def]
    (line,) = [line for line in cli("status").stdout.splitlines() if line.split()[0] == job_id]
    return line


def test_a_job_past_its_time_limit_ends_timeout(cli, bare_repo) -> None:  # type: ignore[no-untyped-def]
    job_id = submit(cli, bare_repo, "over-time", "--time", "1", "--", "sleep", "300")
    job = wait_final(cli, job_id, timeout=150)  # Slurm limits are whole minutes: ~65 s here
    assert job["state"] == "TIMEOUT", job
    assert "decided by sacct" in job["reason"]
    assert "TIMEOUT" in status_line(cli, job_id)


def test_one_failed_task_under_srun_fails_the_job(cli, bare_repo) -> None:  # type: ignore[no-untyped-def]
    task = '[ "$SLURM_PROCID" = 1 ] && exit 3; sleep 30'
    job_id = submit(
        cli, bare_repo, "one-task-fails", "--cpus", "2", "--",
        "srun", "-n", "2", "-c", "1", "--kill-on-bad-exit=1", "sh", "-c", task,
    )  # fmt: skip
    job = wait_final(cli, job_id, timeout=60)
    assert job["state"] == "FAILED" and job["exit_code"] not in (0, None), job
    assert "FAILED" in status_line(cli, job_id)


def test_a_job_over_its_memory_is_out_of_memory(cli, bare_repo, testbed) -> None:  # type: ignore[no-untyped-def]
    config = testbed.run_as_root("scontrol", "show", "config")
    if "OverMemoryKill" not in config or "MEMORY" not in config.upper().split("SELECTTYPEPARAMETERS")[1][:40]:
        pytest.skip("this testbed enforces no memory limit (started before jobacct_gather/OverMemoryKill)")
    grow = "import time\nb = []\nfor _ in range(60):\n    b.append(bytearray(20 << 20)); time.sleep(0.2)\n"
    job_id = submit(cli, bare_repo, "too-big", "--mem", "60M", "--", "python3", "-c", grow)
    job = wait_final(cli, job_id, timeout=60)
    assert job["state"] == "OUT_OF_MEMORY", job
    assert "decided by log: oom_kill" in job["reason"]
    assert "OUT_OF_MEMORY" in status_line(cli, job_id)
