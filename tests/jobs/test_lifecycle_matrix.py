"""The same situations through the app (JobService) and the CLI (`jobs ...` in a child process).

Both call services/job_lifecycle.py, so each situation must end in the same final state with the
same recorded reason, and leave no process of the job behind, whichever side handled it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from msquant_desktop.config.paths import AppPaths, resolve_paths
from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.settings import Settings
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
from tests.jobs.helpers import child_env, marked, wait_for

SLEEPER = "import time; print('up', flush=True); time.sleep(300)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"


class Side(Protocol):
    name: str

    def run(self, argv: list[str], wait_running: bool = True) -> int: ...
    def cancel(self, job_id: int) -> None: ...
    def final(self, job_id: int) -> tuple[JobState, str]: ...
    def record(self, job_id: int) -> Any: ...


class AppSide:
    name = "app"

    def __init__(self, make_engine: Any, qtbot: Any) -> None:
        self.service = make_engine(max_jobs=1, grace=0.5)
        self.qtbot = qtbot

    def run(self, argv: list[str], wait_running: bool = True) -> int:
        job_id = self.service.submit(JobSpec(name="matrix", argv=tuple(argv))).id
        if wait_running:
            self.qtbot.waitUntil(lambda: self.record(job_id).pid is not None, timeout=15000)
        return int(job_id)

    def cancel(self, job_id: int) -> None:
        self.service.cancel(job_id)

    def final(self, job_id: int) -> tuple[JobState, str]:
        self.qtbot.waitUntil(lambda: self.record(job_id).state.is_final, timeout=20000)
        record = self.record(job_id)
        return record.state, record.reason

    def record(self, job_id: int) -> Any:
        return self.service.get(job_id)


class CliSide:
    """No app at all: only `jobs` commands and the supervisors they start."""

    name = "cli"

    def __init__(self, paths: AppPaths) -> None:
        save_settings(paths.settings_file, Settings(max_concurrent_jobs=1, cancel_grace_seconds=0.5))
        self.paths = paths
        self.conn = connect(paths.database)

    def jobs(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "msquant_desktop",
                "--data-dir",
                str(self.paths.data_dir.parent),
                "jobs",
                *args,
            ],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def run(self, argv: list[str], wait_running: bool = True) -> int:
        done = self.jobs("run", "--no-wait", "--name", "matrix", "--", *argv)
        assert done.returncode == 0, done.stderr
        job_id = int(done.stdout.split()[1])
        if wait_running:
            assert wait_for(lambda: self.record(job_id).pid is not None, timeout=15)
        return job_id

    def cancel(self, job_id: int) -> None:
        done = self.jobs("cancel", str(job_id))
        assert done.returncode == 0, done.stderr

    def final(self, job_id: int) -> tuple[JobState, str]:
        def ended() -> bool:
            shown = json.loads(self.jobs("show", str(job_id), "--json").stdout)
            return JobState(shown["job"]["state"]).is_final

        assert wait_for(ended, timeout=20, interval=0.2)
        record = self.record(job_id)
        return record.state, record.reason

    def record(self, job_id: int) -> Any:
        return JobRepository(self.conn).get(job_id)


@pytest.fixture
def sides(make_engine, qtbot, tmp_path) -> Iterator[list[Side]]:  # type: ignore[no-untyped-def]
    """The app side uses the test's data dir; the CLI side its own, so neither sees the other."""
    (tmp_path / "cli-data").mkdir()
    cli_paths = resolve_paths(tmp_path / "cli-data").ensure()
    cli = CliSide(cli_paths)
    yield [AppSide(make_engine, qtbot), cli]
    cli.conn.close()


def _run_dir(side: Side, job_id: int) -> Path:
    return Path(str(side.record(job_id).run_dir))


def _same_everywhere(outcomes: dict[str, tuple[JobState, str]]) -> tuple[JobState, str]:
    assert len(set(outcomes.values())) == 1, outcomes
    return next(iter(outcomes.values()))


