"""SLURM jobs in the store: create (STARTING), send once, record the answer, reconcile a lost
answer, apply poll results.

Qt-free on purpose: the ClusterService calls it on the main thread and the `slurm` CLI calls it
directly, so both move jobs through exactly the same steps.

**Sent exactly once or visibly not sent.**  A submission records each step in `result["submit_step"]`
*before* taking it (domain.slurm SUBMIT_*), under a check that the job is still STARTING (a cancel
in between stops it).  So the stored step is never behind what happened: `stored` / `uploaded` mean
sbatch never ran, and such a job whose sending process is gone is FAILED_TO_START — never sent later.
Only `sbatch-sent` means the job may exist; it is then looked up by its unique name and by what sbatch
recorded on the cluster (`SlurmClient.check_submission`) until the cluster answers, and never
submitted again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState, JobTarget
from msquant_desktop.domain.logformat import STDOUT_TAG, tag_lines
from msquant_desktop.domain.markers import EVENT_PREFIX
from msquant_desktop.domain.quantize import parse_event
from msquant_desktop.domain.runfiles import EVENTS_FILE, LOG_FILE
from msquant_desktop.domain.slurm import (
    SUBMIT_ANSWERED,
    SUBMIT_SBATCH_SENT,
    SUBMIT_STORED,
    SUBMIT_UPLOADED,
    ClusterProfile,
    FinalState,
    SlurmSubmission,
    decide_array_final,
    sbatch_may_have_run,
)
from msquant_desktop.procs import identity
from msquant_desktop.slurm.client import (
    CHECK_ABSENT,
    CHECK_FOUND,
    CHECK_REFUSED,
    JobUpdate,
    SlurmClient,
    SlurmError,
    SubmitCheck,
    TrackedJob,
    detect_wandb,
)
from msquant_desktop.slurm.connection import CommandNotSent, SshError
from msquant_desktop.slurm.parsers import array_task_ids
from msquant_desktop.slurm.remote_tools import upload_file
from msquant_desktop.slurm.script import (
    RemotePaths,
    ScriptError,
    array_spec_of,
    remote_paths,
    render_script,
    task_args_files,
    upload_targets,
)
from msquant_desktop.store import JobRepository
from msquant_desktop.store.db import transaction

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


LOST_AFTER_POLLS = 10
"""Polls without any source knowing the state of a job that left the queue before it is LOST (the
app and `slurm quantize --wait` alike)."""

ABSENT_CONFIRM_S = 5.0
"""A submission whose sbatch answer was lost counts as not submitted only when two looks at least
this far apart both found no job of its name and no sbatch that could still make one (an exec
request still in flight on the old connection would have run by then)."""


class NotSent(Exception):
    """The submission did not reach sbatch, or sbatch refused it: nothing was submitted."""


class AnswerLost(Exception):
    """sbatch was run and its answer never arrived: the job may exist (reconcile by name)."""


def this_process() -> tuple[int, float | None]:
    pid = os.getpid()
    return pid, identity.start_time(pid)


def create_job(
    repo: JobRepository,
    runs_dir: Path,
    submission: SlurmSubmission,
    kind: JobKind | None = None,
    meta: dict[str, Any] | None = None,
    *,
    script_diff: str = "",
) -> JobRecord:
    """Store the job in STARTING with its run folder, run id and unique SLURM job name, at step
    `stored`, claimed by this process (`claimer_pid`: while it lives, it is the one sending).

    `kind` and `meta` are for jobs of a kind of ours run on a cluster (a quantization: kind
    QUANTIZE, meta {"quantize": ...}); the run's own keys are added to `meta`.
    A submission whose script the user edited in the preview keeps the edit (in its `submission`)
    and says so: `meta["script_edited"]` and the diff from the rendered script (`script_diff`,
    from `slurm.script.edit_diff`), shown in the job's details."""
    run_dir, run_id = make_run_dir(runs_dir)
    slurm_name = f"{submission.job_name}-{run_id.rsplit('_', 1)[-1]}"
    if kind is None:
        kind = JobKind.PROJECT if submission.project_id is not None else JobKind.COMMAND
    spec = JobSpec(
        name=submission.job_name,
        argv=(*submission.command, *submission.overrides),
        kind=kind,
        target=JobTarget.SLURM,
        gpus=submission.gpus,
        project_id=submission.project_id,
        cluster=submission.cluster,
        meta={
            **(meta or {}),
            "run_id": run_id,
            "slurm_name": slurm_name,
            "submission": _submission_dict(submission),
        },
    )
    if submission.edited_script is not None:
        spec = dataclasses.replace(
            spec, meta={**spec.meta, "script_edited": True, "script_diff": script_diff}
        )
    record = repo.create(spec, JobState.STARTING, note=f"submitting to {submission.cluster}")
    pid, start = this_process()
    return repo.update(
        record.id,
        run_dir=str(run_dir),
        result={"submit_step": SUBMIT_STORED},
        claimer_pid=pid,
        claimer_start_time=start,
    )


