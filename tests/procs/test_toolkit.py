"""The process toolkit on real processes: escapees, TERM-ignorers, recycled pids, zombies, markers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV
from msquant_desktop.procs import identity
from msquant_desktop.procs.kill import (
    ALREADY_GONE,
    OTHER_USER,
    RECYCLED,
    REFUSED_SELF,
    send_signal,
    stop_marked,
    stop_processes,
    stop_tree,
)
from msquant_desktop.procs.scan import read_marker, scan_marked_processes
from msquant_desktop.procs.tree import descendants, pids_with_marker

# A child subreaper (as our supervisor is) with three descendants: one that obeys SIGTERM, one that
# ignores it, and one that escaped into a session of its own (setsid) and whose parent then exited,
# so the kernel re-parented it to the subreaper.  It writes their pids to a file when all are up.
SUBREAPER_TREE = r"""
import ctypes, json, os, signal, subprocess, sys, time
ready = sys.argv[1]
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass

signal.signal(signal.SIGCHLD, reap)
obeys = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
ignores = subprocess.Popen([sys.executable, "-c",
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(300)"],
    stdout=subprocess.PIPE)
ignores.stdout.readline()  # its handler is in place
escape = ready + ".escapee"
subprocess.Popen([sys.executable, "-c",
    "import os, sys, time\nif os.fork(): os._exit(0)\nos.setsid()\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(300)", escape])
while not os.path.exists(escape):
    time.sleep(0.01)
pids = {"obeys": obeys.pid, "ignores": ignores.pid, "escapee": int(open(escape).read())}
open(ready + ".tmp", "w").write(json.dumps(pids)); os.rename(ready + ".tmp", ready)
while True:
    time.sleep(0.2)
"""

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(300)"


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids a test starts; whatever is left is SIGKILLed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _marked_env(run_dir: Path, job_id: int = 7) -> dict[str, str]:
    return {**os.environ, RUN_DIR_ENV: str(run_dir), JOB_ID_ENV: str(job_id), STORE_ENV: "/nowhere.sqlite3"}


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, start_new_session=True)
    if IGNORE_TERM in argv:
        assert proc.stdout is not None
        proc.stdout.readline()  # the TERM handler is in place
    if env and RUN_DIR_ENV in env:  # until exec, /proc shows the environment of the process that forked
        assert _wait_for(lambda: identity.run_dir_marker(proc.pid) == env[RUN_DIR_ENV])
    return proc


def test_a_subreapers_tree_includes_setsid_escapees_and_stop_tree_ends_all_of_it(
    tmp_path: Path, started: list[int]
) -> None:
    ready = tmp_path / "tree.json"
    helper = subprocess.Popen([sys.executable, "-c", SUBREAPER_TREE, str(ready)], start_new_session=True)
    started.append(helper.pid)
    assert _wait_for(ready.exists), "the tree did not come up"
    pids = json.loads(ready.read_text())
    started.extend(pids.values())

    tree = set(descendants(helper.pid))
    assert {pids["obeys"], pids["ignores"], pids["escapee"]} <= tree
    assert identity.parent(pids["escapee"]) == helper.pid, "re-parented to the subreaper"
    assert os.getsid(pids["escapee"]) != os.getsid(helper.pid), "in a session of its own"

    start = identity.start_time(helper.pid)
    began = time.monotonic()
    result = stop_tree(helper.pid, start, grace_s=0.5)
    assert result.skipped == "" and not result.survivors and not result.refused
    assert {helper.pid, *pids.values()} <= set(result.ended)
    # Only the one ignoring SIGTERM needed SIGKILL, after the grace period (not before).
    assert pids["ignores"] in result.killed
    assert not {helper.pid, pids["obeys"], pids["escapee"]} & set(result.killed)
    assert time.monotonic() - began >= 0.5
    for pid in (*pids.values(), helper.pid):
        assert not identity.alive(pid)  # the helper is our unreaped child: a zombie counts as gone
    helper.wait(timeout=10)


def test_a_pid_whose_start_time_changed_is_never_signalled(tmp_path: Path, started: list[int]) -> None:
    run_dir = str(tmp_path / "run")
    proc = _spawn(["sleep", "300"], _marked_env(tmp_path / "run"))
    started.append(proc.pid)
    start = identity.start_time(proc.pid)
    assert start is not None
    recycled = start - 5.0  # what a stored identity looks like once the pid belongs to someone else

    assert identity.is_same_process(proc.pid, start, run_dir)
    assert not identity.is_same_process(proc.pid, recycled, run_dir)
    assert not identity.is_same_process(proc.pid, start, str(tmp_path / "other-run"))
    assert not identity.is_same_process(proc.pid, None, run_dir)
    assert not send_signal(proc.pid, recycled, signal.SIGTERM)
    result = stop_processes([(proc.pid, recycled)], grace_s=0.1)
    assert result.refused == {proc.pid: RECYCLED} and result.targets == ()
    assert stop_tree(proc.pid, recycled, grace_s=0.1).skipped == RECYCLED
    assert identity.alive(proc.pid), "left alone"

    result = stop_processes([(proc.pid, start)], grace_s=2.0)
    assert result.targets == (proc.pid,) and result.ended == (proc.pid,) and result.killed == ()
    proc.wait(timeout=10)


def test_one_start_time_stored_values_and_epoch_values_name_the_same_process(started: list[int]) -> None:
    proc = _spawn(["sleep", "300"])
    started.append(proc.pid)
    # What the store and supervisor.json have always held: field 22 of /proc/PID/stat / SC_CLK_TCK.
    raw = Path(f"/proc/{proc.pid}/stat").read_bytes()
    stored = int(raw[raw.rfind(b")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
    start = identity.start_time(proc.pid)
    assert start == stored
    assert identity.same_start(start, stored)
    # An epoch value (psutil's create_time, or a display value) is converted with the boot time.
    epoch = psutil.Process(proc.pid).create_time()
    assert identity.same_start(start, epoch) and identity.same_start(start, identity.to_epoch(stored))
    assert abs((identity.normalize_start_time(epoch) or 0.0) - stored) <= identity.START_TIME_TOLERANCE_S
    assert not identity.same_start(start, stored + 1.0) and not identity.same_start(None, stored)
    proc.kill()
    proc.wait(timeout=10)


def test_a_zombie_counts_as_gone(started: list[int]) -> None:
    proc = subprocess.Popen(["true"])
    started.append(proc.pid)
    assert _wait_for(lambda: identity.state(proc.pid) == "Z"), "an unreaped child that exited"
    assert identity.is_zombie(proc.pid) and not identity.alive(proc.pid)
    assert stop_tree(proc.pid, None).skipped == ALREADY_GONE
    assert stop_processes([(proc.pid, None)], grace_s=1.0).targets == ()
    proc.wait(timeout=10)
    assert identity.start_time(proc.pid) is None and stop_tree(proc.pid, None).skipped == ALREADY_GONE


def test_marker_scan_and_stop_marked_touch_only_that_jobs_processes(
    tmp_path: Path, started: list[int]
) -> None:
    job, other = tmp_path / "job-run", tmp_path / "other-run"
    plain = _spawn(["sleep", "300"], _marked_env(job))
    stubborn = _spawn([sys.executable, "-c", IGNORE_TERM], _marked_env(job))
    bystander = _spawn(["sleep", "300"], _marked_env(other, job_id=8))
    started.extend([plain.pid, stubborn.pid, bystander.pid])

    assert sorted(pids_with_marker(str(job))) == sorted([plain.pid, stubborn.pid])
    assert pids_with_marker(str(job), exclude={plain.pid}) == [stubborn.pid]
    marker = read_marker(stubborn.pid)
    assert marker is not None and marker.job_id == 7 and marker.run_dir == str(job)
    scanned = {p.pid: p for p in scan_marked_processes()}
    assert {plain.pid, stubborn.pid, bystander.pid} <= set(scanned)
    assert scanned[plain.pid].start_time == identity.start_time(plain.pid)

    result = stop_marked(str(job), grace_s=0.3)
    assert set(result.targets) == {plain.pid, stubborn.pid} and set(result.ended) == set(result.targets)
    assert result.killed == (stubborn.pid,)
    assert identity.alive(bystander.pid) and pids_with_marker(str(job)) == []
    for proc in (plain, stubborn):
        proc.wait(timeout=10)


def test_refusals_this_program_its_ancestors_init_and_other_users(tmp_path: Path, started: list[int]) -> None:
    assert stop_tree(os.getpid(), None).skipped == REFUSED_SELF
    assert stop_tree(os.getppid(), None).skipped == REFUSED_SELF
    assert stop_tree(1, None).skipped == REFUSED_SELF
    mine = stop_processes([(os.getpid(), None), (os.getppid(), None)], grace_s=0.1)
    assert mine.targets == () and set(mine.refused.values()) == {REFUSED_SELF}
    if os.getuid() == 0:
        other = subprocess.Popen(["sleep", "300"], user=65534, start_new_session=True)
        started.append(other.pid)
        assert _wait_for(lambda: identity.real_uid(other.pid) == 65534)
        pid = other.pid
    else:
        pid = next(
            (
                p.pid
                for p in psutil.process_iter()
                if p.pid > 1 and identity.real_uid(p.pid) not in (None, os.getuid())
            ),
            0,
        )
        if not pid:
            pytest.skip("no process of another user to refuse")
    assert stop_tree(pid, None, grace_s=0.1).skipped == OTHER_USER
    assert stop_processes([(pid, None)], grace_s=0.1).refused == {pid: OTHER_USER}
    assert identity.alive(pid)
