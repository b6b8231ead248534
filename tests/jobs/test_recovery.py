"""kill -9 of the app with three running jobs, then a restart recovers all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from msquant_desktop.domain.jobs import JobState
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import REPO_ROOT, child_env, log_lines, marked, wait_for


def test_kill_9_of_the_app_then_restart_recovers_running_finished_and_lost_jobs(
    make_engine,
    app_paths,
    qtbot,  # type: ignore[no-untyped-def]
) -> None:
    app = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "jobs" / "app_child.py"),
            str(app_paths.config_dir.parent),
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = app.stdout.readline() if app.stdout else ""
        assert line.startswith("READY"), (line, app.stderr.read() if app.stderr else "")
        ticker, finisher, sleeper = (int(x) for x in line.split()[1:])
    finally:
        app.send_signal(signal.SIGKILL)  # the app dies without any chance to clean up
        app.wait(timeout=10)

    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    repo = JobRepository(connect(app_paths.database))
    dirs = {job_id: Path(str(repo.get(job_id).run_dir)) for job_id in (ticker, finisher, sleeper)}
    # The sleeper loses its supervisor and its process for good (as after a machine crash): no trace.
    for pid in marked(dirs[sleeper]):
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: marked(dirs[sleeper]) == [], timeout=5)
    # The finisher ends while no app is running.
    assert wait_for(lambda: (dirs[finisher] / "exit.json").exists(), timeout=15)

    service = make_engine(max_jobs=3, grace=1.0)  # the restarted app
    assert service.get(ticker).state is JobState.RUNNING and ticker in service._runtimes
    finished = service.get(finisher)
    assert finished.state is JobState.FAILED and finished.exit_code == 7
    lost = service.get(sleeper)
    assert lost.state is JobState.LOST and "supervisor vanished" in lost.reason

    # The running one keeps streaming from its log file, and cancel works.
    fresh: list[str] = []
    service.sig_log_text.connect(lambda j, t, e: fresh.append(t) if j == ticker else None)
    qtbot.waitUntil(lambda: sum(t.count("tick") for t in fresh) >= 3, timeout=10000)
    service.cancel(ticker)
    assert wait_final(qtbot, service, ticker).state is JobState.CANCELLED
    assert wait_for(lambda: marked(dirs[ticker]) == [], timeout=5)

    # Logs are complete: every line each job printed is in its run folder, in order.
    ticks = [ln for ln in log_lines(dirs[ticker]) if ln.startswith("O tick")]
    assert ticks == [f"O tick {i}" for i in range(len(ticks))] and len(ticks) > 10
    rows = [ln for ln in log_lines(dirs[finisher]) if ln.startswith("O row")]
    assert rows == [f"O row {i}" for i in range(200)]
