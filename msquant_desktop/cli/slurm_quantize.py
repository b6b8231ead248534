"""`slurm quantize` and `slurm evaluate`: the workers as SLURM jobs (services/cluster_quantize).

The cluster's Python and its llmcompressor are checked over SSH first: a missing Python, package,
model or a taken output is one line and exit 1 with nothing submitted.  With `--wait` the job is
followed as the app follows it (the same poll and store steps): each change of stage or progress is
one line, a dropped connection is retried with backoff and reading resumes where it stopped (the log
offset is stored), and the exit status is 0 only when the job COMPLETED.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from msquant_desktop.cli.context import CliContext
from msquant_desktop.cli.slurm_commands import _client, _profile
from msquant_desktop.domain.jobs import JobRecord, JobState
from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.domain.slurm import ClusterProfile, reconnect_delay
from msquant_desktop.quantize.args import evaluate_request_from_args, request_from_args
from msquant_desktop.services import cluster_jobs
from msquant_desktop.services.cluster_download import (
    DownloadError,
    DownloadProgress,
    download_result,
    record_local_copy,
    source_of,
)
from msquant_desktop.services.cluster_jobs import LOST_AFTER_POLLS
from msquant_desktop.services.cluster_quantize import (
    ClusterResources,
    PreparedJob,
    prepare_evaluate,
    prepare_quantize,
    progress_line,
    python_for,
    quantization_of,
    store_and_send,
)
from msquant_desktop.slurm.client import SlurmClient
from msquant_desktop.slurm.connection import SshError
from msquant_desktop.store import JobRepository

POLL_S = 2.0


def _resources(args: argparse.Namespace) -> ClusterResources:
    return ClusterResources(args.partition, args.gpu_type, args.gpus, args.cpus, args.mem, args.time)


def _run(args: argparse.Namespace, ctx: CliContext, build: str) -> int:
    profile = _profile(args, ctx, args.cluster)
    python = python_for(profile, args.python)
    repo = JobRepository(ctx.conn)
    client = _client(profile)
    try:
        prepared: PreparedJob
        if build == "quantize":
            prepared = prepare_quantize(
                client, request_from_args(args), python, _resources(args), ctx.paths.data_dir / "workers"
            )
        else:
            request = evaluate_request_from_args(args)
            prepared = prepare_evaluate(
                client,
                request,
                python,
                _resources(args),
                ctx.paths.data_dir / "workers",
                evaluates=quantization_of(repo, profile.name, request.model),
            )
        print(f"{profile.name}: {prepared.python.describe()}")
        sent = store_and_send(repo, ctx.paths.runs_dir, client, prepared)
    finally:
        client.connection.close()
    print(sent.message, file=sys.stdout if sent.submitted else sys.stderr)
    if not sent.submitted:
        return 1
    if not args.wait:
        return 0
    try:
        job = wait_for(repo, profile, sent.job)
    except KeyboardInterrupt:
        print(
            f"\nstopped waiting; job {sent.job.id} goes on on {profile.name} (`slurm status`, `slurm cancel`)",
            file=sys.stderr,
        )
        return 130
    return 0 if job.state is JobState.COMPLETED else 1


def cmd_quantize(args: argparse.Namespace, ctx: CliContext) -> int:
    return _run(args, ctx, "quantize")


def cmd_evaluate(args: argparse.Namespace, ctx: CliContext) -> int:
    return _run(args, ctx, "evaluate")


def _poll_once(
    repo: JobRepository, client: SlurmClient, job: JobRecord, unknown: int
) -> tuple[JobRecord, int]:
    """One poll stored like the app stores it; counts polls in which nobody knew the job's state."""
    tracked = cluster_jobs.tracked(job)
    if tracked is None:
        return job, unknown
    for update in client.poll([tracked]).updates:
        job, _ = cluster_jobs.apply_update(repo, update)
        if update.final is None and update.state is None and not update.slurm_state:
            unknown += 1
            if unknown >= LOST_AFTER_POLLS and not job.state.is_final:
                job = cluster_jobs.mark_lost(
                    repo, job.id, f"left the queue and no source knows how it ended ({unknown} polls)"
                )
        else:
            unknown = 0
        if job.state is JobState.CANCELLING and job.slurm_job_id and not job.state.is_final:
            client.connection.run(["scancel", job.slurm_job_id])
    return job, unknown


def wait_for(
    repo: JobRepository, profile: ClusterProfile, job: JobRecord, poll_s: float = POLL_S
) -> JobRecord:
    """Follow `job` until it ends, printing each new progress line; reconnects after a cut."""
    client: SlurmClient | None = None
    failures = 0
    unknown = 0
    last = ""
    while not job.state.is_final:
        try:
            if client is None:
                client = _client(profile)
                if failures:
                    print(f"{profile.name}: reconnected; reading on from where it stopped", file=sys.stderr)
                failures = 0
            job, unknown = _poll_once(repo, client, repo.get(job.id), unknown)
        except (SshError, OSError, EOFError) as exc:  # a cut mid-read may surface as either
            failures += 1
            delay = reconnect_delay(failures, ceiling=30.0)
            print(f"{profile.name}: connection lost ({exc}); retrying in {delay:.0f} s", file=sys.stderr)
            if client is not None:
                client.connection.close()
            client = None
            time.sleep(delay)
            continue
        line = progress_line(job)
        if line != last:
            print(line, flush=True)
            last = line
        if not job.state.is_final:
            time.sleep(poll_s)
    if client is not None:
        client.connection.close()
    outcome = job.outcome.describe() if job.outcome else ""
    print(f"job {job.id}: {job.state.value}" + (f" ({outcome})" if outcome else ""))
    output = job.result.get("output")
    if job.state is JobState.COMPLETED and output:
        print(f"output on {profile.name}: {output}")
    return job


def cmd_download(args: argparse.Namespace, ctx: CliContext) -> int:
    """Copy a cluster quantization's output folder here over SFTP (services/cluster_download)."""
    repo = JobRepository(ctx.conn)
    try:
        source = source_of(repo.get(args.id))
    except DownloadError as exc:
        print(exc, file=sys.stderr)
        return 1
    profile = _profile(args, ctx, source.cluster)
    dest = Path(args.to).expanduser()
    shown = -1

    def progress(p: DownloadProgress) -> None:
        nonlocal shown
        percent = int(p.done * 100 / p.total) if p.total else 100
        if percent // 10 != shown // 10 or percent == 100 and shown != 100:
            shown = percent
            print(f"{percent}% of {human_bytes(p.total)} ({p.files_done}/{p.files} files)", flush=True)

    try:
        done = download_result(
            lambda: _client(profile).connection,
            source,
            dest,
            progress,
            notice=lambda line: print(line, file=sys.stderr, flush=True),
            retries=args.retries,
        )
    except DownloadError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nstopped; run it again to resume into {dest}", file=sys.stderr)
        return 130
    record_local_copy(repo, source.job_id, done.dest)
    print(f"{done.files} files of {source.label} are in {dest} ({human_bytes(done.copied)} copied now)")
    return 0
