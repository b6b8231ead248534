"""The `slurm` commands (parser in `slurm.py`): clusters, test, gpus, submit, status, logs, cancel,
forget.

They move jobs through the same steps as the app (services/cluster_jobs): a submission is sent once
or visibly not sent, a lost sbatch answer is looked up by name (never sent again), and a job that
never reached the cluster can be cancelled or forgotten here.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from msquant_desktop.cli.context import CliContext
from msquant_desktop.domain.exit_status import exit_status
from msquant_desktop.domain.jobs import JobRecord, JobState, JobTarget
from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission, sbatch_may_have_run
from msquant_desktop.services import cluster_jobs
from msquant_desktop.services.job_json import SCHEMA_VERSION, envelope, job_json
from msquant_desktop.slurm.client import SlurmClient, SlurmError
from msquant_desktop.slurm.connection import (
    PassphraseRequired,
    SshConnection,
    SshError,
    UnknownHostKey,
    target_for_profile,
)
from msquant_desktop.slurm.profiles import ProfileError, load_profiles
from msquant_desktop.slurm.script import RemotePaths, ScriptError
from msquant_desktop.store import JobRepository


def _profiles(args: argparse.Namespace, ctx: CliContext) -> list[ClusterProfile]:
    if args.clusters and not Path(args.clusters).exists():
        # The config dir's file may be missing (no clusters yet); a file named on purpose may not.
        # (A folder or an unreadable file is named by load_profiles.)
        raise ProfileError(f"{args.clusters}: no such file")
    return load_profiles(Path(args.clusters) if args.clusters else ctx.paths.clusters_file)


def _profile(args: argparse.Namespace, ctx: CliContext, name: str) -> ClusterProfile:
    for p in _profiles(args, ctx):
        if p.name == name:
            return p
    raise ProfileError(f"no cluster named {name!r} in {args.clusters or ctx.paths.clusters_file}")


PASSPHRASE_TRIES = 3
"""As ssh's NumberOfPasswordPrompts: three tries, then the key's error."""

_typed: list[str] = []
"""The passphrase typed in this process (memory only): a command that opens several connections
asks once, as an ssh-agent would spare it."""


def _on_a_terminal() -> bool:
    """A person can be asked: there is a controlling terminal (getpass reads /dev/tty, as ssh does)."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def connect(profile: ClusterProfile) -> tuple[SshConnection, float]:
    """Connect as `ssh` does: the agent's keys, then the key files (a keyring entry unlocks an
    encrypted one); a key still locked is asked for on the terminal ("Enter passphrase for key
    '...':", three tries), and with no terminal the error says how to make it usable (ssh-add,
    keyring).  Returns the connection and the seconds it took."""
    target = target_for_profile(profile)
    passphrase = _typed[-1] if _typed else None
    tries = 0
    while True:
        connection = SshConnection(target, passphrase)
        try:
            return connection, connection.connect()
        except PassphraseRequired as exc:
            key = exc.key_path or "KEY"
            if tries >= PASSPHRASE_TRIES:
                raise
            if not _on_a_terminal():
                raise PassphraseRequired(
                    f"{exc}; no terminal to ask on: add the key to ssh-agent (ssh-add {key}) or store "
                    f"its passphrase (keyring set msquant-desktop ssh-key:{key})",
                    exc.key_path,
                ) from None
            if passphrase is not None:
                print(f"{profile.name}: {exc}", file=sys.stderr)
            tries += 1
            try:
                passphrase = getpass.getpass(f"Enter passphrase for key '{key}': ")
            except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C at the prompt
                passphrase = ""
            if not passphrase:
                raise PassphraseRequired(f"{exc}; no passphrase given", exc.key_path) from None
            _typed[:] = [passphrase]