def _submission_dict(submission: SlurmSubmission) -> dict[str, Any]:
    data = dataclasses.asdict(submission)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}  # pairs stay lists


def submission_of(job: JobRecord) -> SlurmSubmission:
    data = dict(job.spec.meta["submission"])
    data["command"] = tuple(data["command"])
    data["overrides"] = tuple(data["overrides"])
    data["extra_env"] = tuple(tuple(pair) for pair in data.get("extra_env", ()))
    data["sbatch_lines"] = tuple(data.get("sbatch_lines", ()))
    data["task_overrides"] = tuple(tuple(words) for words in data.get("task_overrides", ()))
    data["uploads"] = tuple(tuple(pair) for pair in data.get("uploads", ()))
    return SlurmSubmission(**data)


def render_for(job: JobRecord, profile: ClusterProfile, workspace: str) -> tuple[str, RemotePaths]:
    run_id = job.spec.meta["run_id"]
    script = render_script(submission_of(job), profile, run_id, job.spec.meta["slurm_name"], workspace)
    return script, remote_paths(workspace, run_id)


def submit_step(job: JobRecord) -> str | None:
    """How far the job's submission got (None: stored by a version that did not record it)."""
    step = job.result.get("submit_step")
    return str(step) if step is not None else None


def record_step(
    repo: JobRepository,
    job_id: int,
    step: str,
    script: str | None = None,
    remote: RemotePaths | None = None,
) -> bool:
    """Store that the submission is about to take `step`, before it is taken; False (nothing stored)
    when the job is no longer STARTING: it was cancelled meanwhile and the step must not be taken.

    Check and write are one transaction, so a cancel from another process (the CLI) either comes
    first and stops the step, or finds the step stored and knows sbatch may run.
    """
    with transaction(repo.connection):
        job = repo.get(job_id)
        if job.state is not JobState.STARTING:
            return False
        result = {**job.result, "submit_step": step}
        if remote is not None:
            result["remote_run_dir"] = remote.run_dir
        repo.update(job_id, result=result)
    if script and job.run_dir:
        (Path(job.run_dir) / LOCAL_SCRIPT).write_text(script, encoding="utf-8")
    return True


StepRecorder = Callable[[str, str | None, RemotePaths | None], None]
"""Records a step before it is taken (see `record_step`); raises NotSent when it must not be taken."""


def steps_in_store(repo: JobRepository, job_id: int) -> StepRecorder:
    """A StepRecorder that writes to `repo` directly (the CLI: the store is on this thread)."""

    def record(step: str, script: str | None, remote: RemotePaths | None) -> None:
        if not record_step(repo, job_id, step, script, remote):
            raise NotSent(f"cancelled before sbatch ran (job {job_id} is {repo.get(job_id).state.value})")

    return record


def send_submission(client: SlurmClient, job: JobRecord, step: StepRecorder) -> tuple[str, str, RemotePaths]:
    """Render, upload and run sbatch exactly once; (SLURM id, script, remote paths).

    Raises NotSent when nothing was submitted (the connection failed before sbatch ran, the script
    cannot be rendered, sbatch refused the job, or `step` refused to record the next step), and
    AnswerLost when sbatch was run but its answer did not arrive: the job may exist, and is never
    sent again; `check_submission` finds out.  Nothing here retries.
    """
    try:
        script, remote = render_for(job, client.profile, client.workspace())
    except SshError as exc:
        raise NotSent(f"not sent: the connection failed before anything was sent ({exc})") from exc
    except (ScriptError, OSError) as exc:
        raise NotSent(f"not sent: {exc}") from exc
    try:
        # upload_script makes the job's folder (and puts an array's task files there first).
        client.upload_script(remote, script, task_args_files(submission_of(job), remote))
        for local, target in upload_targets(submission_of(job), remote):
            upload_file(client.connection, local, target)
    except SshError as exc:
        raise NotSent(
            f"not sent: the connection failed while uploading the script; sbatch never ran ({exc})"
        ) from exc
    step(SUBMIT_UPLOADED, script, remote)
    step(SUBMIT_SBATCH_SENT, None, None)
    try:
        slurm_id = client.sbatch(remote)
    except CommandNotSent as exc:
        raise NotSent(f"not sent: the connection failed before sbatch was run ({exc})") from exc
    except SlurmError as exc:
        raise NotSent(str(exc)) from exc
    except (SshError, ValueError) as exc:
        raise AnswerLost(f"sbatch was sent but its answer was lost ({exc})") from exc
    return slurm_id, script, remote