def test_supervisor_sigkilled_then_cancel(sides: list[Side]) -> None:
    outcomes = {}
    for side in sides:
        job_id = side.run([sys.executable, "-c", STUBBORN])
        run_dir = _run_dir(side, job_id)
        os.kill(int(side.record(job_id).pid), signal.SIGKILL)
        side.cancel(job_id)
        outcomes[side.name] = side.final(job_id)
        assert wait_for(lambda run_dir=run_dir: marked(run_dir) == [], timeout=5), (
            f"{side.name}: the job's process survived"
        )
    state, reason = _same_everywhere(outcomes)
    assert state is JobState.LOST
    assert (
        reason
        == "its supervisor vanished without recording the job's end; 1 unsupervised process(es) of the job were stopped"
    )


def test_cli_cancel_after_the_supervisor_was_sigkilled_leaves_no_process_when_it_returns(
    sides: list[Side],
) -> None:
    cli = sides[1]
    job_id = cli.run([sys.executable, "-c", STUBBORN])
    run_dir = _run_dir(cli, job_id)
    os.kill(int(cli.record(job_id).pid), signal.SIGKILL)
    cli.cancel(job_id)
    assert marked(run_dir) == []  # at once: the command stopped them before it returned
    assert cli.record(job_id).state is JobState.LOST


def test_job_ended_while_nothing_was_watching(sides: list[Side], make_engine) -> None:  # type: ignore[no-untyped-def]
    outcomes = {}
    for side in sides:
        job_id = side.run(["sh", "-c", "sleep 0.5; exit 3"])
        if isinstance(side, AppSide):
            side.service.shutdown()  # the app goes away; the supervisor carries on
            run_dir = _run_dir(side, job_id)
            assert wait_for(lambda run_dir=run_dir: (run_dir / "exit.json").exists(), timeout=10)
            side.service = make_engine(max_jobs=1, grace=0.5)  # and comes back
        outcomes[side.name] = side.final(job_id)
        assert side.record(job_id).started_at is not None
    state, reason = _same_everywhere(outcomes)
    assert state is JobState.FAILED and reason == ""


def test_term_ignoring_job_is_cancelled_after_the_grace(sides: list[Side]) -> None:
    outcomes = {}
    for side in sides:
        job_id = side.run([sys.executable, "-c", STUBBORN])
        run_dir = _run_dir(side, job_id)
        assert wait_for(lambda run_dir=run_dir: "up" in (run_dir / "output.log").read_text(), timeout=10)
        side.cancel(job_id)
        outcomes[side.name] = side.final(job_id)
        assert marked(run_dir) == [] or wait_for(lambda run_dir=run_dir: marked(run_dir) == [], timeout=3)
    state, reason = _same_everywhere(outcomes)
    assert state is JobState.CANCELLED and reason == "stopped by SIGKILL"


def test_cancel_of_a_queued_job(sides: list[Side]) -> None:
    outcomes = {}
    for side in sides:
        blocker = side.run(["sleep", "300"])
        queued = side.run(["true"], wait_running=False)
        assert side.record(queued).state is JobState.QUEUED
        side.cancel(queued)
        outcomes[side.name] = side.final(queued)
        side.cancel(blocker)
        side.final(blocker)
    state, reason = _same_everywhere(outcomes)
    assert state is JobState.CANCELLED and reason == "removed from the queue"


def test_supervisor_that_cannot_start(sides: list[Side], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """E.g. the app's executable was removed while it ran.  The CLI side runs in-process here (the
    same `jobs run` code, launching through job_lifecycle) so the supervisor command can be pointed at a
    missing file."""
    import msquant_desktop.services.job_lifecycle as lifecycle
    from msquant_desktop.app import main

    missing = ["/nonexistent/msquant-desktop"]
    # One spawn for both sides (job_lifecycle.spawn_supervisor): the app's launcher thread and the CLI.
    monkeypatch.setattr(lifecycle, "self_command", lambda *args: [*missing, *args])
    outcomes = {}
    app, cli = sides
    job_id = app.run(["true"], wait_running=False)
    outcomes["app"] = app.final(job_id)
    assert isinstance(cli, CliSide)
    code = main(["--data-dir", str(cli.paths.data_dir.parent), "jobs", "run", "--", "true"])
    assert code == 1
    outcomes["cli"] = cli.final(JobRepository(cli.conn).list_jobs()[0].id)
    state, reason = _same_everywhere(outcomes)
    assert state is JobState.FAILED_TO_START
    assert (
        reason
        == "the supervisor could not be started: /nonexistent/msquant-desktop is not an executable file"
    )
