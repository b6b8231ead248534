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


# Many lines (far more than the 4 MiB the supervisor keeps for a slow app), then one last line.
FLOOD = (
    "import sys\n"
    "out = sys.stdout\n"
    "for i in range({n}):\n"
    "    out.write('line %07d ' % i + 'x' * 80 + '\\n')\n"
    "out.write('last line\\n')\n"
)
FLOOD_LINES = 60_000  # ~5.6 MB of tagged output


def _job_seconds(run_dir: Path) -> float:
    from datetime import datetime

    record = _exit_record(run_dir)
    return (
        datetime.fromisoformat(record["ended_at"]) - datetime.fromisoformat(record["started_at"])
    ).total_seconds()


def test_a_frozen_app_never_slows_the_job_and_hears_what_it_missed(tmp_path: Path) -> None:
    import subprocess

    # Normal speed: the same job with nobody reading the supervisor's output at all.
    base_dir = tmp_path / "baseline"
    base = start_supervisor(
        base_dir,
        write_launch(base_dir, [sys.executable, "-c", FLOOD.format(n=FLOOD_LINES)]),
        stdout=subprocess.DEVNULL,
    )
    assert base.wait(timeout=120) == 0
    baseline = _job_seconds(base_dir)

    run_dir = tmp_path / "run"
    env = write_launch(run_dir, [sys.executable, "-c", FLOOD.format(n=FLOOD_LINES)])
    received = tmp_path / "app-received.log"
    read_end, write_end = os.pipe()
    with received.open("wb") as sink:
        app = subprocess.Popen(["cat"], stdin=read_end, stdout=sink)  # the "app": reads the pipe ...
    os.close(read_end)
    os.kill(app.pid, signal.SIGSTOP)  # ... until it freezes
    sup = start_supervisor(run_dir, env, stdout=write_end)
    os.close(write_end)
    try:
        assert wait_for(lambda: (run_dir / "exit.json").exists(), timeout=120), (
            "the job must not wait for the app"
        )
        assert sup.poll() is None, "the supervisor waits (bounded) for the frozen app to take the rest"
        record = _exit_record(run_dir)
        assert record["returncode"] == 0
        assert _job_seconds(run_dir) < 3 * baseline + 3.0, (baseline, _job_seconds(run_dir))
        lines = [ln for ln in log_lines(run_dir) if ln.startswith("O ")]
        assert len(lines) == FLOOD_LINES + 1 and lines[-1] == "O last line", "every line reaches the log"
        skipped_total = record["extra"]["app_lines_skipped"]
        assert skipped_total > 0

        os.kill(app.pid, signal.SIGCONT)  # the app thaws and catches up
        assert sup.wait(timeout=60) == 0
        assert app.wait(timeout=60) == 0
    finally:
        for proc in (sup, app):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()
    stream = received.read_bytes().decode().splitlines()
    metas = [json.loads(ln[2:]) for ln in stream if ln.startswith("M ")]
    skipped = [m for m in metas if m["type"] == "skipped"]
    shown = [ln for ln in stream if ln.startswith("O ")]
    assert [m["type"] for m in metas] == ["started", "skipped", "exited"]
    assert skipped[0]["lines"] == skipped_total and skipped[0]["bytes"] > 0
    assert len(shown) + skipped_total == FLOOD_LINES + 1
    assert shown == lines[: len(shown)], "what the app got is the start of the log, in order, whole lines"
    assert metas[-1]["extra"]["app_lines_skipped"] == skipped_total


def test_the_app_pipe_says_what_was_left_out_when_the_app_catches_up() -> None:
    from msquant_desktop.supervisor.runner import _AppPipe

    read_end, write_end = os.pipe()
    try:
        pipe = _AppPipe(write_end, limit=4096)
        line = b"O " + b"y" * 97 + b"\n"  # 100 bytes
        sent = 0
        while pipe.lines_skipped < 10:  # fill the pipe, then the 4 KiB buffer, then leave lines out
            pipe.send(line)
            sent += 1
        pipe.send(b'M {"type":"note"}\n', droppable=False)  # a supervisor message ends the gap
        gap_before_note = pipe.lines_skipped
        pipe.send(line)  # still behind: left out, counted in a new gap
        os.set_blocking(read_end, False)
        got = b""
        while True:  # the app catches up
            try:
                chunk = os.read(read_end, 1 << 16)
            except BlockingIOError:
                chunk = b""
            if not chunk and not pipe.waiting_bytes:
                break
            got += chunk
            pipe.flush()
        pipe.send(line)  # caught up: forwarded at once
        got += os.read(read_end, 1 << 16)
    finally:
        os.close(read_end)
        os.close(write_end)
    rows = got.split(b"\n")[:-1]
    notes = [i for i, r in enumerate(rows) if r.startswith(b"M ")]
    assert [json.loads(rows[i][2:]) for i in notes] == [
        {"type": "skipped", "lines": gap_before_note, "bytes": 100 * gap_before_note},
        {"type": "note"},
        {"type": "skipped", "lines": 1, "bytes": 100},
    ]
    assert notes[1] == notes[0] + 1 and notes[2] == notes[1] + 1 and notes[2] == len(rows) - 2
    assert len(rows) - 3 == sent - gap_before_note + 1, "every line not counted as skipped arrived whole"
    assert all(r == line[:-1] for i, r in enumerate(rows) if i not in notes)
