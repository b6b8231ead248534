"""Processes as the GPU view and the doctor describe them: markers, commands, users (psutil).

Identity (start times, states, parents) comes from `identity`, so a start time read here is the same
number the engine stores; psutil supplies what is tedious to read by hand (command lines, user names,
the process list).  Markers are readable only for the user's own processes (or as root): the same
processes the doctor may clean up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from msquant_desktop.domain.gpu import JobMarker
from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV
from msquant_desktop.procs.identity import PROC, environ_values, real_uid, stat_facts

_MARKER_KEYS = (JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV)


def read_marker(pid: int) -> JobMarker | None:
    """The job marker in a process's environment; None when it has none or cannot be read."""
    found = environ_values(pid, _MARKER_KEYS)
    if not found or JOB_ID_ENV not in found:
        return None
    job_text = found[JOB_ID_ENV]
    job_id = int(job_text) if job_text.strip().isdigit() else None
    return JobMarker(job_id=job_id, run_dir=found.get(RUN_DIR_ENV), store=found.get(STORE_ENV))


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    ppid: int
    start_time: float
    """Seconds after boot (identity.start_time)."""
    uid: int
    command: str


@dataclass(frozen=True)
class MarkedProcess:
    pid: int
    ppid: int
    start_time: float
    """Seconds after boot (identity.start_time)."""
    command: str
    marker: JobMarker


def command_of(pid: int) -> str:
    """The command line of `pid` ("[name]" for a kernel thread), "?" when it cannot be read."""
    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        return " ".join(argv) if argv else f"[{proc.name()}]"
    except (psutil.Error, OSError):
        return "?"


def user_of(pid: int) -> str:
    """The user name of `pid` (its uid when the name is unknown), "?" when it is gone."""
    try:
        proc = psutil.Process(pid)
        try:
            return proc.username()
        except (psutil.Error, KeyError):
            return str(proc.uids().real)
    except psutil.Error:
        return "?"


def process_facts(pid: int) -> ProcessFacts | None:
    """Parent, start time, user id and command of a live process; None when it is gone."""
    facts = stat_facts(pid)
    uid = real_uid(pid)
    if facts is None or facts[0] in "ZX" or uid is None:
        return None
    return ProcessFacts(pid, facts[1], facts[2], uid, command_of(pid))


def scan_marked_processes(uid: int | None = None) -> list[MarkedProcess]:
    """Every live process of user `uid` (default: ours) that carries MSQUANT_JOB_ID, by pid."""
    uid = os.getuid() if uid is None else uid
    found = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        pid = int(entry.name)
        marker = read_marker(pid)
        if marker is None:
            continue
        facts = stat_facts(pid)
        if facts is None or facts[0] in "ZX":
            continue  # ended while we looked
        found.append(MarkedProcess(pid, facts[1], facts[2], command_of(pid), marker))
    return sorted(found, key=lambda p: p.pid)


def session_subreapers() -> frozenset[int]:
    """Per-user service managers (`systemd --user`) that adopt a desktop session's orphans.

    On a desktop a process whose parent died is re-parented to the user's manager, not to init, so
    "parent is init" alone would miss most orphans there.  Our own supervisors are subreapers too,
    but what they adopt is still supervised, so they are not listed.
    """
    found: set[int] = set()
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "systemd" and proc.pid != 1:
                found.add(proc.pid)
        except psutil.Error:
            continue
    return frozenset(found)
