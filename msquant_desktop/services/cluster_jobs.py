"""SLURM jobs in the store: create (STARTING), record the submission, apply poll results.

Qt-free on purpose: the ClusterService calls it on the main thread and the `slurm` CLI calls it
directly, so both move jobs through exactly the same steps.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState, JobTarget
from msquant_desktop.domain.logformat import STDOUT_TAG, tag_lines
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.domain.slurm import ClusterProfile, FinalState, SlurmSubmission, reconnect_delay
from msquant_desktop.slurm.client import JobUpdate, SlurmClient, TrackedJob, detect_wandb
from msquant_desktop.slurm.connection import SshError
from msquant_desktop.slurm.script import RemotePaths, remote_paths, render_script
from msquant_desktop.store import JobRepository

LOCAL_SCRIPT = "job.sbatch"
LOCAL_LOG = "slurm.log"
SLURM_OPEN_STATES = (JobState.STARTING, JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING)


def make_run_dir(runs_dir: Path) -> tuple[Path, str]:
    """A new local run folder `<UTC YYYY-MM-DD_HH-MM-SS-ffffff>_slurm_<short id>` (exclusive mkdir)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d_%H-%M-%S-%f")
        run_id = f"{stamp}_slurm_{secrets.token_hex(3)}"
        path = runs_dir / run_id
        try:
            path.mkdir()  # exclusive: fails if it exists, so two submits never share a folder
        except FileExistsError:
            continue
        return path, run_id


def create_job(repo: JobRepository, runs_dir: Path, submission: SlurmSubmission) -> JobRecord:
    """Store the job in STARTING with its run folder, run id and unique SLURM job name."""
    run_dir, run_id = make_run_dir(runs_dir)
    slurm_name = f"{submission.job_name}-{run_id.rsplit('_', 1)[-1]}"
    spec = JobSpec(
        name=submission.job_name,
        argv=(*submission.command, *submission.overrides),
        kind=JobKind.PROJECT if submission.project_id is not None else JobKind.COMMAND,
        target=JobTarget.SLURM,
        gpus=submission.gpus,
        project_id=submission.project_id,
        cluster=submission.cluster,
        meta={"run_id": run_id, "slurm_name": slurm_name, "submission": _submission_dict(submission)},
    )
    record = repo.create(spec, JobState.STARTING, note=f"submitting to {submission.cluster}")
    return repo.update(record.id, run_dir=str(run_dir))


def _submission_dict(submission: SlurmSubmission) -> dict[str, Any]:
    data = dataclasses.asdict(submission)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def submission_of(job: JobRecord) -> SlurmSubmission:
    data = dict(job.spec.meta["submission"])
    data["command"] = tuple(data["command"])
    data["overrides"] = tuple(data["overrides"])
    data["extra_env"] = tuple(tuple(pair) for pair in data.get("extra_env", ()))
    return SlurmSubmission(**data)


def render_for(job: JobRecord, profile: ClusterProfile, workspace: str) -> tuple[str, RemotePaths]:
    run_id = job.spec.meta["run_id"]
    script = render_script(submission_of(job), profile, run_id, job.spec.meta["slurm_name"], workspace)
    return script, remote_paths(workspace, run_id)


def submit_never_twice(
    client: SlurmClient, job: JobRecord, reconcile_first: bool = False, attempts: int = 4
) -> tuple[str, str, RemotePaths]:
    """Render, upload and sbatch; after a dropped connection, reconnect and adopt the job already
    submitted under its unique name instead of submitting it again (`reconcile_first` does that before the
    first attempt too: a job left STARTING by an earlier run).  Returns (slurm id, script, paths)."""
    for attempt in range(attempts):
        try:
            if attempt and not client.connection.is_open:
                client.connection.connect()
            script, remote = render_for(job, client.profile, client.workspace())
            slurm_id = client.submit(
                remote, script, job.spec.meta["slurm_name"], retry=reconcile_first or attempt > 0
            )
            return slurm_id, script, remote
        except SshError:
            if attempt == attempts - 1:
                raise
            client.connection.close()
            time.sleep(reconnect_delay(attempt + 1, base=0.25))
    raise AssertionError("unreachable")


