"""Real processes for the orphan tests: a marked worker whose parent ("supervisor") has died."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV

# The launched process plays the supervisor: it forks the worker and exits at once, so the worker
# is re-parented to init (or to the nearest subreaper).  The worker may start a child of its own
# (the tree must go as a whole) and may ignore SIGTERM (then only SIGKILL ends it).
_DOUBLE_FORK = r"""
import os, signal, sys, time
pid_file, ignore_term, with_child = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if os.fork() > 0:
    os._exit(0)
os.setsid()
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = 0
if with_child:
    child = os.fork()
    if child == 0:
        while True:
            time.sleep(0.2)
with open(pid_file + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {child}")
os.rename(pid_file + ".tmp", pid_file)
while True:
    time.sleep(0.2)
"""


@dataclass
class Spawned:
    supervisor_pid: int
    pid: int
    child_pid: int

    def pids(self) -> list[int]:
        return [p for p in (self.pid, self.child_pid) if p]


def spawn_reparented(
    tmp: Path, marker: dict[str, str] | None, ignore_term: bool = False, with_child: bool = False
) -> Spawned:
    env = {k: v for k, v in os.environ.items() if k not in (JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV)}
    env.update(marker or {})
    pid_file = tmp / f"spawn-{time.monotonic_ns()}.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _DOUBLE_FORK,
            str(pid_file),
            "1" if ignore_term else "0",
            "1" if with_child else "0",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the re-parented worker did not start")
        time.sleep(0.01)
    pid, child = (int(x) for x in pid_file.read_text().split())
    return Spawned(proc.pid, pid, child)


def marker(job_id: int | str, store: Path, run_dir: Path) -> dict[str, str]:
    return {JOB_ID_ENV: str(job_id), STORE_ENV: str(store), RUN_DIR_ENV: str(run_dir)}


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