def _local_script(job: JobRecord) -> str | None:
    if not job.run_dir:
        return None
    try:
        return (Path(job.run_dir) / LOCAL_SCRIPT).read_text(encoding="utf-8")
    except OSError:
        return None


def record_submitted(
    repo: JobRepository, job_id: int, slurm_id: str, script: str | None, remote: RemotePaths, how: str = ""
) -> JobRecord:
    """sbatch's answer (or the job found by name): QUEUED with its SLURM id; an array job's task
    expression is kept (`result["array"]`).  A job the user asked to cancel meanwhile stays
    CANCELLING with its id (the caller sends scancel); one already recorded is left as it is."""
    job = repo.get(job_id)
    if job.slurm_job_id or job.state.is_final:
        return job
    if script and job.run_dir:
        (Path(job.run_dir) / LOCAL_SCRIPT).write_text(script, encoding="utf-8")
    script = script or _local_script(job)
    result = {
        **job.result,
        "remote_run_dir": remote.run_dir,
        "log_offset": 0,
        "submit_step": SUBMIT_ANSWERED,
    }
    for key in ("absent_since", "submit_check"):
        result.pop(key, None)
    array = array_spec_of(script) if script else None
    if array is not None:
        result["array"] = array
    if job.state is JobState.CANCELLING:
        return repo.update(job_id, slurm_job_id=slurm_id, result=result)
    note = f"sbatch: job {slurm_id}" + (f" ({how})" if how else "")
    return repo.transition(job_id, JobState.QUEUED, note=note, slurm_job_id=slurm_id, result=result)


def record_not_sent(
    repo: JobRepository, job_id: int, reason: str, script: str | None = None
) -> JobRecord | None:
    """Nothing was submitted: FAILED_TO_START with the reason, or CANCELLED when the user had asked to
    cancel it.  None when the job had already ended (or was adopted meanwhile)."""
    job = repo.get(job_id)
    if job.state.is_final or job.slurm_job_id:
        return None
    if script and job.run_dir:
        (Path(job.run_dir) / LOCAL_SCRIPT).write_text(script, encoding="utf-8")
    if job.state is JobState.CANCELLING:
        note = f"cancelled; it never reached the cluster: {reason}"
        return repo.transition(job_id, JobState.CANCELLED, note=note, reason=note)
    return repo.transition(job_id, JobState.FAILED_TO_START, note=reason, reason=reason)


CANCELLED_UNSENT = "cancelled before it was sent to the cluster"


def cancel_if_unsent(repo: JobRepository, job_id: int) -> bool:
    """CANCELLED at once if its submission has not reached sbatch (checked and changed in one
    transaction: a sender in another process then finds it cancelled before its next step)."""
    with transaction(repo.connection):
        job = repo.get(job_id)
        if job.state is not JobState.STARTING or job.slurm_job_id or sbatch_may_have_run(submit_step(job)):
            return False
        repo.transition(job_id, JobState.CANCELLED, note=CANCELLED_UNSENT, reason=CANCELLED_UNSENT)
    return True


def record_answer_lost(repo: JobRepository, job_id: int, reason: str) -> JobRecord:
    """sbatch may have run: the job stays STARTING (or CANCELLING) and is looked up by name."""
    job = repo.get(job_id)
    name = job.spec.meta.get("slurm_name", "")
    result = {**job.result, "submit_check": f"{reason}; looking for {name} on the cluster"}
    return repo.update(job_id, result=result)


def awaits_answer(job: JobRecord) -> bool:
    """A SLURM job with no SLURM id that is not over: being sent, or its answer is unknown."""
    return (
        job.spec.target is JobTarget.SLURM
        and job.state in (JobState.STARTING, JobState.CANCELLING)
        and not job.slurm_job_id
    )


def sent_by_another_process(job: JobRecord) -> bool:
    """Another live process (a second app, `slurm submit`) claimed the job and may be sending it."""
    if job.claimer_pid is None or job.claimer_pid == os.getpid():
        return False
    return identity.alive(job.claimer_pid) and identity.same_start(
        identity.start_time(job.claimer_pid), job.claimer_start_time
    )


