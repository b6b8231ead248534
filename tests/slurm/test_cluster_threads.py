"""Cluster worker threads end without the GUI waiting for them, and never keep the app alive.

No testbed needed: loopback servers that accept and never answer (a hung sshd) or cannot even be
connected to (SYNs dropped) stand in for broken clusters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect
from tests.conftest import REPO_ROOT
from tests.lagprobe import spin_for, spin_until
from tests.silent_server import FullBacklogServer, silent_server


def _profile(name: str, port: int, tmp_path: Path) -> ClusterProfile:
    return ClusterProfile(
        name=name,
        host="someone@127.0.0.1",
        port=port,
        workspace="/scratch/w",
        known_hosts=str(tmp_path / "known_hosts"),
    )


def test_a_submit_waiting_on_a_hung_connection_is_not_sent_later(qapp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The profile changes while the submit waits on a hung connection: the old worker stops at once,
    the job is visibly not sent (FAILED_TO_START with the reason) and the next worker does not send it
    behind the user's back."""
    from msquant_desktop.services.cluster_service import ClusterService

    with silent_server() as server:
        profile = _profile("hung", server.port, tmp_path)
        save_profiles(tmp_path / "clusters.yaml", [profile])
        conn = connect(tmp_path / "db.sqlite3")
        service = ClusterService(conn, tmp_path / "runs", tmp_path / "clusters.yaml", Path("/nonexistent"))
        errors: list[str] = []
        service.sig_error.connect(errors.append)
        try:
            assert spin_until(lambda: len(server.accepted) == 1, timeout_s=10)
            job = service.submit(
                SlurmSubmission(
                    cluster="hung",
                    job_name="train",
                    repo_url="https://example.org/r.git",
                    commit="0" * 40,
                    command=("python", "train.py"),
                )
            )
            started = time.perf_counter()
            service.set_profiles([ClusterProfile(**{**profile.__dict__, "workspace": "/scratch/new"})])
            assert time.perf_counter() - started < 0.2  # no waiting for the hung worker
            assert spin_until(lambda: service.workers_stopping() == 0, timeout_s=3)
            assert spin_until(lambda: service.repo.get(job.id).state is JobState.FAILED_TO_START, timeout_s=3)
            record = service.repo.get(job.id)
            assert "profile changed" in record.reason and "sbatch never ran" in record.reason
            assert record.result["submit_step"] == "stored"
            assert len(errors) == 1 and f"job {job.id} was not submitted" in errors[0]
            # The next worker connects (a second handshake) and leaves the job alone.
            assert spin_until(lambda: len(server.accepted) >= 2, timeout_s=5)
            spin_for(0.3)
            assert service.repo.get(job.id).state is JobState.FAILED_TO_START
        finally:
            assert service.shutdown() == []
            # Let the retired workers' queued clean-up run before the service goes away, as it does in
            # the app (which keeps its service until the process ends).
            spin_for(0.5)
            conn.close()


def test_the_app_exits_promptly_with_a_hung_and_an_unreachable_cluster(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real app: one cluster never answers the SSH handshake (cut at once), the other is stuck
    in a TCP connect nothing can interrupt (left behind); the app still exits, cleanly and soon."""
    stuck = FullBacklogServer()
    try:
        with silent_server() as hung:
            paths = resolve_paths(tmp_path / "data").ensure()
            save_profiles(
                paths.clusters_file,
                [_profile("hung", hung.port, tmp_path), _profile("stuck", stuck.port, tmp_path)],
            )
            env = {
                **os.environ,
                "QT_QPA_PLATFORM": "offscreen",
                "MSQUANT_STARTUP_PROBE": "1",  # quit right after the window is shown
                "PYTHONPATH": str(REPO_ROOT),
            }
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "msquant_desktop", "--data-dir", str(tmp_path / "data")],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            elapsed = time.perf_counter() - started
    finally:
        stuck.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "QThread: Destroyed" not in proc.stderr
    log_text = paths.log_file.read_text()
    assert "exiting with threads still running: cluster-stuck" in log_text, log_text[-2000:]
    assert "cluster-hung" not in log_text.split("exiting with threads still running")[-1].splitlines()[0]
    startup = float(proc.stdout.split("startup-to-window-shown")[1].split()[0])
    assert elapsed - startup < 5.0, (elapsed, startup)  # shutdown waits 2 s + 1 s at most