def _client(profile: ClusterProfile) -> SlurmClient:
    connection, _seconds = connect(profile)
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
    connection, seconds = connect(profile)
    client = SlurmClient(profile, connection)
    version = client.version()
    print(
        f"{profile.name}: connected in {seconds * 1000:.0f} ms; SLURM {version}; "
        f"accounting {'on' if client.accounting_available() else 'off'}"
    )
    print(f"route: {connection.target.describe()}")
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
                    "schema": SCHEMA_VERSION,
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


def _repo_or_uploads(args: argparse.Namespace) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """(no_repo, uploads) of `slurm submit`: a repository at a commit, or a command only (--no-repo,
    or no --repo) with its files; ValueError (one line) for a mix of the two."""
    no_repo = args.no_repo or not args.repo
    if no_repo and (args.repo or args.commit):
        raise ValueError("--no-repo runs a command only: leave out --repo and --commit")
    if no_repo and args.override:
        raise ValueError("--override is for a project's Hydra command; a command only takes its words")
    if not no_repo and not args.commit:
        raise ValueError("--repo needs --commit (the full commit hash to run at)")
    if not no_repo and args.upload:
        raise ValueError("--upload is for a command only (--no-repo); a project's files come from its clone")
    return no_repo, tuple((path, Path(path).name) for path in args.upload or ())


def cmd_submit(args: argparse.Namespace, ctx: CliContext) -> int:
    profile = _profile(args, ctx, args.cluster)
    no_repo, uploads = _repo_or_uploads(args)
    submission = SlurmSubmission(
        cluster=profile.name,
        job_name=args.name,
        repo_url=args.repo or "",
        commit=args.commit or "",
        no_repo=no_repo,
        uploads=uploads,
        command=tuple(args.command),
        overrides=tuple(args.override or ()),
        partition=args.partition,
        gpu_type=args.gpu_type,
        gpus=args.gpus,
        cpus=args.cpus,
        memory=args.mem,
        time_limit=args.time,
        array=args.array,
        account=args.account,
        qos=args.qos,
        constraint=args.constraint,
        sbatch_lines=tuple(args.sbatch_line or ()),
    )
    from msquant_desktop.slurm.script import validate

    validate(submission, profile)
    repo = JobRepository(ctx.conn)
    job = cluster_jobs.create_job(repo, ctx.paths.runs_dir, submission)
    try:
        client = _client(profile)
    except SshError as exc:
        cluster_jobs.record_not_sent(repo, job.id, f"not sent: cannot reach {profile.name} ({exc})")
        print(f"job {job.id}: not sent: cannot reach {profile.name}", file=sys.stderr)
        raise
    try:
        slurm_id, script, remote = cluster_jobs.send_submission(
            client, job, cluster_jobs.steps_in_store(repo, job.id)
        )
    except cluster_jobs.NotSent as exc:
        cluster_jobs.record_not_sent(repo, job.id, str(exc))
        print(f"job {job.id}: {exc}", file=sys.stderr)
        return 1
    except cluster_jobs.AnswerLost as exc:
        cluster_jobs.record_answer_lost(repo, job.id, str(exc))
        print(
            f"job {job.id}: {exc}. It may be on {profile.name}: `slurm status` looks it up by name "
            f"({job.spec.meta['slurm_name']}); it is never submitted twice",
            file=sys.stderr,
        )
        return 1
    finally:
        client.connection.close()
    cluster_jobs.record_submitted(repo, job.id, slurm_id, script, remote)
    print(f"job {job.id}: submitted to {profile.name} as SLURM job {slurm_id} ({remote.run_dir})")
    return 0


def _look_up(repo: JobRepository, client: SlurmClient, job: JobRecord) -> JobRecord:
    """One lookup of a lost sbatch answer, stored like the app stores it."""
    remote = cluster_jobs.remote_of(job, client.workspace())
    check = client.check_submission(remote, job.spec.meta.get("slurm_name", ""))
    job, message = cluster_jobs.apply_check(repo, job.id, check, remote)
    if message:
        print(message, file=sys.stderr)
    return job