def settle_unsent_leftover(repo: JobRepository, job: JobRecord, why: str) -> JobRecord | None:
    """A submission nobody is sending any more (the app closed or crashed, its worker was retired)
    whose stored step says sbatch never ran: FAILED_TO_START (never sent later).  None, untouched,
    when sbatch may have run: that one is reconciled by name instead."""
    if sbatch_may_have_run(submit_step(job)):
        return None
    return record_not_sent(repo, job.id, f"not sent: {why}; sbatch never ran, nothing was submitted")


def remote_of(job: JobRecord, workspace: str) -> RemotePaths:
    """Where the job lives on the cluster (`workspace` expanded there, see SlurmClient.workspace)."""
    return remote_paths(workspace, job.spec.meta["run_id"])


def apply_check(
    repo: JobRepository, job_id: int, check: SubmitCheck, remote: RemotePaths, now: float | None = None
) -> tuple[JobRecord, str]:
    """Store what `check_submission` found for a job whose sbatch answer was lost; returns the job and
    a line for the user ("" when nothing changed).  `now` is the wall clock (ABSENT_CONFIRM_S)."""
    now = time.time() if now is None else now
    job = repo.get(job_id)
    if not awaits_answer(job):
        return job, ""
    if check.outcome == CHECK_FOUND and check.slurm_id:
        job = record_submitted(repo, job_id, check.slurm_id, None, remote, how=check.detail)
        return job, f"job {job_id}: submitted after all ({check.detail})"
    if check.outcome == CHECK_REFUSED:
        ended = record_not_sent(repo, job_id, check.detail)
        return (ended or repo.get(job_id)), f"job {job_id} was not submitted: {check.detail}"
    result = dict(job.result)
    if check.outcome == CHECK_ABSENT:
        since = result.get("absent_since")
        if isinstance(since, (int, float)) and 0 <= now - since:
            if now - since >= ABSENT_CONFIRM_S:
                reason = f"not submitted: {check.detail} (looked twice, {now - since:.0f} s apart)"
                ended = record_not_sent(repo, job_id, reason)
                return (ended or repo.get(job_id)), f"job {job_id} was not submitted: {check.detail}"
        else:
            result["absent_since"] = now
    result["submit_check"] = (
        f"looking for {job.spec.meta.get('slurm_name', '')} on the cluster: {check.detail}"
    )
    return repo.update(job_id, result=result), ""


def open_jobs(repo: JobRepository, cluster: str | None = None) -> list[JobRecord]:
    jobs = repo.list_jobs(states=SLURM_OPEN_STATES, newest_first=False, target=JobTarget.SLURM)
    return [j for j in jobs if cluster is None or j.spec.cluster == cluster]


def tracked(job: JobRecord) -> TrackedJob | None:
    """What the tracker needs; None for jobs not submitted yet."""
    remote_dir = job.result.get("remote_run_dir")
    if not job.slurm_job_id or not remote_dir:
        return None
    tasks = tuple(array_task_ids(job.result.get("array")))
    stored = job.result.get("tasks", {})
    ended = (
        frozenset(i for i, t in stored.items() if t.get("state") in _FINAL_VALUES) if tasks else frozenset()
    )
    offsets = {str(k): int(v) for k, v in job.result.get("task_offsets", {}).items()}
    return TrackedJob(
        job.id,
        job.slurm_job_id,
        RemotePaths(remote_dir),
        int(job.result.get("log_offset", 0)),
        tasks,
        ended,
        offsets,
    )


def _task_record(final: FinalState) -> dict[str, Any]:
    return {
        "state": final.state.value,
        "exit_code": final.exit_code,
        "signal": final.signal,
        "reason": final.reason,
        "decided_by": final.decided_by or final.source,
        "evidence": list(final.evidence[:4]),
    }


def _task_final(record: dict[str, Any]) -> FinalState:
    return FinalState(
        JobState(record["state"]),
        record.get("exit_code"),
        record.get("signal"),
        record.get("reason", ""),
        "tasks",
        record.get("decided_by", ""),
        tuple(record.get("evidence", ())),
    )


def task_states(job: JobRecord) -> list[tuple[str, str]]:
    """An array job's tasks as (`46_1`, state) in index order: SLURM's word while open (PENDING,
    RUNNING), our final state once ended; [] for a job that is not an array."""
    indices = array_task_ids(job.result.get("array"))
    stored = job.result.get("tasks", {})
    base = job.slurm_job_id or "?"
    return [(f"{base}_{i}", str(stored.get(i, {}).get("state", "PENDING"))) for i in indices]


