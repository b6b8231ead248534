"""The supervisor with real process trees: tree kill incl. escapees, dead app pipe, spawn errors."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from tests.jobs.helpers import log_lines, marked, start_supervisor, wait_for, write_launch

# A job with three kinds of descendants: a plain child, a child that ignores SIGTERM, and a
# grandchild that escaped into its own session with setsid (killpg of the job's group misses it).
TREE = r"""
import os, signal, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('stubborn ready', flush=True); time.sleep(300)"])
subprocess.Popen(["setsid", sys.executable, "-c", "import time; time.sleep(300)"])
print("tree ready", flush=True)
time.sleep(300)
"""


def _exit_record(run_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run_dir / "exit.json").read_text())


def test_cancel_kills_the_whole_tree_including_escapees_and_term_ignorers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = write_launch(run_dir, [sys.executable, "-c", TREE], grace=0.5)
    sup = start_supervisor(run_dir, env)
    try:
        assert wait_for(
            lambda: (run_dir / "output.log").exists() and "O stubborn ready" in log_lines(run_dir)
        )
        assert wait_for(lambda: len(marked(run_dir)) >= 5), marked(run_dir)  # supervisor + job + 3
        escapee_sids = {os.getsid(p) for p in marked(run_dir)}
        assert len(escapee_sids) >= 2, "the setsid escapee should be in a session of its own"
        os.kill(sup.pid, signal.SIGTERM)
        assert sup.wait(timeout=15) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
    assert marked(run_dir) == [], "no process may carry the job's marker after a cancel"
    record = _exit_record(run_dir)
    assert record["cancelled"] is True and record["returncode"] is not None


def test_job_survives_a_dead_app_pipe_and_records_its_exit(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = "import time\nfor i in range(30):\n    print('line', i, flush=True)\n    time.sleep(0.02)\nraise SystemExit(4)"
    env = write_launch(run_dir, [sys.executable, "-c", script])
    sup = start_supervisor(run_dir, env)
    assert sup.stdout is not None
    sup.stdout.read(10)  # it started talking to us ...
    sup.stdout.close()  # ... and now the "app" is gone
    assert sup.wait(timeout=15) == 0, sup.stderr.read() if sup.stderr else ""
    record = _exit_record(run_dir)
    assert record["returncode"] == 4 and record["cancelled"] is False
    lines = [ln for ln in log_lines(run_dir) if ln.startswith("O ")]
    assert lines == [f"O line {i}" for i in range(30)], "every line reaches the log file"


def test_a_command_that_cannot_start_is_recorded(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = write_launch(run_dir, ["/nonexistent/program", "--flag"])
    sup = start_supervisor(run_dir, env)
    assert sup.wait(timeout=15) == 0
    record = _exit_record(run_dir)
    assert record["returncode"] is None and "No such file" in record["spawn_error"]
    assert any("could not start" in ln for ln in log_lines(run_dir))


def test_leftover_background_processes_end_with_the_job(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = write_launch(run_dir, ["sh", "-c", "sleep 300 & echo started; exit 0"], grace=0.5)
    sup = start_supervisor(run_dir, env)
    assert sup.wait(timeout=15) == 0
    record = _exit_record(run_dir)
    assert record["returncode"] == 0 and record["leftovers_killed"] >= 1
    assert marked(run_dir) == []
