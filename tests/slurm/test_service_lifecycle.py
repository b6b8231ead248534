"""ClusterService end to end on the real testbed: submit at a pinned commit, track to the true end
(COMPLETED, FAILED with code, TIMEOUT, CANCELLED), overrides verbatim, tracking resumes after restart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect

pytestmark = pytest.mark.slurm

OVERRIDES = ("model.name=a b", "cmd=x; rm -rf /tmp/nothing", "sub=$(id -un)", "quote='single' \"double\"")


def make_service(db: Path, data: Path):  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService

    return ClusterService(connect(db), data / "runs", data / "clusters.yaml", ssh_config=Path("/nonexistent"))


def wait_final(qtbot, service, job_id: int, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: service.repo.get(job_id).state.is_final, timeout=int(timeout_s * 1000))


@pytest.fixture
def services():  # type: ignore[no-untyped-def]
    """Every ClusterService a test makes is shut down (threads joined) even when the test fails."""
    made: list = []
    yield made
    for service in made:
        service.shutdown()


def test_jobs_are_tracked_to_their_true_end(qtbot, testbed, profile, bare_repo, tmp_path, services) -> None:  # type: ignore[no-untyped-def]
    # No time-limit warning: the time-limited job must still run at the restart and meet SLURM's limit.
    save_profiles(tmp_path / "clusters.yaml", [dataclasses.replace(profile, signal_lead_s=0)])
    service = make_service(tmp_path / "db.sqlite3", tmp_path)
    services.append(service)
    qtbot.waitUntil(lambda: service.status("testbed") == "connected", timeout=10_000)
    repo_path, first, _second = bare_repo
    base = SlurmSubmission(
        cluster="testbed", job_name="x", repo_url=repo_path, commit=first, command=("python3", "main.py")
    )

    def submit(**changes: object) -> int:
        return service.submit(SlurmSubmission(**{**base.__dict__, **changes})).id

    # The time-limited one first: SLURM's limit is whole minutes, so it is the slowest.
    timeout_id = submit(job_name="limited", command=("sleep", "300"), time_limit="1")
    # An h100 blocker makes the pinned job wait (PENDING) before it runs.
    blocker_id = submit(job_name="blocker", command=("sleep", "4"), partition="big", gpu_type="h100", gpus=2)
    pinned_id = submit(job_name="pinned", overrides=OVERRIDES, partition="big", gpu_type="h100", gpus=1)
    failing_id = submit(job_name="failing", command=("python3", "main.py", "3"))
    cancel_id = submit(job_name="cancelme", command=("sleep", "300"))
    logs: dict[int, str] = {}
    service.sig_log_text.connect(
        lambda job_id, text, _done: logs.__setitem__(job_id, logs.get(job_id, "") + text)
    )

    qtbot.waitUntil(lambda: service.repo.get(cancel_id).state is JobState.RUNNING, timeout=20_000)
    statuses: list[str] = []
    service.sig_cluster_status.connect(lambda _name, status: statuses.append(status))
    service.drop_connection("testbed")  # the network fails under the worker: it reconnects and goes on
    service.cancel(cancel_id)
    for job_id in (blocker_id, pinned_id, failing_id, cancel_id):
        wait_final(qtbot, service, job_id, 40)

    assert "connecting" in statuses and statuses[-1] == "connected"  # it reconnected by itself
    pinned = service.repo.get(pinned_id)
    steps = [t.new for t in service.repo.transitions(pinned_id)]
    assert steps == [JobState.STARTING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED]
    assert pinned.slurm_job_id and pinned.exit_code == 0
    log_text = Path(pinned.run_dir or "").joinpath("slurm.log").read_text()
    assert log_text == logs[pinned_id]
    tagged = Path(pinned.run_dir or "").joinpath("output.log").read_text().splitlines()
    assert tagged == ["O " + line for line in log_text.splitlines()]  # the Jobs tab's log format
    assert f"at commit {first}" in log_text and "VERSION first" in log_text  # not the newer commit
    argv_line = next(line for line in log_text.splitlines() if line.startswith("ARGV "))
    assert tuple(json.loads(argv_line[5:])) == OVERRIDES  # verbatim: no shell ran them
    assert Path(pinned.run_dir or "").name.endswith(pinned.spec.meta["run_id"].rsplit("_", 1)[-1])
    assert "git checkout" in Path(pinned.run_dir or "").joinpath("job.sbatch").read_text()

    failing = service.repo.get(failing_id)
    assert (failing.state, failing.exit_code) == (JobState.FAILED, 3)
    assert service.repo.get(cancel_id).state is JobState.CANCELLED
    assert service.repo.get(blocker_id).state is JobState.COMPLETED

    # Restart: a new service on the same store picks the running job up and follows it to TIMEOUT.
    assert service.repo.get(timeout_id).state is JobState.RUNNING
    service.shutdown()
    service.repo.connection.close()
    restarted = make_service(tmp_path / "db.sqlite3", tmp_path)
    services.append(restarted)
    wait_final(qtbot, restarted, timeout_id, 150)
    limited = restarted.repo.get(timeout_id)
    assert limited.state is JobState.TIMEOUT, limited
