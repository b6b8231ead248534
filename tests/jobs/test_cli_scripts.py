"""The CLI as scripts use it, with no app running: exit statuses of the waiting commands, the queue
moving on by itself (each supervisor starts the next job), `--after` dependencies, closed pipes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.settings import Settings
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
from tests.jobs.helpers import child_env, wait_for


def _cli(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _limit(app_paths, n: int) -> None:  # type: ignore[no-untyped-def]
    save_settings(app_paths.settings_file, Settings(max_concurrent_jobs=n, cancel_grace_seconds=0.5))


def _id(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[1])


def test_three_queued_jobs_run_in_order_under_the_limit_with_no_app_and_no_cli_left(
    app_paths, data_dir
) -> None:  # type: ignore[no-untyped-def]
    _limit(app_paths, 1)
    stamps = data_dir / "stamps"
    ids = [
        _id(
            _cli(
                data_dir,
                "add",
                "--name",
                f"n{i}",
                "--",
                "sh",
                "-c",
                f"echo start{i} >> {stamps}; sleep 0.4; echo end{i} >> {stamps}",
            )
        )
        for i in range(3)
    ]
    # Every `jobs add` has exited: only the supervisors are left to start the next jobs.
    conn = connect(app_paths.database)
    repo = JobRepository(conn)
    try:
        assert wait_for(lambda: all(repo.get(i).state.is_final for i in ids), timeout=40, interval=0.1)
        records = [repo.get(i) for i in ids]
    finally:
        conn.close()
    assert [r.state for r in records] == [JobState.COMPLETED] * 3
    assert stamps.read_text().split() == [
        "start0",
        "end0",
        "start1",
        "end1",
        "start2",
        "end2",
    ]  # one at a time
    for before, after in zip(records, records[1:], strict=False):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at


def test_waiting_commands_exit_with_the_jobs_status(app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    _limit(app_paths, 4)
    failed = _cli(data_dir, "run", "--wait", "--", "sh", "-c", "echo out; exit 7")
    assert failed.returncode == 7, failed.stderr
    job = int(failed.stdout.split()[1])
    follow = _cli(data_dir, "logs", str(job), "--follow")
    assert follow.returncode == 7 and follow.stdout == "out\n"
    killed = _id(_cli(data_dir, "add", "--", "sh", "-c", "kill -9 $$"))
    ok = _id(_cli(data_dir, "add", "--", "true"))
    waited = _cli(data_dir, "wait", str(ok), str(killed), "--json")
    assert waited.returncode == 137, waited.stderr  # 128 + SIGKILL, as sh reports it
    data = json.loads(waited.stdout)
    assert data["schema"] == 1
    assert [(j["id"], j["state"], j["exit_status"]) for j in data["jobs"]] == [
        (ok, "COMPLETED", 0),
        (killed, "KILLED", 137),
    ]

    sleeper = _id(_cli(data_dir, "run", "--", "sleep", "30"))  # returns once its supervisor runs
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "msquant_desktop",
            "--data-dir",
            str(data_dir),
            "jobs",
            "logs",
            str(sleeper),
            "-f",
        ],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    assert _cli(data_dir, "cancel", str(sleeper)).returncode == 0
    assert waiter.wait(timeout=30) == 125  # cancelled
    missing = _cli(data_dir, "wait", "999")
    assert missing.returncode == 1 and "no job with id 999" in missing.stderr


def test_after_waits_for_a_dependency_and_fails_when_it_fails(app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    _limit(app_paths, 4)
    go = data_dir / "go"
    first = _id(_cli(data_dir, "add", "--", "sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3"))
    dependent = _cli(data_dir, "add", "--after", str(first), "--", "true")
    assert (
        "queued after job" in dependent.stdout and "waits in the queue" in dependent.stdout
    )  # a free slot, but not its turn
    dep_id = _id(dependent)
    free = _id(_cli(data_dir, "add", "--", "true"))  # behind it in the queue, yet not held up
    assert _cli(data_dir, "wait", str(free)).returncode == 0
    go.touch()
    waited = _cli(data_dir, "wait", str(dep_id))
    assert waited.returncode == 127 and f"job {first}, which it waits for, ended FAILED" in waited.stdout
    assert (
        _cli(data_dir, "run", "--wait", "--after", str(free), "--", "sh", "-c", "exit 0").returncode == 0
    )  # it completed
    refused = _cli(data_dir, "add", "--after", "999", "--", "true")
    assert refused.returncode == 2 and "--after 999: no local job" in refused.stderr


def test_a_closed_pipe_ends_every_output_quietly(app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    _limit(app_paths, 4)
    job = int(_cli(data_dir, "run", "--wait", "--", "sh", "-c", "seq 1 100000").stdout.split()[1])
    base = f"{sys.executable} -m msquant_desktop --data-dir {data_dir}"
    for command in ("jobs logs {job}", "jobs logs {job} --follow", "--help"):
        shell = f"{base} {command.format(job=job)} 2>&1 | head -1; exit ${{PIPESTATUS[0]}}"
        done = subprocess.run(
            ["bash", "-c", shell], env=child_env(), capture_output=True, text=True, timeout=60
        )
        assert done.stdout.count("\n") == 1 and "Traceback" not in done.stdout + done.stderr, command
        assert done.returncode in (0, 141), (command, done.returncode)  # 141: 128 + SIGPIPE, as for ls


APP_THEN_GONE = """
import sys
from PySide6.QtCore import QCoreApplication, QTimer
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.services.job_service import JobService
from msquant_desktop.services.settings_service import SettingsService
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository

