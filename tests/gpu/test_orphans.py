"""The orphan finder and clean-up on real processes, against a real store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from msquant_desktop.domain.gpu import FindingKind, GpuProcess, GpuReading, GpuSnapshot, ProcessDetails
from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.markers import RUN_DIR_ENV
from msquant_desktop.procs.identity import start_time
from msquant_desktop.procs.kill import stop_tree
from msquant_desktop.procs.scan import read_marker, scan_marked_processes
from msquant_desktop.services.gpu_doctor import clean_up, diagnose, find_orphans
from msquant_desktop.store import JobRepository, connect
from tests.gpu.procs_helpers import Spawned, kill_quietly, marker, running, spawn_reparented


@pytest.fixture
def spawned() -> Iterator[list[Spawned]]:
    """Every process a test starts; whatever is left is killed afterwards."""
    started: list[Spawned] = []
    yield started
    kill_quietly([pid for s in started for pid in s.pids()])


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[JobRepository]:
    conn = connect(tmp_path / "store.sqlite3")
    yield JobRepository(conn)
    conn.close()


def _job(repo: JobRepository, state: JobState, supervisor_pid: int | None) -> int:
    job = repo.create(JobSpec(name="quantize", argv=("python", "-m", "x")))
    repo.transition(job.id, JobState.RUNNING, pid=supervisor_pid)
    if state is not JobState.RUNNING:
        repo.transition(job.id, state)
    return job.id


def test_reparented_orphans_are_found_and_cleaned_and_nothing_else_is_touched(
    tmp_path: Path, repo: JobRepository, spawned: list[Spawned], request: pytest.FixtureRequest
) -> None:
    store = tmp_path / "store.sqlite3"
    # 1. job finished, its worker (with a child, ignoring SIGTERM) lives on
    done_job = _job(repo, JobState.COMPLETED, None)
    done = spawn_reparented(
        tmp_path, marker(done_job, store, tmp_path / "r1"), ignore_term=True, with_child=True
    )
    # 2. job still RUNNING in the store, but the supervisor recorded for it is dead
    stand_in_for_a_dead_supervisor = spawn_reparented(tmp_path, marker(0, store, tmp_path / "r2"))
    spawned.append(stand_in_for_a_dead_supervisor)
    lost_job = _job(repo, JobState.RUNNING, stand_in_for_a_dead_supervisor.supervisor_pid)
    lost = spawn_reparented(tmp_path, marker(lost_job, store, tmp_path / "r2"))
    repo.update(lost_job, pid=lost.supervisor_pid)
    # 3. an active job whose supervisor is alive: not an orphan.  The stand-in supervisor is recorded
    # the way the engine records a real one: start time in seconds after boot, run-folder marker.
    stand_in = subprocess.Popen(
        ["sleep", "600"], env={**os.environ, RUN_DIR_ENV: str(tmp_path / "r3")}, start_new_session=True
    )
    request.addfinalizer(lambda: (stand_in.kill(), stand_in.wait()))
    live_job = _job(repo, JobState.RUNNING, stand_in.pid)
    repo.update(live_job, pid_start_time=start_time(stand_in.pid), run_dir=str(tmp_path / "r3"))
    live = spawn_reparented(tmp_path, marker(live_job, store, tmp_path / "r3"))
    # 4. an unrelated process of the same user, also re-parented: never touched
    unrelated = spawn_reparented(tmp_path, None)
    spawned.extend([done, lost, live, unrelated])

    for s in (done, lost, live, unrelated):
        assert not running(s.supervisor_pid), "the supervisor must be gone"
        assert psutil.Process(s.pid).ppid() != s.supervisor_pid, "re-parented to init or a subreaper"
    assert read_marker(done.pid) is not None and read_marker(done.pid).job_id == done_job  # type: ignore[union-attr]
    assert read_marker(unrelated.pid) is None
    scanned = {p.pid for p in scan_marked_processes()}
    assert {done.pid, done.child_pid, lost.pid, live.pid} <= scanned and unrelated.pid not in scanned

    ours = {done.pid, done.child_pid, lost.pid, live.pid, unrelated.pid}
    findings = {f.pid: f for f in find_orphans() if f.pid in ours}
    assert set(findings) == {done.pid, lost.pid}  # the child goes with its parent's tree
    assert f"job {done_job} is completed" in findings[done.pid].message
    assert "supervisor" in findings[lost.pid].message and findings[lost.pid].cleanable

    outcomes = {o.pid: o for o in clean_up(list(findings.values()), grace_s=0.5)}
    assert set(outcomes[done.pid].ended) == {done.pid, done.child_pid}
    assert outcomes[done.pid].killed  # it ignored SIGTERM, so SIGKILL after the grace period
    assert outcomes[lost.pid].ended == (lost.pid,) and not outcomes[lost.pid].killed
    for pid in (done.pid, done.child_pid, lost.pid):
        assert not running(pid)
    assert running(live.pid) and running(unrelated.pid)


def test_stop_tree_refuses_recycled_pids_and_itself(tmp_path: Path, spawned: list[Spawned]) -> None:
    other = spawn_reparented(tmp_path, None)
    spawned.append(other)
    created = start_time(other.pid)
    assert created is not None
    outcome = stop_tree(other.pid, created - 100.0, grace_s=0.1)
    assert "another process" in outcome.skipped and running(other.pid)
    assert "refused" in stop_tree(os.getpid(), None).skipped
    assert "refused" in stop_tree(1, None).skipped
    assert stop_tree(other.pid, created, grace_s=2).ended == (other.pid,)
    assert stop_tree(other.pid, created).skipped == "already gone"


def test_doctor_reports_reparented_gpu_holders_unowned_memory_and_throttling(
    tmp_path: Path, spawned: list[Spawned]
) -> None:
    holder = spawn_reparented(tmp_path, None)
    spawned.append(holder)
    gpu0 = GpuSnapshot(
        0, "g", "u", memory_used_bytes=3 * 2**30, processes=(GpuProcess(holder.pid, 0, 2**30),)
    )
    gpu1 = GpuSnapshot(1, "g", "u", memory_used_bytes=5 * 2**30, throttle_mask=0x20 | 0x1)
    gpu2 = GpuSnapshot(2, "g", "u", error="GPU is lost")
    ppid = psutil.Process(holder.pid).ppid()
    details = (ProcessDetails(holder.pid, 0, 2**30, "me", "python", ppid, None),)
    report = diagnose(GpuReading(0.0, (gpu0, gpu1, gpu2), None, processes=details), marked=[])
    kinds = {(f.kind, f.gpu_index) for f in report.findings}
    assert (FindingKind.UNOWNED_MEMORY, 1) in kinds and (FindingKind.THROTTLING, 1) in kinds
    assert (FindingKind.GPU_LOST, 2) in kinds and (FindingKind.UNOWNED_MEMORY, 0) not in kinds
    throttling = next(f for f in report.findings if f.kind is FindingKind.THROTTLING)
    assert throttling.message == "GPU 1 is slowed down: thermal (software)"
    holders = [f for f in report.findings if f.kind is FindingKind.REPARENTED_GPU_HOLDER]
    if ppid == 1:
        assert [f.pid for f in holders] == [holder.pid] and holders[0].cleanable
    else:  # adopted by a subreaper (e.g. a container's init shim), not by init itself
        assert holders == []


def test_a_job_running_under_a_real_supervisor_is_never_called_an_orphan(data_dir: Path) -> None:
    """The doctor decides "supervisor alive" the way the engine recorded it (start time after boot)."""
    from tests.jobs.helpers import child_env

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs", *args]
        return subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=60)

    run = cli("run", "--", "sh", "-c", "sleep 60 & wait")
    assert run.returncode == 0, run.stderr
    job_id = int(run.stdout.split()[1])

    def this_jobs() -> list[int]:
        # Job ids repeat across stores (other tests, other users of the machine): match the store too.
        return [
            p.pid
            for p in scan_marked_processes()
            if p.marker.job_id == job_id and str(p.marker.store).startswith(str(data_dir))
        ]

    try:
        deadline = time.monotonic() + 15
        ours: list[int] = []
        while time.monotonic() < deadline and len(ours) < 2:  # the shell and its sleep
            ours = this_jobs()
            time.sleep(0.05)
        assert len(ours) >= 2, "the job's processes carry the marker"
        assert [f for f in find_orphans() if f.pid in ours] == []
    finally:
        assert cli("cancel", str(job_id)).returncode == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and this_jobs():
        time.sleep(0.05)
    assert this_jobs() == []
