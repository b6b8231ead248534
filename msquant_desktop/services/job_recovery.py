"""After a restart: is an active job still running (adopt it), ended meanwhile, or lost?"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobRecord, JobState
from msquant_desktop.domain.runs import outcome_from_exit
from msquant_desktop.procs import kill
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.store.run_folders import (
    last_event_of_type,
    log_end_offset,
    read_events,
    read_exit_record,
)
from msquant_desktop.supervisor import control

log = logging.getLogger(__name__)


def adopt_or_settle(
    repo: JobRepository, record: JobRecord
) -> tuple[int, float | None, int, list[dict[str, Any]]] | None:
    """Decide an active local job's fate.

    Returns (supervisor pid, its start time, log offset, events) when the job is still running under
    its supervisor — checked by pid + start time + the run-folder marker, never the pid alone.
    Otherwise records the final state (from the exit record, or LOST with the reason) and returns None.
    """
    if not record.run_dir:
        reason = "the app stopped before the job's run folder was created"
        repo.finish_if_active(record.id, JobState.LOST, reason, reason=reason)
        return None
    run_dir = Path(record.run_dir)
    pid, start = record.pid, record.pid_start_time
    if pid is None:
        identity = control.supervisor_identity(run_dir)
        if identity is not None:
            pid, start = identity
    # The exit record decides first: a supervisor may still be busy for a moment after writing it.
    exit_record = read_exit_record(run_dir)
    if exit_record is not None:
        outcome = outcome_from_exit(exit_record)
        fields: dict[str, Any] = {
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "reason": outcome.reason,
        }
        result = last_event_of_type(read_events(run_dir), "result")
        if result is not None:
            fields["result"] = result
        repo.finish_if_active(record.id, outcome.state, "ended while the app was down", **fields)
        return None
    if control.supervisor_alive(pid, start, run_dir):
        assert pid is not None
        if record.pid is None:
            repo.update(record.id, pid=pid, pid_start_time=start)
        return pid, start, log_end_offset(run_dir), read_events(run_dir)
    leftovers = kill.stop_marked(str(run_dir), 0.0, kill_wait_s=0.0).targets
    if leftovers:
        reason = f"its supervisor vanished; {len(leftovers)} unsupervised process(es) of the job were killed"
    else:
        reason = "no supervisor and no exit record: the job vanished while the app was down"
    repo.finish_if_active(record.id, JobState.LOST, reason, reason=reason)
    return None
