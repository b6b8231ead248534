"""A submission is sent exactly once or visibly not sent, whenever the connection is cut.

The app reaches the testbed's sshd through a real TCP forwarder on loopback (tests/slurm/cut_proxy.py),
cut at each step of a submit: before connect, after the upload, right after sbatch was started, and
after sbatch answered but before the answer arrived (plus an sbatch that is still running when the cut
comes).  Each time the testbed holds exactly one SLURM job of that name or none (counted as root with
squeue and sacct), the store says so truly, and a restarted app never submits it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.slurm.client import SlurmClient
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect
from tests.slurm.cut_proxy import CutProxy

pytestmark = pytest.mark.slurm


def jobs_named(testbed, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    """SLURM job ids (array ids, not tasks) of every job of this name, in the queue or accounting."""
    queued = testbed.run_as_root("squeue", "-h", "-t", "all", "-n", name, "-o", "%F")
    accounted = testbed.run_as_root(
        "sacct", "-a", "-n", "-X", "-P", "--name", name, "-S", "now-1hour", "-o", "JobID"
    )
    return {line.split("_")[0] for line in (queued + accounted).split() if line.strip()}


@pytest.fixture
def proxy(testbed) -> Iterator[CutProxy]:  # type: ignore[no-untyped-def]
    with CutProxy(testbed.port) as cut:
        yield cut


@pytest.fixture
def proxied(testbed, proxy: CutProxy, tmp_path: Path):  # type: ignore[no-untyped-def]
    """clusters.yaml naming the testbed through the proxy (its host key recorded for the proxy's port)."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {testbed.host_key}\n")
    profile = testbed.profile(known_hosts, port=proxy.port)
    save_profiles(tmp_path / "clusters.yaml", [profile])
    return profile


class App:
    """A ClusterService on a store in tmp_path; `restart()` is the app closed and opened again."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list = []
        self.errors: list[str] = []
        self.service = self._make()

    def _make(self):  # type: ignore[no-untyped-def]
        from msquant_desktop.services.cluster_service import ClusterService

        service = ClusterService(
            connect(self.tmp_path / "db.sqlite3"),
            self.tmp_path / "runs",
            self.tmp_path / "clusters.yaml",
            ssh_config=Path("/nonexistent"),
        )
        service.sig_error.connect(self.errors.append)
        self.made.append(service)
        return service

    def restart(self) -> None:
        self.service.shutdown()
        self.service.repo.connection.close()
        self.service = self._make()

    def close(self) -> None:
        for service in self.made:
            service.shutdown()


@pytest.fixture
def app(proxied, tmp_path: Path) -> Iterator[App]:  # type: ignore[no-untyped-def]
    made = App(tmp_path)
    yield made
    made.close()


def submission(bare_repo, name: str) -> SlurmSubmission:  # type: ignore[no-untyped-def]
    repo, first, _ = bare_repo
    return SlurmSubmission(
        cluster="testbed", job_name=name, repo_url=repo, commit=first, command=("sleep", "30")
    )


def on_sbatch_started(monkeypatch, action: Callable[[], None]) -> None:  # type: ignore[no-untyped-def]
    """Run `action` on the worker thread right after sshd has started our sbatch command."""
    original = paramiko.Channel.exec_command

    def exec_command(channel: paramiko.Channel, command: str | bytes) -> None:
        original(channel, command)
        if "msquant-sbatch" in (command.decode() if isinstance(command, bytes) else command):
            action()

    monkeypatch.setattr(paramiko.Channel, "exec_command", exec_command)


def after_restart_nothing_is_sent(qtbot, app: App, testbed, job_id: int, name: str, jobs: set[str]) -> None:  # type: ignore[no-untyped-def]
    before = app.service.repo.get(job_id)
    app.restart()
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)
    qtbot.wait(4000)  # two polls at least
    after = app.service.repo.get(job_id)
    assert jobs_named(testbed, name) == jobs
    assert after.slurm_job_id == before.slurm_job_id
    if before.state.is_final:
        assert after.state is before.state
    for_user = [t.note for t in app.service.repo.transitions(job_id)]
    assert sum("sbatch: job" in note for note in for_user) <= 1, for_user


def cancel_and_wait(qtbot, app: App, job_id: int) -> None:  # type: ignore[no-untyped-def]
    app.service.cancel(job_id)
    qtbot.waitUntil(lambda: app.service.repo.get(job_id).state.is_final, timeout=30_000)


def test_cut_before_connect_is_not_sent(qtbot, app, proxy, testbed, bare_repo) -> None:  # type: ignore[no-untyped-def]
    proxy.refusing = True
    proxy.cut()
    app.service.reconnect("testbed")
    qtbot.waitUntil(lambda: app.service.status("testbed").startswith("failed"), timeout=15_000)
    job = app.service.submit(submission(bare_repo, "cut-connect"))
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).state.is_final, timeout=15_000)
    record = app.service.repo.get(job.id)
    assert record.state is JobState.FAILED_TO_START
    assert record.reason.startswith("not sent: cannot reach testbed"), record.reason
    assert record.result["submit_step"] == "stored"
    assert any(f"job {job.id}: not sent" in e for e in app.errors)
    assert jobs_named(testbed, name) == set()
    proxy.refusing = False
    after_restart_nothing_is_sent(qtbot, app, testbed, job.id, name, set())


def test_cut_after_upload_is_not_sent(qtbot, app, proxy, testbed, bare_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)
    original = SlurmClient.upload_script

    def upload_then_cut(client: SlurmClient, remote, script: str, files=None) -> None:  # type: ignore[no-untyped-def]
        original(client, remote, script, files)
        proxy.cut()

    monkeypatch.setattr(SlurmClient, "upload_script", upload_then_cut)
    job = app.service.submit(submission(bare_repo, "cut-upload"))
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).state.is_final, timeout=15_000)
    record = app.service.repo.get(job.id)
    assert record.state is JobState.FAILED_TO_START, record
    assert "before sbatch was run" in record.reason, record.reason
    run_dir = Path(testbed.workspace) / job.spec.meta["run_id"]
    assert (run_dir / "job.sbatch").is_file() and not (run_dir / "sbatch.started").exists()
    assert jobs_named(testbed, name) == set()
    monkeypatch.undo()
    after_restart_nothing_is_sent(qtbot, app, testbed, job.id, name, set())


def test_cut_after_sbatch_started_is_found_while_the_cluster_stays_away(  # type: ignore[no-untyped-def]
    qtbot, app, proxy, testbed, bare_repo, monkeypatch
) -> None:
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)

    def cut_and_stay_away() -> None:
        proxy.refusing = True
        proxy.cut()

    on_sbatch_started(monkeypatch, cut_and_stay_away)
    job = app.service.submit(submission(bare_repo, "cut-sbatch"))
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(lambda: any("answer was lost" in e for e in app.errors), timeout=15_000)
    # The job runs on the cluster while we cannot ask: not failed, still cancellable, for as long as it takes.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = app.service.repo.get(job.id)
        assert record.state is JobState.STARTING, record
        qtbot.wait(500)
    assert len(jobs_named(testbed, name)) == 1
    assert app.service.status("testbed").startswith("failed")
    monkeypatch.undo()
    proxy.refusing = False
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).slurm_job_id is not None, timeout=90_000)
    record = app.service.repo.get(job.id)
    assert jobs_named(testbed, name) == {record.slurm_job_id}
    assert record.state in (JobState.QUEUED, JobState.RUNNING)
    assert record.result["submit_step"] == "answered"
    assert any("submitted after all" in e for e in app.errors)
    after_restart_nothing_is_sent(qtbot, app, testbed, job.id, name, {record.slurm_job_id})
    cancel_and_wait(qtbot, app, job.id)
    assert app.service.repo.get(job.id).state is JobState.CANCELLED


def test_cut_before_the_answer_arrives_is_found(qtbot, app, proxy, testbed, bare_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)
    rc_files: list[Path] = []

    def cut_once_sbatch_answered() -> None:
        proxy.hold()  # sbatch's answer leaves sshd but never arrives
        deadline = time.monotonic() + 20
        while not any(p.exists() for p in rc_files) and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.cut()

    on_sbatch_started(monkeypatch, cut_once_sbatch_answered)
    job = app.service.submit(submission(bare_repo, "cut-answer"))
    rc_files.append(Path(testbed.workspace) / job.spec.meta["run_id"] / "sbatch.rc")
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).slurm_job_id is not None, timeout=60_000)
    record = app.service.repo.get(job.id)
    assert proxy.cuts == 1 and rc_files[0].read_text().strip() == "0"
    assert jobs_named(testbed, name) == {record.slurm_job_id}
    steps = [t.note for t in app.service.repo.transitions(job.id)]
    assert any("found in the queue" in note for note in steps), steps  # adopted by name, not answered
    monkeypatch.undo()
    after_restart_nothing_is_sent(qtbot, app, testbed, job.id, name, {record.slurm_job_id})
    cancel_and_wait(qtbot, app, job.id)


def test_cut_while_sbatch_still_runs_waits_for_it(qtbot, app, proxy, testbed, bare_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """sbatch is slow (a busy controller): the cut comes before it submitted anything.  The lookup
    sees sbatch still running on the cluster (its start recorded, no exit status) and waits, then
    finds the job it made."""
    slow_bin = testbed.dir / "slow-start-bin"  # the test user must reach it
    slow_bin.mkdir(exist_ok=True)
    for tool in ("squeue", "sacct", "scontrol", "scancel", "sinfo"):
        if not (slow_bin / tool).exists():
            (slow_bin / tool).symlink_to(f"/usr/bin/{tool}")
    (slow_bin / "sbatch").write_text('#!/bin/sh\nsleep 4\nexec /usr/bin/sbatch "$@"\n')
    (slow_bin / "sbatch").chmod(0o755)
    profile = app.service.profile("testbed")
    app.service.set_profiles([profile.__class__(**{**profile.__dict__, "slurm_bin": str(slow_bin)})])
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)
    on_sbatch_started(monkeypatch, proxy.cut)
    job = app.service.submit(submission(bare_repo, "cut-slow"))
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(
        lambda: "still running" in str(app.service.repo.get(job.id).result.get("submit_check")),
        timeout=15_000,
    )
    assert jobs_named(testbed, name) == set()  # nothing submitted yet, and nothing failed
    assert app.service.repo.get(job.id).state is JobState.STARTING
    monkeypatch.undo()
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).slurm_job_id is not None, timeout=60_000)
    record = app.service.repo.get(job.id)
    assert jobs_named(testbed, name) == {record.slurm_job_id}
    after_restart_nothing_is_sent(qtbot, app, testbed, job.id, name, {record.slurm_job_id})
    cancel_and_wait(qtbot, app, job.id)


def test_a_cancel_while_uploading_stops_it_before_sbatch(qtbot, app, testbed, bare_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)
    uploaded, go_on = threading.Event(), threading.Event()
    original = SlurmClient.upload_script

    def upload_and_wait(client: SlurmClient, remote, script: str, files=None) -> None:  # type: ignore[no-untyped-def]
        original(client, remote, script, files)
        uploaded.set()
        go_on.wait(10)

    monkeypatch.setattr(SlurmClient, "upload_script", upload_and_wait)
    job = app.service.submit(submission(bare_repo, "cancel-upload"))
    qtbot.waitUntil(uploaded.is_set, timeout=15_000)
    app.service.cancel(job.id)  # the user cancels while the script is on its way
    go_on.set()
    assert app.service.repo.get(job.id).state is JobState.CANCELLED
    qtbot.wait(1500)  # the worker goes on, finds it cancelled at its next step and stops
    record = app.service.repo.get(job.id)
    assert (
        record.state is JobState.CANCELLED and record.reason == "cancelled before it was sent to the cluster"
    )
    assert not (Path(testbed.workspace) / job.spec.meta["run_id"] / "sbatch.started").exists()
    assert jobs_named(testbed, job.spec.meta["slurm_name"]) == set()
    assert not any("not sent" in e for e in app.errors)  # no second, contradicting word


def test_a_job_whose_answer_was_lost_stays_cancellable(
    qtbot, app, proxy, testbed, bare_repo, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Cancelled while the cluster cannot be asked: CANCELLING until its id is found, then scancelled."""
    qtbot.waitUntil(lambda: app.service.status("testbed") == "connected", timeout=15_000)

    def cut_and_stay_away() -> None:
        proxy.refusing = True
        proxy.cut()

    on_sbatch_started(monkeypatch, cut_and_stay_away)
    job = app.service.submit(submission(bare_repo, "cut-cancel"))
    name = job.spec.meta["slurm_name"]
    qtbot.waitUntil(lambda: any("answer was lost" in e for e in app.errors), timeout=15_000)
    monkeypatch.undo()
    app.service.cancel(job.id)
    assert app.service.repo.get(job.id).state is JobState.CANCELLING
    qtbot.wait(3000)
    assert app.service.repo.get(job.id).state is JobState.CANCELLING  # still unknown: not ended, not failed
    proxy.refusing = False
    qtbot.waitUntil(lambda: app.service.repo.get(job.id).state.is_final, timeout=90_000)
    record = app.service.repo.get(job.id)
    assert record.state is JobState.CANCELLED and record.slurm_job_id, record
    assert jobs_named(testbed, name) == {record.slurm_job_id}
    assert testbed.run_as_root("squeue", "-h", "-j", record.slurm_job_id, "-o", "%T").strip() in (
        "",
        "CANCELLED",
    )