app = QCoreApplication(sys.argv[:1])
paths = resolve_paths(sys.argv[1]).ensure()
service = JobService(JobRepository(connect(paths.database)), paths, SettingsService(paths.settings_file))
service.start()
stamps = sys.argv[2]
ids = [
    service.submit(JobSpec(name=f"a{i}", argv=("sh", "-c", f"sleep {1.5 if i == 0 else 0.2}; echo {i} >> {stamps}"))).id
    for i in range(3)
]
def check():
    if service.get(ids[0]).state is JobState.RUNNING:
        print("READY", *ids, flush=True)
timer = QTimer()
timer.timeout.connect(check)
timer.start(20)
app.exec()
"""


def test_jobs_the_app_queued_run_after_the_app_is_gone(app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    _limit(app_paths, 1)
    stamps = data_dir / "stamps"
    app = subprocess.Popen(
        [sys.executable, "-c", APP_THEN_GONE, str(data_dir), str(stamps)],
        env=child_env(QT_QPA_PLATFORM="offscreen"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert app.stdout is not None
    ready = app.stdout.readline().split()
    app.kill()  # the window is closed (here: gone for good) while the first job runs
    app.wait(timeout=30)
    assert ready and ready[0] == "READY", ready
    ids = [int(i) for i in ready[1:]]
    conn = connect(app_paths.database)
    repo = JobRepository(conn)
    try:
        assert repo.get(ids[1]).state is JobState.QUEUED  # nobody else is left to start it...
        assert wait_for(lambda: all(repo.get(i).state.is_final for i in ids), timeout=40, interval=0.1)
        assert [repo.get(i).state for i in ids] == [
            JobState.COMPLETED
        ] * 3  # ...but the first job's supervisor
    finally:
        conn.close()
    assert stamps.read_text().split() == ["0", "1", "2"]


def test_one_job_has_one_shape_in_every_command(app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.domain.jobs import JobSpec, JobTarget

    conn = connect(app_paths.database)
    repo = JobRepository(conn)
    spec = JobSpec(name="remote", argv=("true",), target=JobTarget.SLURM, cluster="c", meta={"after": [1]})
    job = repo.create(spec, JobState.QUEUED, "test")
    repo.transition(job.id, JobState.STARTING, "test")
    repo.transition(job.id, JobState.FAILED_TO_START, "test", reason="sbatch never ran")
    conn.close()
    listed = json.loads(_cli(data_dir, "list", "--json").stdout)
    shown = json.loads(_cli(data_dir, "show", str(job.id), "--json").stdout)
    status = subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "slurm", "status", "--json"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    from_slurm = json.loads(status.stdout)
    assert listed["schema"] == shown["schema"] == from_slurm["schema"] == 1
    assert listed["jobs"] == from_slurm["jobs"] == [shown["job"]]
    assert (
        shown["job"]["exit_status"] == 127 and shown["job"]["after"] == [1] and shown["job"]["cluster"] == "c"
    )


def test_a_job_with_a_secret_held_by_the_app_is_left_to_the_app(app_paths) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.config.settings_store import load_settings
    from msquant_desktop.domain.jobs import JobSpec
    from msquant_desktop.domain.secrets import HELD
    from msquant_desktop.services import job_lifecycle as lifecycle

    _limit(app_paths, 2)
    conn = connect(app_paths.database)
    repo = JobRepository(conn)
    try:
        spec = JobSpec(name="typed", argv=("sh", "-c", 'test -n "$HF_TOKEN"'), env=(("HF_TOKEN", HELD),))
        job = repo.create(spec, JobState.QUEUED, "queued in the app")
        limits = lifecycle.queue_limits(app_paths, load_settings(app_paths.settings_file), 0)
        me = lifecycle.ProcessIdentity.of_this_process()
        env = {k: v for k, v in child_env().items() if k != "HF_TOKEN"}
        assert lifecycle.advance_queue(repo, limits, me, env) == []  # only the app holds the value
        assert repo.get(job.id).state is JobState.QUEUED
        (started,) = lifecycle.advance_queue(repo, limits, me, {**env, "HF_TOKEN": "inherited"})
        assert started.id == job.id and started.state in (
            JobState.STARTING,
            JobState.RUNNING,
            JobState.COMPLETED,
        )
        assert wait_for(lambda: repo.get(job.id).state.is_final, timeout=30, interval=0.1)
        assert repo.get(job.id).state is JobState.COMPLETED, repo.get(job.id).reason
    finally:
        conn.close()