def _leftovers_settled(repo: JobRepository, jobs: list[JobRecord]) -> list[JobRecord]:
    """Jobs without a SLURM id that no live process is sending and whose sbatch never ran: not sent
    (FAILED_TO_START, no cluster needed).  Returns the rest of `jobs` that still await an answer and
    are nobody else's: those are looked up by name."""
    left = []
    for job in jobs:
        if not cluster_jobs.awaits_answer(job) or cluster_jobs.sent_by_another_process(job):
            continue
        why = "the process sending it stopped before sbatch ran"
        if cluster_jobs.settle_unsent_leftover(repo, job, why):
            print(f"job {job.id}: not sent ({why})", file=sys.stderr)
            continue
        left.append(job)
    return left


def _looked_up(repo: JobRepository, client: SlurmClient, jobs: list[JobRecord]) -> None:
    """A lost sbatch answer looked up once each: adopted, found never submitted, or still unknown;
    never sent again.  A job cancelled meanwhile is scancelled once its id is known."""
    for job in jobs:
        job = _look_up(repo, client, job)
        if job.state is JobState.CANCELLING and job.slurm_job_id:
            client.connection.run(["scancel", job.slurm_job_id])


def _refresh(args: argparse.Namespace, ctx: CliContext, repo: JobRepository) -> None:
    """One poll per cluster with open jobs, stored like the GUI would."""
    by_cluster: dict[str, list[JobRecord]] = {}
    for job in cluster_jobs.open_jobs(repo):
        by_cluster.setdefault(job.spec.cluster or "", []).append(job)
    for name, jobs in by_cluster.items():
        waiting = _leftovers_settled(repo, jobs)
        if not waiting and not any(cluster_jobs.tracked(j) for j in jobs):
            continue
        try:
            client = _client(_profile(args, ctx, name))
        except (SshError, ProfileError) as exc:
            print(f"{name}: not refreshed: {exc}", file=sys.stderr)
            continue
        try:
            _looked_up(repo, client, waiting)
            _poll_tracked(repo, client, jobs)
        finally:
            client.connection.close()


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.clusters:
        _profiles(args, ctx)  # a file named on purpose must be usable, even with no open jobs
    repo = JobRepository(ctx.conn)
    _refresh(args, ctx, repo)
    jobs = repo.list_jobs(target=JobTarget.SLURM, limit=args.limit)
    if args.json:  # the same job shape as `jobs list --json` (services.job_json)
        print(json.dumps(envelope(jobs=[job_json(j) for j in jobs]), indent=2))
        return 0
    for j in jobs:
        outcome = j.outcome.describe() if j.outcome else ""
        if cluster_jobs.awaits_answer(j) and j.result.get("submit_check"):
            outcome = str(j.result["submit_check"])
        print(
            f"{j.id:5} {j.spec.cluster or '':12} {j.slurm_job_id or '-':>8} {j.state.value:14} {j.spec.name}  {outcome}"
        )
        for task_id, state in cluster_jobs.task_states(j):
            print(f"{'':5} {'':12} {task_id:>8} {state}")
    return 0


def cmd_logs(args: argparse.Namespace, ctx: CliContext) -> int:
    """Print a job's remote log; with --follow, until the job ends, then exit with its status
    (domain.exit_status, as `jobs logs --follow` does for a local job)."""
    repo = JobRepository(ctx.conn)
    job = repo.get(args.id)
    if job.spec.target is not JobTarget.SLURM:
        print(f"job {args.id} is not a SLURM job (use `jobs logs`)", file=sys.stderr)
        return 1
    remote_dir = job.result.get("remote_run_dir")
    if not remote_dir and not args.follow:
        print(f"job {args.id} has no remote log (state {job.state.value})", file=sys.stderr)
        return 1
    client = _client(_profile(args, ctx, job.spec.cluster or ""))
    try:
        if not args.follow:
            text, _ = client.read_text(RemotePaths(str(remote_dir)).log)
            sys.stdout.write(text)
            return 0
        job = _follow(args, ctx, repo, client, job)
    finally:
        client.connection.close()
    status = exit_status(job.state, job.exit_code, job.signal)
    return 0 if status is None else status


