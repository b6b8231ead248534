"""Run folders and exit records: names, shapes and what an exit means.  Standard library only.

A run folder `<data>/runs/<UTC YYYY-MM-DD_HH-MM-SS-ffffff>_<kind>_<short id>/` holds everything one
local job left behind; the app, the CLI and the supervisor take its file names from domain/runfiles.py.
"""

from __future__ import annotations

import re
import signal as _signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobOutcome, JobState

_NAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}-\d{6})_([a-z0-9-]+)_([0-9a-f]+)$")
_STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"


def run_folder_name(when: datetime, kind: str, short_id: str) -> str:
    """`2026-11-23_10-44-06-123456_command_1a2b3c` (UTC, microseconds, sortable)."""
    if not re.fullmatch(r"[a-z0-9-]+", kind):
        raise ValueError(f"job kind {kind!r} cannot be part of a folder name")
    if not re.fullmatch(r"[0-9a-f]+", short_id):
        raise ValueError(f"short id {short_id!r} must be lowercase hex")
    return f"{when.astimezone(UTC).strftime(_STAMP_FORMAT)}_{kind}_{short_id}"


def parse_run_folder_name(name: str) -> tuple[datetime, str, str] | None:
    """(UTC time, kind, short id) of a run folder name, or None when it is not one of ours."""
    match = _NAME_RE.match(name)
    if not match:
        return None
    when = datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC)
    return when, match.group(2), match.group(3)


@dataclass(frozen=True)
class ExitRecord:
    """How the job's main process ended, as the supervisor saw it.

    `returncode` follows subprocess: >= 0 an exit code, < 0 killed by that signal.  `cancelled` is
    True when the supervisor was asked to stop the job (SIGTERM to the supervisor).  `spawn_error`
    is set when the command could not be executed at all (returncode is then None).
    """

    returncode: int | None
    cancelled: bool = False
    spawn_error: str = ""
    started_at: str = ""
    ended_at: str = ""
    job_pid: int | None = None
    leftovers_killed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "returncode": self.returncode,
            "cancelled": self.cancelled,
            "spawn_error": self.spawn_error,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "job_pid": self.job_pid,
            "leftovers_killed": self.leftovers_killed,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExitRecord:
        rc = data.get("returncode")
        return cls(
            returncode=None if rc is None else int(rc),
            cancelled=bool(data.get("cancelled", False)),
            spawn_error=str(data.get("spawn_error", "")),
            started_at=str(data.get("started_at", "")),
            ended_at=str(data.get("ended_at", "")),
            job_pid=data.get("job_pid"),
            leftovers_killed=int(data.get("leftovers_killed", 0)),
            extra=dict(data.get("extra", {})),
        )


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def outcome_from_exit(record: ExitRecord, kind: JobKind = JobKind.COMMAND) -> JobOutcome:
    """The final state an exit record means, with the best explanation there is.

    A cancel always ends CANCELLED (whatever signal finally took the job down); SIGKILL that nobody
    asked for is, on Linux, almost always the kernel's OOM killer.  A job kind may explain its own
    exits better (a quantization or evaluation worker's exit 2 means its inputs were refused).
    """
    outcome = _generic_outcome(record)
    if kind in (JobKind.QUANTIZE, JobKind.EVALUATE):
        from msquant_desktop.domain.quantize import explain_worker_exit

        better = explain_worker_exit(record.returncode, record.cancelled) if not record.spawn_error else None
        if better:
            return JobOutcome(outcome.state, outcome.exit_code, outcome.signal, better)
    return outcome


def _generic_outcome(record: ExitRecord) -> JobOutcome:
    if record.spawn_error:
        return JobOutcome(JobState.FAILED_TO_START, reason=record.spawn_error)
    rc = record.returncode
    if record.cancelled:
        if rc is not None and rc < 0:
            return JobOutcome(JobState.CANCELLED, signal=-rc, reason=f"stopped by {signal_name(-rc)}")
        return JobOutcome(JobState.CANCELLED, exit_code=rc, reason="")
    if rc is None:
        return JobOutcome(JobState.LOST, reason="the supervisor recorded no exit status")
    if rc == 0:
        return JobOutcome(JobState.COMPLETED, exit_code=0)
    if rc > 0:
        return JobOutcome(JobState.FAILED, exit_code=rc)
    sig = -rc
    reason = signal_name(sig)
    if sig == _signal.SIGKILL:
        reason = "SIGKILL without a cancel: probably killed by the OOM killer (out of memory)"
    return JobOutcome(JobState.KILLED, signal=sig, reason=reason)


def resolve_placeholder(value: str, run_dir: str) -> str:
    """Replace `{run_dir}` (domain/markers.RUN_DIR_PLACEHOLDER) in one argv element or cwd."""
    from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER

    return value.replace(RUN_DIR_PLACEHOLDER, run_dir)


def build_launch(
    spec_argv: tuple[str, ...],
    spec_cwd: str | None,
    spec_env: tuple[tuple[str, str], ...],
    job_id: int,
    run_dir: str,
    store_path: str,
    gpu_indices: tuple[int, ...],
    base_env: dict[str, str],
    grace_seconds: float,
    secret_patterns: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """What the supervisor executes, and the full environment to start it with.

    Returns (launch record, environment).  The record is what `launch.json` keeps: argv and cwd with
    placeholders resolved, and only the variables this job sets on top of the inherited environment
    (the spec's, the markers, the GPU slots) with secret-looking values redacted — never the user's
    whole environment.  The supervisor passes its own (full) environment to the job.
    A job that asked for no GPU gets `CUDA_VISIBLE_DEVICES=""` so it cannot take one by accident; its
    slots are mapped through an inherited CUDA_VISIBLE_DEVICES (`domain/cuda_devices.py`, ValueError
    for a slot that list does not have).
    """
    from msquant_desktop.domain.cuda_devices import CUDA_VISIBLE_DEVICES, job_cuda_env
    from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV, STORE_ENV
    from msquant_desktop.domain.secrets import redact_env

    own = dict(spec_env)
    own[JOB_ID_ENV] = str(job_id)
    own[RUN_DIR_ENV] = run_dir
    own[STORE_ENV] = store_path
    own.update(job_cuda_env(gpu_indices, base_env.get(CUDA_VISIBLE_DEVICES)))
    own["PYTHONUNBUFFERED"] = base_env.get("PYTHONUNBUFFERED", dict(spec_env).get("PYTHONUNBUFFERED", "1"))
    env = {**base_env, **own}
    cwd = resolve_placeholder(spec_cwd, run_dir) if spec_cwd else run_dir
    record = {
        "job_id": job_id,
        "argv": [resolve_placeholder(a, run_dir) for a in spec_argv],
        "cwd": cwd,
        "env": redact_env(own, secret_patterns),
        "grace_seconds": grace_seconds,
    }
    return record, env
