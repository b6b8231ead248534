"""The GUI thread never waits: an event-loop lag probe runs while the slow things happen.

Each test prints its max lag (`-s` shows it) so the figures can go into BENCHMARKS.md.

(a) deletes on a thread, (b) launches one job per turn of the event loop with no `waitForStarted`,
(c) never waits for a cluster worker thread to end.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect
from tests.jobs import conftest as jobs_conftest
from tests.lagprobe import LagProbe, spin_for, spin_until
from tests.silent_server import silent_server

make_engine = jobs_conftest.make_engine
wait_final = jobs_conftest.wait_final

LAG_LIMIT_MS = 50.0


def _assert_responsive(probe: LagProbe, load_before: float) -> None:
    """Max lag < 50 ms.  The lag is wall-clock time and needs a CPU to be free: unless the machine was
    quiet when the test began (load average under half the cores), other work — the rest of the suite
    included, on a 2-core machine — can keep the GUI thread waiting for a core whatever we do, so
    there the GUI thread's own work in one go is held to the limit instead, and the wall-clock figure
    is reported (BENCHMARKS.md has both)."""
    if load_before < (os.cpu_count() or 1) / 2:
        assert probe.max_lag_ms < LAG_LIMIT_MS, probe.summary()
    else:
        assert probe.max_busy_ms < LAG_LIMIT_MS, probe.summary()
        print(
            f"[lag] machine busy (load {load_before:.1f}): the GUI thread's own work asserted, not the wall-clock lag"
        )


FOLDER_FILES = 20_000
FILE_BYTES = 50 * 1024  # 20,000 x 50 KiB ~ 1 GB


def _fill(folder: Path, files: int, size: int) -> None:
    """Many small files with their blocks allocated (fallocate: no bytes written, still fast)."""
    per_dir = 500
    for i in range(files):
        sub = folder / "checkpoints" / f"shard-{i // per_dir:03d}"
        if i % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        fd = os.open(sub / f"part-{i:05d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)


@pytest.mark.slow  # making and removing ~1 GB: seconds to a minute, depending on the disk
def test_lag_deleting_a_job_with_a_1gb_run_folder(make_engine, qtbot, capsys) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    record = service.submit(JobSpec(name="big folder", argv=("true",)))
    assert wait_final(qtbot, service, record.id).state is JobState.COMPLETED
    run_dir = service.run_dir(record.id)
    assert run_dir is not None
    try:
        started = time.perf_counter()
        _fill(run_dir, FOLDER_FILES, FILE_BYTES)
        made_s = time.perf_counter() - started
        load = os.getloadavg()[0]
        with LagProbe() as probe:
            service.delete(record.id)
            gone = spin_until(lambda: not run_dir.exists(), timeout_s=120)
            spin_for(0.1)
        with capsys.disabled():
            print(
                f"\n[lag] delete of a job with {FOLDER_FILES:,} files x {FILE_BYTES // 1024} KiB "
                f"(made in {made_s:.1f} s): {probe.summary()}"
            )
        assert gone, "the run folder was not removed"
        with pytest.raises(KeyError):
            service.get(record.id)
        _assert_responsive(probe, load)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_lag_starting_twenty_jobs_at_once(make_engine, qapp, capsys) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=20)
    script = "import time; print('up', flush=True); time.sleep(60)"
    load = os.getloadavg()[0]
    with LagProbe() as probe:
        ids = [
            service.submit(JobSpec(name=f"sweep {i}", argv=(sys.executable, "-c", script))).id
            for i in range(20)
        ]
        all_running = spin_until(
            lambda: all(service.get(i).state is JobState.RUNNING for i in ids), timeout_s=60, check_ms=20
        )
    with capsys.disabled():
        print(f"\n[lag] 20 jobs submitted at once, max_concurrent_jobs=20: {probe.summary()}")
    assert all_running, [service.get(i).state for i in ids]
    _assert_responsive(probe, load)


def test_lag_changing_cluster_profiles_while_a_connection_hangs(qapp, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService

    with silent_server() as server:
        profile = ClusterProfile(
            name="hung",
            host="someone@127.0.0.1",
            port=server.port,
            workspace="/scratch/w",
            known_hosts=str(tmp_path / "known_hosts"),
        )
        clusters_file = tmp_path / "clusters.yaml"
        save_profiles(clusters_file, [profile])
        conn = connect(tmp_path / "db.sqlite3")
        service = ClusterService(conn, tmp_path / "runs", clusters_file, ssh_config=Path("/nonexistent"))
        try:
            # The worker is inside the SSH handshake, waiting for a banner that never comes.
            assert spin_until(lambda: len(server.accepted) == 1, timeout_s=10)
            spin_for(0.2)
            assert service.status("hung") == "connecting"
            changed = ClusterProfile(**{**profile.__dict__, "workspace": "/scratch/other"})
            renamed = ClusterProfile(**{**profile.__dict__, "name": "hung-too"})
            load = os.getloadavg()[0]
            with LagProbe() as probe:
                service.set_profiles([changed])  # a fresh worker, which hangs the same way
                assert spin_until(lambda: len(server.accepted) == 2, timeout_s=10)
                service.set_profiles([renamed])
                assert spin_until(lambda: len(server.accepted) == 3, timeout_s=10)
                service.set_profiles([])
                stopped = spin_until(lambda: service.workers_stopping() == 0, timeout_s=5)
            with capsys.disabled():
                print(f"\n[lag] cluster profiles changed 3x while the connection hangs: {probe.summary()}")
            _assert_responsive(probe, load)
            assert stopped, "the retired workers' threads did not end (the hanging connect was not cut)"
            assert service.profiles() == []
        finally:
            started = time.perf_counter()
            assert service.shutdown() == []
            assert time.perf_counter() - started < 1.0
            conn.close()