def poll_states(repo: JobRepository, client: SlurmClient, jobs: list[JobRecord]) -> None:
    """One look at these jobs of one cluster, stored as the app's worker stores it: a lost sbatch
    answer looked up, the others' states polled (sacct/squeue, the final-state chain)."""
    waiting = [job for job in jobs if cluster_jobs.awaits_answer(job)]
    if waiting:
        _looked_up(repo, client, _leftovers_settled(repo, waiting))
    _poll_tracked(repo, client, jobs)


def _poll_tracked(repo: JobRepository, client: SlurmClient, jobs: list[JobRecord]) -> None:
    """The states of those jobs that have a SLURM id, polled and stored (the final-state chain)."""
    tracked = [t for t in (cluster_jobs.tracked(repo.get(job.id)) for job in jobs) if t is not None]
    if tracked:
        for update in client.poll(tracked).updates:
            cluster_jobs.apply_update(repo, update)


class ClusterWatch:
    """Polls SLURM jobs' states for a waiting command (`jobs wait`), one connection per cluster
    opened on first use, every `every_s` seconds at most."""

    def __init__(self, args: argparse.Namespace, ctx: CliContext, every_s: float) -> None:
        self._args, self._ctx, self._every_s = args, ctx, every_s
        self._clients: dict[str, SlurmClient] = {}
        self._next = 0.0

    def poll(self, repo: JobRepository, jobs: list[JobRecord]) -> None:
        if not jobs or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self._every_s
        by_cluster: dict[str, list[JobRecord]] = {}
        for job in jobs:
            by_cluster.setdefault(job.spec.cluster or "", []).append(job)
        for name, group in by_cluster.items():
            if name not in self._clients:
                self._clients[name] = _client(_profile(self._args, self._ctx, name))
            poll_states(repo, self._clients[name], group)

    def close(self) -> None:
        for client in self._clients.values():
            client.connection.close()


def _follow(
    args: argparse.Namespace, ctx: CliContext, repo: JobRepository, client: SlurmClient, job: JobRecord
) -> JobRecord:
    """Print the log as it grows, polling the job's state as the app does, until it is final."""
    offset = 0
    next_poll = 0.0
    while True:
        remote_dir = job.result.get("remote_run_dir")
        if remote_dir:
            text, offset = client.read_text(
                RemotePaths(remote_dir).log, offset, whole_lines=not job.state.is_final
            )
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
        if job.state.is_final:
            return job
        if time.monotonic() >= next_poll:
            poll_states(repo, client, [job])
            next_poll = time.monotonic() + args.poll
        job = repo.get(job.id)
        if not job.state.is_final:
            time.sleep(min(1.0, args.poll))


def cmd_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    """scancel a job and confirm its end; a job that never reached the cluster is CANCELLED here."""
    repo = JobRepository(ctx.conn)
    job = repo.get(args.id)
    if job.state.is_final:
        print(f"job {args.id} is {job.state.value}; nothing to cancel", file=sys.stderr)
        return 1
    if cluster_jobs.awaits_answer(job):
        return _cancel_unanswered(args, ctx, repo, job)
    assert job.slurm_job_id is not None
    client = _client(_profile(args, ctx, job.spec.cluster or ""))
    try:
        tracked = cluster_jobs.tracked(job)
        final = client.cancel(
            job.slurm_job_id,
            RemotePaths(job.result.get("remote_run_dir", "")),
            tasks=tracked.tasks if tracked is not None else (),
        )
    finally:
        client.connection.close()
    if final is None:
        print(f"job {args.id}: scancel sent; the cluster has not confirmed the end yet", file=sys.stderr)
        return 1
    cluster_jobs.apply_final(repo, repo.get(job.id), final)
    print(f"job {args.id}: {final.state.value}")
    return 0


