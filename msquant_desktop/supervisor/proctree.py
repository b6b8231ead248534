"""Processes seen through /proc: descendants, identity (pid + start time + marker) and tree kills.

Linux only, no psutil: the supervisor imports this at start-up and every millisecond counts there.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from msquant_desktop.domain.markers import RUN_DIR_ENV

if TYPE_CHECKING:
    from collections.abc import Iterable

PROC = "/proc"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    close = raw.rfind(b")")
    return raw[close + 2 :].decode("ascii", "replace").split()


def start_time(pid: int) -> float | None:
    """Seconds after boot when `pid` started (field 22 of /proc/PID/stat); None when it is gone."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19]) / _CLK_TCK


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in ("Z", "X")


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def environ_value(pid: int, key: str) -> str | None:
    """The value of `key` in the environment `pid` was started with (None: unreadable or absent)."""
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    prefix = key.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return None


def is_same_process(pid: int, expected_start: float | None, run_dir: str) -> bool:
    """Is `pid` still the process we started?  Never decided by the pid alone: the start time must
    match (pids are reused) and the process must carry the job's run-folder marker."""
    if pid <= 0 or not alive(pid):
        return False
    actual = start_time(pid)
    if actual is None or expected_start is None or abs(actual - expected_start) > 0.05:
        return False
    return environ_value(pid, RUN_DIR_ENV) == run_dir


def children(pid: int) -> list[int]:
    """Direct children of `pid` (all its threads)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"{PROC}/{pid}/task/{tid}/children") as fh:
                text = fh.read()
        except OSError:
            continue
        kids.extend(int(p) for p in text.split())
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before their children."""
    found: list[int] = []
    seen = {pid}
    stack = [pid]
    while stack:
        for child in children(stack.pop()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                stack.append(child)
    return found


def pids_with_marker(run_dir: str, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes (readable to us) whose environment carries this job's run-folder marker."""
    skip = set(exclude)
    found: list[int] = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in skip:
            continue
        if environ_value(pid, RUN_DIR_ENV) == run_dir and alive(pid):
            found.append(pid)
    return found


def signal_all(pids: Iterable[int], sig: int) -> int:
    """Send `sig` to each pid; returns how many were still there to receive it."""
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent += 1
        except (ProcessLookupError, PermissionError):
            pass
    return sent


def kill_marked_processes(run_dir: str, grace_seconds: float, exclude: Iterable[int] = ()) -> int:
    """TERM every process carrying the job's marker, wait up to the grace period, KILL the rest.

    Used by the app when a job's supervisor is gone (it was SIGKILLed) but its processes are not.
    Blocks for at most `grace_seconds` + a little; returns how many processes were signalled.
    """
    excluded = set(exclude) | {os.getpid()}
    victims = pids_with_marker(run_dir, excluded)
    if not victims:
        return 0
    signal_all(victims, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(alive(p) for p in victims):
        time.sleep(0.01)
    leftovers = pids_with_marker(run_dir, excluded)
    signal_all(leftovers, signal.SIGKILL)
    return len(set(victims) | set(leftovers))
