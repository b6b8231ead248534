"""Faults the lifecycle must survive: a claimer that dies, a claim for someone else's job, a supervisor
that dies with no app open, a job that ends before anyone looks.  Real processes, a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.settings import Settings
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import child_env, marked, wait_for

# A claimer that takes the head of the queue and then hangs before it launches anything — killed
# there, it is `jobs run` (or an app) dying between the claim and the supervisor's start.
CLAIM_AND_HANG = """
import sys, time
from pathlib import Path
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
repo = JobRepository(connect(Path(sys.argv[1])))
record = lifecycle.claim(repo, 4, 0, lifecycle.ProcessIdentity.of_this_process())
print(record.id, flush=True)
time.sleep(300)
"""


def _jobs_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _claim_then_die(database: Path) -> tuple[int, int]:
    claimer = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, str(database)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert claimer.stdout is not None
    job_id = int(claimer.stdout.readline())
    claimer.send_signal(signal.SIGKILL)
    claimer.wait()
    return job_id, claimer.pid


def test_a_killed_claimers_job_is_settled_by_whoever_looks_next(app_paths, data_dir, make_engine) -> None:  # type: ignore[no-untyped-def]
    repo = JobRepository(connect(app_paths.database))
    first = repo.create(JobSpec(name="claimed by a CLI that dies", argv=("true",)))
    job_id, pid = _claim_then_die(app_paths.database)
    assert job_id == first.id and repo.get(job_id).state is JobState.STARTING
    assert repo.get(job_id).claimer_pid == pid

    listing = json.loads(_jobs_cli(data_dir, "list", "--json").stdout)["jobs"]  # the next CLI read settles it
    assert [j["state"] for j in listing if j["id"] == job_id] == ["FAILED_TO_START"]
    expected = f"the process starting it (pid {pid}) ended before its run folder was made"
    assert repo.get(job_id).reason == expected

    second = repo.create(JobSpec(name="claimed by a CLI that dies, seen by the app", argv=("true",)))
    job_id, pid = _claim_then_die(app_paths.database)
    assert job_id == second.id
    service = make_engine()  # an app that starts now settles it the same way
    assert service.get(job_id).state is JobState.FAILED_TO_START
    assert (
        service.get(job_id).reason
        == f"the process starting it (pid {pid}) ended before its run folder was made"
    )


def test_a_live_claimers_job_is_left_alone(app_paths) -> None:  # type: ignore[no-untyped-def]
    repo = JobRepository(connect(app_paths.database))
    record = repo.create(JobSpec(name="being launched", argv=("true",)))
    claimed = lifecycle.claim(repo, 1, 0, lifecycle.ProcessIdentity.of_this_process())
    assert claimed is not None and claimed.id == record.id
    assert isinstance(lifecycle.inspect(repo, claimed), lifecycle.Pending)
    assert lifecycle.settle_unwatched(repo) == [] and repo.get(record.id).state is JobState.STARTING


def test_a_start_this_process_gave_up_on_is_settled_not_waited_for(app_paths) -> None:  # type: ignore[no-untyped-def]
    """A claim by this very process is Pending only while it is being started: once its attempt is
    over (say its FAILED_TO_START could not be written on a full disk), whoever looks settles it,
    instead of `jobs run` waiting for its own claim forever."""
    repo = JobRepository(connect(app_paths.database))
    record = repo.create(JobSpec(name="its start failed here", argv=("true",)))
    claimed = lifecycle.claim(repo, 1, 0, lifecycle.ProcessIdentity.of_this_process())
    assert claimed is not None and isinstance(lifecycle.inspect(repo, claimed), lifecycle.Pending)
    lifecycle.done_starting(claimed)
    found = lifecycle.inspect(repo, repo.get(claimed.id))
    assert isinstance(found, lifecycle.Settled) and found.record.state is JobState.FAILED_TO_START
    assert (
        found.record.reason
        == f"the process starting it (pid {os.getpid()}) gave up before its run folder was made"
    )
    assert repo.get(record.id).state is JobState.FAILED_TO_START


def test_a_supervisor_that_announced_itself_ran_the_job_even_if_the_store_never_heard(
    app_paths, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """RUNNING never reached the store (a full disk), the supervisor wrote supervisor.json and is
    gone: the job ran, so it is LOST (its end unknown), never FAILED_TO_START."""
    from msquant_desktop.supervisor.runner import supervise  # noqa: F401 - the real file names

    repo = JobRepository(connect(app_paths.database))
    record = repo.create(JobSpec(name="ran unrecorded", argv=("true",)))
    job_id, claimer_pid = _claim_then_die(app_paths.database)
    assert job_id == record.id
    run_dir = app_paths.runs_dir / "ran-unrecorded"
    run_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run_dir / "supervisor.json").write_text(json.dumps({"pid": gone.pid, "start_time": 1.0, "at": "x"}))
    repo.update(job_id, run_dir=str(run_dir))
    found = lifecycle.inspect(repo, repo.get(job_id))
    assert isinstance(found, lifecycle.Settled) and found.record.state is JobState.LOST
    assert found.record.reason.startswith("its supervisor vanished without recording the job's end")


def test_a_claim_for_ones_own_job_never_takes_another(app_paths) -> None:  # type: ignore[no-untyped-def]
    """`jobs run` claims only its own job: whether it heads the queue is decided in the claim's own
    transaction, so no pause between a look and a claim can hand it someone else's job."""
    repo = JobRepository(connect(app_paths.database))
    others = repo.create(JobSpec(name="another CLI's job", argv=("true",)))
    mine = repo.create(JobSpec(name="mine", argv=("true",)))
    me = lifecycle.ProcessIdentity.of_this_process()
    assert lifecycle.claim(repo, 4, 0, me, only_job=mine.id) is None
    assert repo.get(others.id).state is JobState.QUEUED and repo.get(mine.id).state is JobState.QUEUED
    claimed = lifecycle.claim(repo, 4, 0, me, only_job=others.id)
    assert claimed is not None and claimed.id == others.id and claimed.state is JobState.STARTING
    assert lifecycle.claim(repo, 4, 0, me, only_job=mine.id) is not None  # now it heads the queue


