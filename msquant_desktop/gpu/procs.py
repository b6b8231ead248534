"""Processes: who holds a GPU, which of them carry our job marker, and ending a process tree safely.

Markers are read from /proc/PID/environ, which the kernel only lets the process's own user (or
root) read — the same processes the doctor may clean up.  Linux only; elsewhere nothing is marked.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from msquant_desktop.domain.gpu import CleanupOutcome, GpuProcess, JobMarker, ProcessDetails
from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV

log = logging.getLogger(__name__)

PROC = Path("/proc")
_MARKER_KEYS = (JOB_ID_ENV.encode(), RUN_DIR_ENV.encode(), STORE_ENV.encode())
# A process's start time as psutil reports it is exact to the clock tick; allow for float rounding.
_START_TIME_TOLERANCE_S = 0.05


def read_marker(pid: int, proc_root: Path = PROC) -> JobMarker | None:
    """The job marker in a process's environment; None when it has none or cannot be read."""
    try:
        raw = (proc_root / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's process
        return None
    found: dict[bytes, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key in _MARKER_KEYS:
            found[key] = value.decode(errors="replace")
    job_text = found.get(_MARKER_KEYS[0])
    if job_text is None:
        return None
    job_id = int(job_text) if job_text.strip().isdigit() else None
    return JobMarker(job_id=job_id, run_dir=found.get(_MARKER_KEYS[1]), store=found.get(_MARKER_KEYS[2]))


@dataclass(frozen=True)
class MarkedProcess:
    pid: int
    ppid: int
    create_time: float
    command: str
    marker: JobMarker


def _command(proc: psutil.Process) -> str:
    try:
        argv = proc.cmdline()
        return " ".join(argv) if argv else f"[{proc.name()}]"
    except (psutil.Error, OSError):
        return "?"


def scan_marked_processes(uid: int | None = None, proc_root: Path = PROC) -> list[MarkedProcess]:
    """Every process of user `uid` (default: ours) that carries MSQUANT_JOB_ID, oldest pid first."""
    uid = os.getuid() if uid is None else uid
    found = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        pid = int(entry.name)
        marker = read_marker(pid, proc_root)
        if marker is None:
            continue
        try:
            proc = psutil.Process(pid)
            found.append(MarkedProcess(pid, proc.ppid(), proc.create_time(), _command(proc), marker))
        except psutil.Error:
            continue  # ended while we looked
    return sorted(found, key=lambda p: p.pid)


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """True when `pid` runs (and, given `create_time`, is still that same process, not a recycled pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < _START_TIME_TOLERANCE_S
    except psutil.Error:
        return False


class ProcessDescriber:
    """User, command, parent and job of the processes on the GPUs; cached per (pid, start time)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, str, str, JobMarker | None]] = {}

    def describe(self, processes: Iterable[GpuProcess]) -> tuple[ProcessDetails, ...]:
        rows = []
        seen: set[int] = set()
        for gp in processes:
            seen.add(gp.pid)
            user, command, ppid, marker = "?", "?", None, None
            try:
                proc = psutil.Process(gp.pid)
                ppid = proc.ppid()  # changes when the parent dies: never cached
                created = proc.create_time()
                cached = self._cache.get(gp.pid)
                if cached is None or cached[0] != created:
                    try:
                        user = proc.username()
                    except (psutil.Error, KeyError):
                        user = str(proc.uids().real)
                    cached = (created, user, _command(proc), read_marker(gp.pid))
                    self._cache[gp.pid] = cached
                _, user, command, marker = cached
            except psutil.Error:
                pass  # listed by NVML but gone (or in another pid namespace)
            rows.append(
                ProcessDetails(gp.pid, gp.gpu_index, gp.used_memory_bytes, user, command, ppid, marker)
            )
        for pid in set(self._cache) - seen:
            del self._cache[pid]
        return tuple(rows)


