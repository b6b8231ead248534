"""The doctor: orphans of our jobs, re-parented GPU holders, memory nobody holds, throttling.

Qt-free (plain functions), so `msquant-desktop doctor` and the GUI's Doctor panel share it; the GUI
runs it on the GPU service's thread.  It joins the process toolkit (procs/) with the store of the job
a process claims to belong to (an adapter), which is why it lives here.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.gpu import (
    CleanupOutcome,
    DoctorReport,
    Finding,
    FindingKind,
    GpuReading,
    MarkedProcessFacts,
    gpu_holder_reparented,
    orphan_reason,
    throttle_problems,
    unowned_memory_mib,
)
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.procs import identity
from msquant_desktop.procs.kill import stop_tree
from msquant_desktop.procs.scan import MarkedProcess, process_facts, scan_marked_processes, session_subreapers
from msquant_desktop.store.jobs_repo import JobRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _JobLookup:
    store_exists: bool
    state: JobState | None
    supervisor_alive: bool | None


def _supervisor_alive(pid: int, start_after_boot: float | None, run_dir: str | None) -> bool:
    """Is the job's supervisor still the process the engine started?  Decided exactly as the engine
    decides it (procs.identity: pid + start time after boot + the run-folder marker), never by the
    pid alone.  A job recorded without a run folder can only be checked by pid and start time."""
    if run_dir:
        return identity.is_same_process(pid, start_after_boot, run_dir)
    facts = identity.stat_facts(pid)
    return (
        facts is not None
        and identity.is_live_state(facts[0])
        and (start_after_boot is None or identity.same_start(facts[2], start_after_boot))
    )


class _StoreReader:
    """Reads job states from the stores named in markers, read-only, one connection per store."""

    def __init__(self) -> None:
        self._conns: dict[str, sqlite3.Connection | None] = {}

    def lookup(self, store: str | None, job_id: int) -> _JobLookup | None:
        """None when the store exists but cannot be read now: then nobody is called an orphan."""
        if not store or not Path(store).is_file():
            return _JobLookup(False, None, None)
        try:
            conn = self._conns.get(store)
            if conn is None:
                # mode=ro: the doctor never creates, migrates or writes another program's store.
                conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5.0)
                conn.row_factory = sqlite3.Row
                self._conns[store] = conn
            job = JobRepository(conn).find(job_id)
        except (sqlite3.Error, ValueError, KeyError) as exc:
            log.warning("doctor: cannot read job %s from %s: %s", job_id, store, exc)
            return None
        if job is None:
            return _JobLookup(True, None, None)
        alive = None if job.pid is None else _supervisor_alive(job.pid, job.pid_start_time, job.run_dir)
        return _JobLookup(True, job.state, alive)

    def close(self) -> None:
        for conn in self._conns.values():
            if conn is not None:
                conn.close()
        self._conns.clear()


def find_orphans(marked: list[MarkedProcess] | None = None) -> list[Finding]:
    """Processes with our marker whose job is over (or unknown) or whose supervisor is gone.

    Of a tree of such processes only the top one is reported: cleaning it ends the rest.
    """
    marked = scan_marked_processes() if marked is None else marked
    reader = _StoreReader()
    orphans: dict[int, Finding] = {}
    try:
        for proc in marked:
            if proc.marker.job_id is None:
                lookup: _JobLookup | None = _JobLookup(True, None, None)
            else:
                lookup = reader.lookup(proc.marker.store, proc.marker.job_id)
            if lookup is None:
                continue
            facts = MarkedProcessFacts(
                pid=proc.pid,
                job_id=proc.marker.job_id,
                job_state=lookup.state,
                store_exists=lookup.store_exists,
                supervisor_alive=lookup.supervisor_alive,
            )
            verdict = orphan_reason(facts)
            if verdict is None:
                continue
            _, why = verdict
            orphans[proc.pid] = Finding(
                kind=FindingKind.ORPHAN,
                message=f"pid {proc.pid} carries the marker of {proc.marker.describe()}, but {why}",
                pid=proc.pid,
                start_time=proc.start_time,
                cleanable=True,  # scan_marked_processes only returns the current user's processes
                command=proc.command,
            )
    finally:
        reader.close()
    parents = {p.pid: p.ppid for p in marked}
    return [f for pid, f in orphans.items() if parents.get(pid) not in orphans]


def diagnose(reading: GpuReading | None, marked: list[MarkedProcess] | None = None) -> DoctorReport:
    """Everything the doctor can say now.  `reading` is one GPU sample (None: processes only)."""
    findings = find_orphans(marked)
    reported = {f.pid for f in findings}
    uid = os.getuid()
    if reading is None:
        return DoctorReport(tuple(findings), "GPUs not sampled")
    subreapers = session_subreapers() if reading.processes else frozenset()
    for proc in reading.processes:
        if proc.pid in reported:
            continue
        facts = process_facts(proc.pid)
        if facts is None:
            continue
        ppid, owner, command = facts.ppid, facts.uid, facts.command
        if gpu_holder_reparented(ppid, subreapers):
            reported.add(proc.pid)
            mib = f"{proc.used_memory_bytes / 2**20:.0f} MiB" if proc.used_memory_bytes else "memory"
            whose = "" if owner == uid else " (another user's: left alone)"
            findings.append(
                Finding(
                    kind=FindingKind.REPARENTED_GPU_HOLDER,
                    message=f"pid {proc.pid} holds {mib} on GPU {proc.gpu_index} and its parent is {'init' if ppid == 1 else 'the session manager'} (it was orphaned){whose}",
                    pid=proc.pid,
                    start_time=facts.start_time,
                    gpu_index=proc.gpu_index,
                    cleanable=owner == uid,
                    command=command,
                )
            )
    for gpu in reading.gpus:
        if gpu.error:
            findings.append(
                Finding(
                    FindingKind.GPU_LOST,
                    f"GPU {gpu.index} stopped answering: {gpu.error}",
                    gpu_index=gpu.index,
                )
            )
            continue
        unowned = unowned_memory_mib(gpu)
        if unowned is not None:
            findings.append(
                Finding(
                    FindingKind.UNOWNED_MEMORY,
                    f"GPU {gpu.index} has {unowned:.0f} MiB in use but no process holds it "
                    "(a process in another container, or a leaked context)",
                    gpu_index=gpu.index,
                )
            )
        problems = throttle_problems(gpu.throttle_mask)
        if problems:
            findings.append(
                Finding(
                    FindingKind.THROTTLING,
                    f"GPU {gpu.index} is slowed down: {', '.join(problems)}",
                    gpu_index=gpu.index,
                )
            )
    if reading.unavailable:
        status = reading.unavailable
    else:
        status = f"{len(reading.gpus)} GPU(s), driver {reading.driver_version or '—'}"
    return DoctorReport(tuple(findings), status)


def clean_up(findings: list[Finding] | tuple[Finding, ...], grace_s: float = 5.0) -> list[CleanupOutcome]:
    """End the process tree of every cleanable finding (procs.kill.stop_tree: TERM, grace, KILL;
    current user only; never this program, its ancestors or a recycled pid)."""
    outcomes = []
    for finding in findings:
        if not finding.cleanable or finding.pid is None:
            continue
        result = stop_tree(finding.pid, finding.start_time, grace_s)
        outcomes.append(CleanupOutcome(finding.pid, result.ended, result.killed, result.skipped))
    return outcomes