def test_jobs_list_settles_a_job_whose_supervisor_was_killed_with_no_app(data_dir, app_paths) -> None:  # type: ignore[no-untyped-def]
    save_settings(app_paths.settings_file, Settings(cancel_grace_seconds=0.5))
    started = _jobs_cli(data_dir, "run", "--", sys.executable, "-c", "import time; time.sleep(300)")
    assert started.returncode == 0, started.stderr
    job_id = int(started.stdout.split()[1])
    repo = JobRepository(connect(app_paths.database))
    assert wait_for(lambda: repo.get(job_id).pid is not None, timeout=15)
    record = repo.get(job_id)
    os.kill(int(record.pid or 0), signal.SIGKILL)
    assert wait_for(
        lambda: not Path(f"/proc/{record.pid}").exists() or _zombie(int(record.pid or 0)), timeout=5
    )

    listing = json.loads(_jobs_cli(data_dir, "list", "--json").stdout)["jobs"]
    assert [j["state"] for j in listing if j["id"] == job_id] == ["LOST"]
    assert "supervisor vanished" in repo.get(job_id).reason
    assert marked(Path(str(record.run_dir))) == []  # its orphaned process was stopped too


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_job_that_ends_at_once_still_has_its_running_step_and_start_time(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=4)
    ids = [service.submit(JobSpec(name=f"instant {i}", argv=("true",))).id for i in range(4)]
    for job_id in ids:
        final = wait_final(qtbot, service, job_id)
        assert final.state is JobState.COMPLETED
        assert final.started_at is not None and final.started_at <= final.finished_at
        assert [t.new for t in service.transitions(job_id)] == [
            JobState.QUEUED,
            JobState.STARTING,
            JobState.RUNNING,
            JobState.COMPLETED,
        ]


def test_a_job_cancelled_while_it_is_starting_is_stopped_before_its_command_gets_far(
    make_engine, qtbot, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The cancel lands before the supervisor has recorded RUNNING: the supervisor finds the job
    CANCELLING when it does, and stops it at once instead of letting it run."""
    service = make_engine()
    flag = tmp_path / "ran"
    record = service.submit(JobSpec(name="cancelled at once", argv=("sh", "-c", f"sleep 1; touch {flag}")))
    deadline = time.monotonic() + 15
    while service.get(record.id).state is JobState.QUEUED and time.monotonic() < deadline:
        # The launcher thread claims it; the event loop does not turn here, so the app cannot
        # mark it RUNNING from the supervisor's first message meanwhile.
        time.sleep(0.002)
    assert service.get(record.id).state is JobState.STARTING and service.get(record.id).pid is None
    service.cancel(record.id)
    assert service.get(record.id).state is JobState.CANCELLING
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.CANCELLED
    assert not wait_for(flag.exists, timeout=2.0)  # the command never got to its second step