def _merge_tasks(job: JobRecord, update: JobUpdate, result: dict[str, Any]) -> FinalState | None:
    """Fold this poll's task news into `result`; the array's final state once every task ended."""
    tasks: dict[str, Any] = dict(result.get("tasks", {}))
    for index, task in update.tasks.items():
        if task.final is not None:
            tasks[index] = _task_record(task.final)
        elif task.slurm_state:
            tasks[index] = {"state": task.slurm_state.split(" ", 1)[0]}
    result["tasks"] = tasks
    result["task_offsets"] = {**result.get("task_offsets", {}), **update.task_offsets}
    indices = array_task_ids(result.get("array"))
    finals = {i: tasks[i] for i in indices if i in tasks and tasks[i]["state"] in _FINAL_VALUES}
    if indices and len(finals) == len(indices):
        return decide_array_final(job.slurm_job_id or "?", {i: _task_final(r) for i, r in finals.items()})
    return None


_FINAL_VALUES = frozenset(state.value for state in JobState if state.is_final)


def apply_final(repo: JobRepository, job: JobRecord, final: FinalState) -> JobRecord:
    """Store a final state with what decided it: `result["decided_by"]` and `result["final_evidence"]`
    (what every source said) for the details, and the same in the reason and the transition note.

    A job of ours (quantize, evaluate) that COMPLETED gets its worker's `result` event merged into
    its result, marked with its cluster, so the Results view and `results` list it as they list a
    local one; one that ended any other way keeps it aside (never shown as a result)."""
    if job.state is JobState.QUEUED and final.state is not JobState.CANCELLED:
        # It started and ended between two polls: record that it ran.
        job = repo.transition(job.id, JobState.RUNNING, note="ran between two polls")
    decided_by = final.decided_by or final.source
    result = {**job.result, "decided_by": decided_by}
    event = result.get(WORKER_RESULT_KEY)
    if final.state is JobState.COMPLETED and isinstance(event, dict):
        result.update(event)
        result["cluster"] = job.spec.cluster
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
    final = update.final
    if update.tasks:
        result = dict(job.result)
        final = _merge_tasks(job, update, result)
        if result != job.result:
            job = repo.update(job.id, result=result)
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
    if text and job.spec.kind in EVENT_KINDS:
        job = _fold_events(repo, job, text)
    if final is not None:
        job = apply_final(repo, job, final)
    elif update.state is JobState.RUNNING and job.state in (JobState.QUEUED, JobState.STARTING):
        job = repo.transition(job.id, JobState.RUNNING, note=f"SLURM {update.slurm_state}")
    return job, text


EVENT_KINDS = (JobKind.QUANTIZE, JobKind.EVALUATE)
"""Kinds whose workers print `@@MSQUANT-EVENT@@` lines: a SLURM job of these kinds has them read
from its log as it arrives."""
WORKER_RESULT_KEY = "worker_result"
"""Where a SLURM job keeps its worker's `result` event until the job is known to have COMPLETED."""


def log_events(text: str) -> list[dict[str, Any]]:
    """The events in whole log lines read from a SLURM job's log.  The log holds stdout and stderr
    together, so a tqdm redraw (a carriage return, no newline) may stand before an event on its line."""
    events = []
    for line in text.splitlines():
        start = line.find(EVENT_PREFIX)
        event = parse_event(line[start:]) if start >= 0 else None
        if event is not None:
            events.append(event)
    return events


def _fold_events(repo: JobRepository, job: JobRecord, text: str) -> JobRecord:
    """Keep the job's events as a local job's are kept (the run folder's events.jsonl), its newest
    progress and stage in `result` (the table and `--wait` show them), and its `result` event
    aside until the job COMPLETED (see apply_final)."""
    events = log_events(text)
    if not events:
        return job
    if job.run_dir:
        with (Path(job.run_dir) / EVENTS_FILE).open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
    result = dict(job.result)
    for event in events:
        kind = event.get("type")
        if kind == "progress":
            result["progress"] = event
        if kind in ("progress", "stage") and event.get("stage"):
            result["stage"] = event["stage"]  # the newest of either
        elif kind == "result":
            result[WORKER_RESULT_KEY] = event
        elif kind == "error":
            result.setdefault("worker_errors", []).append(event)
    return repo.update(job.id, result=result)


def mark_lost(repo: JobRepository, job_id: int, reason: str) -> JobRecord:
    return repo.transition(job_id, JobState.LOST, note=reason, reason=reason)