def _cancel_unanswered(args: argparse.Namespace, ctx: CliContext, repo: JobRepository, job: JobRecord) -> int:
    """A job with no SLURM id: CANCELLED at once if sbatch never ran (its sender, if still alive,
    stops before sbatch: the step check sees the cancel); else looked up by name and scancelled,
    or CANCELLED once the cluster shows it was never submitted."""
    if cluster_jobs.cancel_if_unsent(repo, job.id):
        print(f"job {args.id}: CANCELLED (it never reached the cluster)")
        return 0
    job = repo.get(job.id)  # sbatch may have run (or it moved on meanwhile)
    if job.state.is_final or not cluster_jobs.awaits_answer(job):
        return cmd_cancel(args, ctx)
    if job.state is JobState.STARTING:
        job = repo.transition(
            job.id, JobState.CANCELLING, note="cancel asked while sbatch's answer is awaited"
        )
    client = _client(_profile(args, ctx, job.spec.cluster or ""))
    try:
        deadline = time.monotonic() + cluster_jobs.ABSENT_CONFIRM_S * 3
        while cluster_jobs.awaits_answer(job) and time.monotonic() < deadline:
            job = _look_up(repo, client, job)
            if cluster_jobs.awaits_answer(job):
                time.sleep(1.0)
        if job.slurm_job_id and not job.state.is_final:
            final = client.cancel(job.slurm_job_id, RemotePaths(job.result.get("remote_run_dir", "")))
            if final is not None:
                cluster_jobs.apply_final(repo, repo.get(job.id), final)
    finally:
        client.connection.close()
    job = repo.get(job.id)
    if job.state.is_final:
        print(f"job {args.id}: {job.state.value}" + (f" ({job.reason})" if job.reason else ""))
        return 0
    print(
        f"job {args.id}: cancel asked; the cluster has not answered yet "
        f"({job.result.get('submit_check', 'no answer')}); `slurm status` finishes it",
        file=sys.stderr,
    )
    return 1


def cmd_forget(args: argparse.Namespace, ctx: CliContext) -> int:
    """Remove a job from the local store only (its local run folder is kept).  Refused for a job
    that may exist on the cluster, unless --force: `slurm cancel` it instead."""
    repo = JobRepository(ctx.conn)
    job = repo.get(args.id)
    if job.spec.target is not JobTarget.SLURM:
        print(f"job {args.id} is not a SLURM job (use `jobs` commands)", file=sys.stderr)
        return 1
    never_sent = cluster_jobs.awaits_answer(job) and not sbatch_may_have_run(cluster_jobs.submit_step(job))
    if never_sent and cluster_jobs.sent_by_another_process(job):
        print(f"job {args.id} is being sent by process {job.claimer_pid}; cancel it instead", file=sys.stderr)
        return 1
    if not job.state.is_final and not never_sent and not args.force:
        where = (
            f"SLURM job {job.slurm_job_id}"
            if job.slurm_job_id
            else f"a job named {job.spec.meta.get('slurm_name')}"
        )
        print(
            f"job {args.id} is {job.state.value} and may exist on {job.spec.cluster} as {where}: "
            f"`slurm cancel {args.id}` ends it there (or --force forgets it anyway)",
            file=sys.stderr,
        )
        return 1
    if not job.state.is_final:
        reason = "forgotten: it never reached the cluster" if never_sent else "forgotten (--force)"
        repo.transition(
            job.id, JobState.FAILED_TO_START if never_sent else JobState.LOST, note=reason, reason=reason
        )
    repo.delete(job.id)
    kept = f"; its run folder {job.run_dir} is kept" if job.run_dir else ""
    print(f"job {args.id}: forgotten{kept}")
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
