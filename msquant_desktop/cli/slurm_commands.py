"""The `slurm` commands (parser in `slurm.py`): clusters, test, gpus, submit, status, logs, cancel."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from msquant_desktop.cli.context import CliContext
from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.client import SlurmClient, SlurmError
from msquant_desktop.slurm.connection import SshConnection, SshError, UnknownHostKey, target_for_profile
from msquant_desktop.slurm.profiles import ProfileError, load_profiles
from msquant_desktop.slurm.script import RemotePaths, ScriptError
from msquant_desktop.store import JobRepository


def _profiles(args: argparse.Namespace, ctx: CliContext) -> list[ClusterProfile]:
    if args.clusters and not Path(args.clusters).is_file():
        # The config dir's file may be missing (no clusters yet); a file named on purpose may not.
        raise ProfileError(f"{args.clusters}: no such file")
    return load_profiles(Path(args.clusters) if args.clusters else ctx.paths.clusters_file)


def _profile(args: argparse.Namespace, ctx: CliContext, name: str) -> ClusterProfile:
    for p in _profiles(args, ctx):
        if p.name == name:
            return p
    raise ProfileError(f"no cluster named {name!r} in {args.clusters or ctx.paths.clusters_file}")


def _client(profile: ClusterProfile) -> SlurmClient:
    connection = SshConnection(target_for_profile(profile))
    connection.connect()
    return SlurmClient(profile, connection)


def cmd_clusters(args: argparse.Namespace, ctx: CliContext) -> int:
    profiles = _profiles(args, ctx)
    if not profiles:
        print(f"No clusters configured ({args.clusters or ctx.paths.clusters_file}).", file=sys.stderr)
    for p in profiles:
        parts = ",".join(p.allowed_partitions) or "any"
        types = ",".join(p.allowed_gpu_types) or "any"
        print(
            f"{p.name}\t{p.host}{':' + str(p.port) if p.port else ''}\t{p.workspace}\tpartitions={parts}\tgpus={types}"
        )
    return 0


def cmd_test(args: argparse.Namespace, ctx: CliContext) -> int:
    profile = _profile(args, ctx, args.cluster)
    connection = SshConnection(target_for_profile(profile))
    seconds = connection.connect()
    client = SlurmClient(profile, connection)
    version = client.version()
    print(
        f"{profile.name}: connected in {seconds * 1000:.0f} ms; SLURM {version}; "
        f"accounting {'on' if client.accounting_available() else 'off'}"
    )
    connection.close()
    return 0


def cmd_gpus(args: argparse.Namespace, ctx: CliContext) -> int:
    client = _client(_profile(args, ctx, args.cluster))
    view = client.gpu_view()
    client.connection.close()
    if args.json:
        print(
            json.dumps(
                {
                    "nodes": [
                        {
                            "node": r.node,
                            "state": r.state,
                            "usable": r.usable,
                            "partitions": list(r.partitions),
                            "gpu_type": r.gpu_type,
                            "total": r.gpus.total,
                            "used": r.gpus.used,
                            "free": r.gpus.free,
                            "cpus_free": r.cpus_free,
                            "memory_free_mb": r.memory_free_mb,
                        }
                        for r in view.rows
                    ],
                    "by_type": {
                        t: {"total": c.total, "used": c.used, "free": c.free} for t, c in view.by_type.items()
                    },
                    "by_partition": {
                        p: {t: c.free for t, c in per.items()} for p, per in view.by_partition.items()
                    },
                    "pending": view.pending,
                    "pending_now": view.pending_now,
                    "pending_at_least": view.pending_at_least,
                    "unusable": view.unusable,
                },
                indent=2,
            )
        )
        return 0
    print(f"{'node':10} {'state':14} {'type':8} {'total':>5} {'used':>5} {'free':>5}  partitions")
    for r in view.rows:
        print(
            f"{r.node:10} {r.state:14} {r.gpu_type or '-':8} {r.gpus.total:5} {r.gpus.used:5} {r.gpus.free:5}  {','.join(r.partitions)}"
        )
    at_least = "at least " if view.pending_at_least else ""
    for gpu_type, count in sorted(view.by_type.items()):
        print(
            f"free {gpu_type or 'gpu'}: {count.free} of {count.total}; pending demand {at_least}"
            f"{view.pending.get(gpu_type, 0)} ({view.pending_now.get(gpu_type, 0)} could start now)"
        )
    for line in view.unusable:
        print(f"excluded: {line}")
    return 0


def cmd_submit(args: argparse.Namespace, ctx: CliContext) -> int:
    profile = _profile(args, ctx, args.cluster)
    submission = SlurmSubmission(
        cluster=profile.name,
        job_name=args.name,
        repo_url=args.repo,
        commit=args.commit,
        command=tuple(args.command),
        overrides=tuple(args.override or ()),
        partition=args.partition,
        gpu_type=args.gpu_type,
        gpus=args.gpus,
        cpus=args.cpus,
        memory=args.mem,
        time_limit=args.time,
    )
    from msquant_desktop.slurm.script import validate

    validate(submission, profile)
    repo = JobRepository(ctx.conn)
    job = cluster_jobs.create_job(repo, ctx.paths.runs_dir, submission)
    client = _client(profile)
    try:
        slurm_id, script, remote = cluster_jobs.submit_never_twice(client, job)
    except (SshError, SlurmError) as exc:
        cluster_jobs.record_submit_failed(repo, job.id, str(exc))
        raise
    finally:
        client.connection.close()
    cluster_jobs.record_submitted(repo, job.id, slurm_id, script, remote)
    print(f"job {job.id}: submitted to {profile.name} as SLURM job {slurm_id} ({remote.run_dir})")
    return 0


def _refresh(args: argparse.Namespace, ctx: CliContext, repo: JobRepository) -> None:
    """One poll per cluster with open jobs, stored like the GUI would."""
    by_cluster: dict[str, list[JobRecord]] = {}
    for job in cluster_jobs.open_jobs(repo):
        by_cluster.setdefault(job.spec.cluster or "", []).append(job)
    for name, jobs in by_cluster.items():
        tracked = [t for t in (cluster_jobs.tracked(j) for j in jobs) if t is not None]
        if not tracked:
            continue
        try:
            client = _client(_profile(args, ctx, name))
        except (SshError, ProfileError) as exc:
            print(f"{name}: not refreshed: {exc}", file=sys.stderr)
            continue
        try:
            for update in client.poll(tracked).updates:
                cluster_jobs.apply_update(repo, update)
        finally:
            client.connection.close()


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = JobRepository(ctx.conn)
    _refresh(args, ctx, repo)
    jobs = repo.list_jobs(target=JobTarget.SLURM, limit=args.limit)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": j.id,
                        "name": j.spec.name,
                        "cluster": j.spec.cluster,
                        "slurm_job_id": j.slurm_job_id,
                        "state": j.state.value,
                        "exit_code": j.exit_code,
                        "reason": j.reason,
                        "wandb_urls": j.result.get("wandb_urls", []),
                    }
                    for j in jobs
                ],
                indent=2,
            )
        )
        return 0
    for j in jobs:
        outcome = j.outcome.describe() if j.outcome else ""
        print(
            f"{j.id:5} {j.spec.cluster or '':12} {j.slurm_job_id or '-':>8} {j.state.value:14} {j.spec.name}  {outcome}"
        )
    return 0


def cmd_logs(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = JobRepository(ctx.conn)
    job = repo.get(args.id)
    remote_dir = job.result.get("remote_run_dir")
    if not remote_dir:
        print(f"job {args.id} has no remote log (state {job.state.value})", file=sys.stderr)
        return 1
    client = _client(_profile(args, ctx, job.spec.cluster or ""))
    try:
        text, _ = client.read_text(RemotePaths(remote_dir).log)
    finally:
        client.connection.close()
    sys.stdout.write(text)
    return 0


def cmd_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = JobRepository(ctx.conn)
    job = repo.get(args.id)
    if not job.slurm_job_id or job.state.is_final:
        print(f"job {args.id} is {job.state.value}; nothing to cancel", file=sys.stderr)
        return 1
    client = _client(_profile(args, ctx, job.spec.cluster or ""))
    try:
        final = client.cancel(job.slurm_job_id, RemotePaths(job.result.get("remote_run_dir", "")))
    finally:
        client.connection.close()
    if final is None:
        print(f"job {args.id}: scancel sent; the cluster has not confirmed the end yet", file=sys.stderr)
        return 1
    cluster_jobs.apply_final(repo, job, final)
    print(f"job {args.id}: {final.state.value}")
    return 0


Handler = Callable[[argparse.Namespace, CliContext], int]


def guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace, ctx: CliContext) -> int:
        try:
            return int(handler(args, ctx))
        except UnknownHostKey as exc:
            print(
                f"slurm: {exc}\n  check the fingerprint, then connect once in the app (or ssh) to accept it",
                file=sys.stderr,
            )
        except (ProfileError, ScriptError, SshError, SlurmError, KeyError, ValueError) as exc:
            print(f"slurm: {exc}", file=sys.stderr)
        return 1

    return run
