"""Quantization and evaluation as SLURM jobs: the cluster needs a Python with llmcompressor and
nothing of ours.

Qt-free on purpose (it joins `slurm/`, `quantize/` and the store steps of `cluster_jobs`, which
adapters may not do), so the `slurm quantize|evaluate` CLI and the app take the same steps:

1. `probe_python` asks the cluster's Python (the `--python` given, else the profile's `python:`) for
   its version and llmcompressor's, whether the model is there and the output free — one line of
   error and nothing submitted when not (`ClusterCheckError`).  A model may be a folder on the
   cluster or a Hugging Face repo id (`org/name[@revision]`), found in the same round trip in the
   cluster's HF cache (huggingface_hub's own lookup); the job then runs on that snapshot folder and
   its meta keeps both (`hub_models`);
2. the workers travel as one zipapp (`quantize/bundle.py`) uploaded into the job's folder beside the
   script (a job without a repository: `SlurmSubmission.no_repo` + `uploads`);
3. the job is stored with kind QUANTIZE / EVALUATE and sent exactly once (`cluster_jobs`); its
   `@@MSQUANT-EVENT@@` lines, read from the log as it is polled, give progress, stage and the result
   (`cluster_jobs.apply_update`), so a dropped connection loses nothing: the offset is stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.evaluate import EVALUATES_META_KEY, EvaluateRequest
from msquant_desktop.domain.gpu_catalog import find_gpu_type
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState
from msquant_desktop.domain.quantize import HubModel, QuantizeRequest, human_bytes, parse_hub_model
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.quantize.bundle import REMOTE_NAME, write_bundle
from msquant_desktop.quantize.hf_cache import download_command
from msquant_desktop.quantize.memory import HEADROOM
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.client import SlurmClient
from msquant_desktop.slurm.remote_tools import (
    RemotePython,
    RemotePythonError,
    probe_python,
    require_llmcompressor,
)
from msquant_desktop.slurm.script import ScriptError, validate
from msquant_desktop.store import JobRepository


class ClusterCheckError(ValueError):
    """The cluster cannot run this job as asked; one line saying what to change.  Nothing was sent."""


@dataclass(frozen=True)
class ClusterResources:
    """What the job asks SLURM for (the free-GPU view's choices)."""

    partition: str | None = None
    gpu_type: str | None = None
    gpus: int = 0
    cpus: int = 1
    memory: str | None = None
    time_limit: str | None = None


def python_for(profile: ClusterProfile, given: str | None) -> str:
    """The cluster's Python: the one given for this job, else the profile's `python:` setting."""
    python = (given or profile.python or "").strip()
    if not python:
        raise ClusterCheckError(
            f"no Python is set for {profile.name}: give --python, or set `python:` in its profile "
            "(a Python on the cluster that has llmcompressor)"
        )
    return python


def cluster_model(text: str) -> str | HubModel:
    """A model given for a cluster job: a folder there (an absolute or `~` path) or a Hugging Face
    repo id `org/name[@revision]`; ClusterCheckError (one line) for anything else."""
    if text.startswith(("/", "~")):
        if any(c in text for c in "\n\r\0"):
            raise ClusterCheckError(f"model {text!r}: a path on the cluster cannot hold a line break")
        return text
    hub = parse_hub_model(text)
    if hub is None:
        raise ClusterCheckError(
            f"model {text!r} is neither an absolute folder on the cluster nor a Hugging Face repo id "
            "(org/name or org/name@revision: letters, digits, - _ . and one slash)"
        )
    return hub


def _hub_problem(found: RemotePython, where: str, hub: HubModel) -> str | None:
    """Why the repo id `hub` has no snapshot in the cluster's HF cache (None: it has one)."""
    entry = found.hub.get(str(hub), {})
    state = entry.get("state")
    if state == "model":
        return None
    fetch = f"run `{download_command(hub.repo_id, hub.revision)}` on {where} to fetch it"
    folder = entry.get("folder", "")
    revision = hub.revision or "main"
    if state == "absent":
        return f"model {hub} is not in the Hugging Face cache on {where} (no {folder}): {fetch}"
    if state == "no-revision":
        return f"model {hub}: revision {revision} is not in the Hugging Face cache on {where} ({folder}): {fetch}"
    if state == "no-config":
        return f"model {hub} at {revision} in the Hugging Face cache on {where} ({folder}) has no config.json: {fetch}"
    if state == "no-hub":
        return (
            f"{found.path} on {where} has no huggingface_hub to find {hub} in its cache: "
            "give the model's folder on the cluster"
        )
    return f"model {hub} on {where}: {entry.get('why') or 'the cache could not be read'}"


def _check_paths(
    found: RemotePython, where: str, models: tuple[str | HubModel, ...], out: str | None
) -> None:
    for model in models:
        if isinstance(model, HubModel):
            problem = _hub_problem(found, where, model)
            if problem:
                raise ClusterCheckError(problem)
            continue
        what = found.paths.get(model)
        if what != "model":
            state = {"absent": "does not exist", "file": "is a file"}.get(what or "", "has no config.json")
            raise ClusterCheckError(
                f"model {model} on {where} {state}: give the model's folder on the cluster"
            )
    if out is not None and found.paths.get(out) in ("folder", "model", "file"):
        raise ClusterCheckError(f"output {out} on {where} already exists: choose a new folder")


def check_cluster_python(
    client: SlurmClient, python: str, models: tuple[str, ...], out: str | None = None
) -> RemotePython:
    """The remote Python and its llmcompressor, the models (folders, or repo ids in the cluster's HF
    cache) and the output, checked over SSH in one round trip before anything is submitted.  Raises
    ClusterCheckError (one line) or SshError."""
    where = client.profile.name
    refs = tuple(cluster_model(m) for m in models)  # a bad name is refused before connecting
    folders = tuple(m for m in refs if isinstance(m, str))
    hubs = tuple(str(m) for m in refs if isinstance(m, HubModel))
    try:
        found = probe_python(client.connection, python, (*folders, *((out,) if out else ())), where, hubs)
        require_llmcompressor(found, where)
    except RemotePythonError as exc:
        raise ClusterCheckError(str(exc)) from exc
    _check_paths(found, where, refs, out)
    return found


def model_path(found: RemotePython, model: str) -> str:
    """The folder the job reads `model` from: itself, or a repo id's snapshot in the cluster's cache
    (after `check_cluster_python` passed for it)."""
    entry = found.hub.get(model)
    return entry["path"] if entry and entry.get("state") == "model" else model


def hub_models(found: RemotePython, models: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """Of each role ("model", "original") given as a repo id: the repo id, revision, commit and the
    snapshot folder the job reads — kept in the job's meta as `hub_models`."""
    kept: dict[str, dict[str, str]] = {}
    for role, text in models.items():
        entry = found.hub.get(text or "")
        hub = parse_hub_model(text or "")
        if hub is not None and entry and entry.get("state") == "model":
            kept[role] = {
                "repo_id": hub.repo_id,
                "revision": hub.revision or "main",
                "commit": entry["commit"],
                "path": entry["path"],
            }
    return kept


@dataclass(frozen=True)
class PreparedJob:
    """A checked job ready to be stored and sent."""

    submission: SlurmSubmission
    kind: JobKind
    meta: dict[str, Any]
    python: RemotePython


def _submission(
    profile: ClusterProfile, name: str, python: str, argv: list[str], bundle: Path, res: ClusterResources
) -> SlurmSubmission:
    """The job's submission, refused here (one line) when the profile or the script would refuse it."""
    submission = SlurmSubmission(
        cluster=profile.name,
        job_name=name,
        repo_url="",
        commit="",
        command=(python, REMOTE_NAME, *argv),
        partition=res.partition,
        gpu_type=res.gpu_type,
        gpus=res.gpus,
        cpus=res.cpus,
        memory=res.memory,
        time_limit=res.time_limit,
        no_repo=True,
        uploads=((str(bundle), REMOTE_NAME),),
        extra_env=(("PYTHONUNBUFFERED", "1"), ("TOKENIZERS_PARALLELISM", "false")),
    )
    try:
        validate(submission, profile)
    except ScriptError as exc:
        raise ClusterCheckError(str(exc)) from exc
    return submission


def prepare_quantize(
    client: SlurmClient,
    request: QuantizeRequest,
    python: str,
    resources: ClusterResources,
    bundle_dir: Path,
) -> PreparedJob:
    """Check the cluster for this quantization and build its submission (nothing sent yet)."""
    found = check_cluster_python(client, python, (request.model,), request.out)
    hub = hub_models(found, {"model": request.model})
    request = dataclasses.replace(request, model=model_path(found, request.model))
    bundle = write_bundle(bundle_dir)
    argv = ["quantize", *request.to_args()]
    submission = _submission(
        client.profile, f"quantize-{request.scheme.lower()}", python, argv, bundle, resources
    )
    meta: dict[str, Any] = {"quantize": request.to_meta(), "remote_python": found.describe()}
    if hub:
        meta["hub_models"] = hub
    return PreparedJob(submission, JobKind.QUANTIZE, meta, found)


def quantization_of(repo: JobRepository, cluster: str, output: str) -> int | None:
    """The COMPLETED quantization on `cluster` whose output is `output` (the job an evaluation of
    that folder belongs to in Results), if any."""
    for job in repo.list_jobs(states=(JobState.COMPLETED,)):
        if job.spec.kind is JobKind.QUANTIZE and job.spec.cluster == cluster:
            if str(job.result.get("output", "")).rstrip("/") == output.rstrip("/"):
                return job.id
    return None


def prepare_evaluate(
    client: SlurmClient,
    request: EvaluateRequest,
    python: str,
    resources: ClusterResources,
    bundle_dir: Path,
    evaluates: int | None = None,
) -> PreparedJob:
    """Check the cluster for this evaluation and build its submission (nothing sent yet)."""
    models = (request.model, *((request.original,) if request.original else ()))
    found = check_cluster_python(client, python, models)
    hub = hub_models(found, {"model": request.model, "original": request.original})
    request = dataclasses.replace(
        request,
        model=model_path(found, request.model),
        original=model_path(found, request.original) if request.original else request.original,
    )
    bundle = write_bundle(bundle_dir)
    submission = _submission(
        client.profile, "evaluate", python, ["evaluate", *request.to_args()], bundle, resources
    )
    meta: dict[str, Any] = {"evaluate": request.to_meta(), "remote_python": found.describe()}
    if hub:
        meta["hub_models"] = hub
    if evaluates is not None:
        meta[EVALUATES_META_KEY] = evaluates
    return PreparedJob(submission, JobKind.EVALUATE, meta, found)


@dataclass(frozen=True)
class Sent:
    """How sending went: the job as stored now, whether it reached SLURM, and a line for the user."""

    job: JobRecord
    submitted: bool
    message: str


def store_and_send(repo: JobRepository, runs_dir: Path, client: SlurmClient, prepared: PreparedJob) -> Sent:
    """Store the job (STARTING) and send it exactly once, recording every step as `slurm submit` does."""
    return send_job(repo, runs_dir, client, prepared.submission, prepared.kind, prepared.meta)


def send_job(
    repo: JobRepository,
    runs_dir: Path,
    client: SlurmClient,
    submission: SlurmSubmission,
    kind: JobKind,
    meta: dict[str, Any],
) -> Sent:
    """`store_and_send` for any checked submission of ours (a serve replica: services/serve_placement)."""
    job = cluster_jobs.create_job(repo, runs_dir, submission, kind, meta)
    try:
        slurm_id, script, remote = cluster_jobs.send_submission(
            client, job, cluster_jobs.steps_in_store(repo, job.id)
        )
    except cluster_jobs.NotSent as exc:
        ended = cluster_jobs.record_not_sent(repo, job.id, str(exc))
        return Sent(ended or repo.get(job.id), False, f"job {job.id}: {exc}")
    except cluster_jobs.AnswerLost as exc:
        job = cluster_jobs.record_answer_lost(repo, job.id, str(exc))
        return Sent(
            job,
            False,
            f"job {job.id}: {exc}; `slurm status` looks it up by name "
            f"({job.spec.meta['slurm_name']}); it is never submitted twice",
        )
    job = cluster_jobs.record_submitted(repo, job.id, slurm_id, script, remote)
    return Sent(job, True, f"job {job.id}: submitted to {client.profile.name} as SLURM job {slurm_id}")


def gpu_memory_check(weight_bytes: int, gpu_type: str | None, gpus: int) -> tuple[bool, str]:
    """(fits, a line) for a model of `weight_bytes` on `gpus` GPUs of `gpu_type`: the model is held
    in its stored dtype plus the layer being compressed (`quantize.memory.HEADROOM`), so its weights
    with that headroom are the least it needs (calibrating schemes need more).  A type not in the
    catalogue, or no GPU asked for, cannot be checked and says so."""
    need = int(weight_bytes * HEADROOM)
    if gpus <= 0:
        return True, f"runs on the node's CPUs: needs at least {human_bytes(need)} of RAM there"
    known = find_gpu_type(gpu_type or "")
    if known is None:
        return (
            True,
            f"needs at least {human_bytes(need)} of GPU memory (GPU type {gpu_type or 'any'} not known here)",
        )
    have = known.memory_bytes * gpus
    words = f"needs at least {human_bytes(need)} of GPU memory; {gpus} × {known.name} has {human_bytes(have)}"
    return need <= have, words


def progress_line(job: JobRecord) -> str:
    """One line of a running job's progress (stage, percent, ETA), as `--wait` prints it."""
    progress = job.result.get("progress") or {}
    stage = job.result.get("stage") or job.state.value
    fraction = progress.get("fraction")
    parts = [f"job {job.id} {job.state.value}", str(stage)]
    if isinstance(fraction, int | float) and progress.get("stage") == stage:
        parts.append(f"{fraction * 100:.0f}%")
    eta = progress.get("eta_s")
    if isinstance(eta, int | float) and eta > 0 and progress.get("stage") == stage:
        parts.append(f"ETA {eta:.0f} s")
    return " · ".join(parts)