def record_submitted(
    repo: JobRepository, job_id: int, slurm_id: str, script: str, remote: RemotePaths
) -> JobRecord:
    job = repo.get(job_id)
    if job.run_dir:
        (Path(job.run_dir) / LOCAL_SCRIPT).write_text(script, encoding="utf-8")
    result = {**job.result, "remote_run_dir": remote.run_dir, "log_offset": 0}
    return repo.transition(
        job_id, JobState.QUEUED, note=f"sbatch: job {slurm_id}", slurm_job_id=slurm_id, result=result
    )


def record_submit_failed(
    repo: JobRepository, job_id: int, reason: str, script: str | None = None
) -> JobRecord:
    job = repo.get(job_id)
    if script and job.run_dir:
        (Path(job.run_dir) / LOCAL_SCRIPT).write_text(script, encoding="utf-8")
    return repo.transition(job_id, JobState.FAILED_TO_START, note=reason, reason=reason)


def open_jobs(repo: JobRepository, cluster: str | None = None) -> list[JobRecord]:
    jobs = repo.list_jobs(states=SLURM_OPEN_STATES, newest_first=False, target=JobTarget.SLURM)
    return [j for j in jobs if cluster is None or j.spec.cluster == cluster]


def tracked(job: JobRecord) -> TrackedJob | None:
    """What the tracker needs; None for jobs not submitted yet."""
    remote_dir = job.result.get("remote_run_dir")
    if not job.slurm_job_id or not remote_dir:
        return None
    return TrackedJob(job.id, job.slurm_job_id, RemotePaths(remote_dir), int(job.result.get("log_offset", 0)))


def apply_final(repo: JobRepository, job: JobRecord, final: FinalState) -> JobRecord:
    """Store a final state with what decided it: `result["decided_by"]` and `result["final_evidence"]`
    (what every source said) for the details, and the same in the reason and the transition note."""
    if job.state is JobState.QUEUED and final.state is not JobState.CANCELLED:
        # It started and ended between two polls: record that it ran.
        job = repo.transition(job.id, JobState.RUNNING, note="ran between two polls")
    decided_by = final.decided_by or final.source
    result = {**job.result, "decided_by": decided_by}
    if final.evidence:
        result["final_evidence"] = list(final.evidence)
    job = repo.update(job.id, result=result)
    reason = f"{final.reason} (decided by {decided_by})" if final.reason else f"decided by {decided_by}"
    note = f"{final.state.value} (decided by {decided_by})"
    if final.evidence:
        note += ": " + "; ".join(final.evidence)
    return repo.transition(
        job.id, final.state, note=note, exit_code=final.exit_code, signal=final.signal, reason=reason
    )


def apply_update(repo: JobRepository, update: JobUpdate) -> tuple[JobRecord, str]:
    """Store what a poll learned about one job; returns the record and the new log text."""
    job = repo.get(update.job_id)
    if job.state.is_final:
        return job, ""
    text = update.log_text
    if text or update.log_offset != job.result.get("log_offset", 0):
        if job.run_dir and text:
            run_dir = Path(job.run_dir)
            with (run_dir / LOCAL_LOG).open("a", encoding="utf-8") as fh:
                fh.write(text)
            # The same lines in the Jobs tab's log format, so its log view shows SLURM jobs too.
            with (run_dir / LOG_FILE).open("ab") as fh:
                fh.write(tag_lines(STDOUT_TAG, text.encode("utf-8")))
        urls, offline = detect_wandb(text)
        result = dict(job.result)
        result["log_offset"] = update.log_offset
        if urls:
            result["wandb_urls"] = list(dict.fromkeys([*result.get("wandb_urls", []), *urls]))
        if offline:
            result["wandb_offline"] = list(dict.fromkeys([*result.get("wandb_offline", []), *offline]))
            result["wandb_sync"] = [f"wandb sync {path}" for path in result["wandb_offline"]]
        job = repo.update(job.id, result=result)
    if update.final is not None:
        job = apply_final(repo, job, update.final)
    elif update.state is JobState.RUNNING and job.state in (JobState.QUEUED, JobState.STARTING):
        job = repo.transition(job.id, JobState.RUNNING, note=f"SLURM {update.slurm_state}")
    return job, text


def mark_lost(repo: JobRepository, job_id: int, reason: str) -> JobRecord:
    return repo.transition(job_id, JobState.LOST, note=reason, reason=reason)