def process_facts(pid: int) -> tuple[int, float, int, str] | None:
    """(ppid, create_time, uid, command) of a process, or None when it is gone."""
    try:
        proc = psutil.Process(pid)
        return proc.ppid(), proc.create_time(), proc.uids().real, _command(proc)
    except psutil.Error:
        return None


def session_subreapers() -> frozenset[int]:
    """Per-user service managers (`systemd --user`) that adopt a desktop session's orphans.

    On a desktop a process whose parent died is re-parented to the user's manager, not to init, so
    "parent is init" alone would miss most orphans there.  Our own supervisors are subreapers too,
    but what they adopt is still supervised, so they are not listed.
    """
    found: set[int] = set()
    for proc in psutil.process_iter(["name", "ppid"]):
        try:
            if proc.info["name"] == "systemd" and proc.pid != 1:
                found.add(proc.pid)
        except psutil.Error:
            continue
    return frozenset(found)


def _protected_pids() -> set[int]:
    """This process and its ancestors: a clean-up must never end the program doing it."""
    pids = {0, 1, os.getpid()}
    try:
        for parent in psutil.Process().parents():
            pids.add(parent.pid)
    except psutil.Error:
        pass
    return pids


def terminate_tree(
    pid: int, create_time: float | None, grace_s: float = 5.0, uid: int | None = None
) -> CleanupOutcome:
    """SIGTERM the process and all its descendants, wait `grace_s`, SIGKILL whoever is left.

    Only processes of user `uid` (default: ours) are touched; a pid whose start time differs from
    `create_time` was recycled and is left alone, as are this program and its ancestors.
    """
    uid = os.getuid() if uid is None else uid
    if pid in _protected_pids():
        return CleanupOutcome(pid, (), (), skipped="refused: this program or one of its parents")
    try:
        root = psutil.Process(pid)
        if _is_gone(root):
            return CleanupOutcome(pid, (), (), skipped="already gone")
        if create_time is not None and abs(root.create_time() - create_time) >= _START_TIME_TOLERANCE_S:
            return CleanupOutcome(pid, (), (), skipped="pid now belongs to another process; left alone")
        if root.uids().real != uid:
            return CleanupOutcome(pid, (), (), skipped="belongs to another user; left alone")
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return CleanupOutcome(pid, (), (), skipped="already gone")
    except psutil.Error as exc:
        return CleanupOutcome(pid, (), (), skipped=f"cannot inspect it ({exc})")
    protected = _protected_pids()
    targets = []
    for proc in tree:
        try:
            if proc.pid not in protected and proc.uids().real == uid:
                targets.append(proc)
        except psutil.Error:
            continue
    for proc in targets:
        _signal(proc, signal.SIGTERM)
    gone, alive = _wait_gone(targets, grace_s)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    gone_after_kill, still = _wait_gone(alive, 5.0)
    for proc in still:
        log.warning("pid %d survived SIGKILL (uninterruptible sleep?)", proc.pid)
    ended = tuple(sorted(p.pid for p in (*gone, *gone_after_kill)))
    killed = tuple(sorted(p.pid for p in gone_after_kill))
    log.info("ended process tree of pid %d: %s (SIGKILL: %s)", pid, ended, killed)
    return CleanupOutcome(pid, ended, killed)


def _is_gone(proc: psutil.Process) -> bool:
    try:
        # A dead process stays a zombie until its parent (init, or a subreaper) reaps it: ended all the same.
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _wait_gone(
    procs: list[psutil.Process], timeout_s: float
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(gone, alive) after waiting up to `timeout_s` for `procs` to end.

    psutil.wait_procs would wait for a zombie that is not our child until the timeout.
    """
    deadline = time.monotonic() + timeout_s
    alive = list(procs)
    gone: list[psutil.Process] = []
    delay = 0.005
    while alive:
        still: list[psutil.Process] = []
        for proc in alive:
            (gone if _is_gone(proc) else still).append(proc)
        alive = still
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return gone, alive


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass  # already gone
