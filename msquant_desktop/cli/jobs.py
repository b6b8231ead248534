"""`jobs list|show|logs|wait|cancel|add|run`: the local job engine from a terminal.

CLI jobs land in the same store as the app's: an open app shows them live, and the concurrency limit
holds across both because every start is decided inside one store transaction.  The commands that
queue or wait for jobs also move the queue on (job_lifecycle.advance_queue), as every supervisor
does when its job ends: queued jobs start with no window open.  Exit statuses of the commands that
wait for a job follow domain.exit_status (README.md, "Exit statuses").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from msquant_desktop.cli.context import (
    CliContext,
    gpu_count_arg,
    job_id_arg,
    job_name_arg,
    non_negative_float,
    positive_int,
)
from msquant_desktop.domain.exit_status import exit_status
from msquant_desktop.domain.jobs import JobRecord, JobSpec, JobState, JobTarget, name_from_command
from msquant_desktop.domain.logformat import STDERR_TAG, LineSplitter, decode_tagged
from msquant_desktop.domain.queue import AFTER_META_KEY
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.services.job_json import envelope, job_json
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.store.run_folders import read_exit_record
from msquant_desktop.supervisor import control

WAIT_POLL_SECONDS = 0.25


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = subparsers.add_parser("jobs", help="list, follow, cancel and run local jobs")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="list jobs, newest first")
    p.add_argument("--json", action="store_true", help="one JSON array (for scripts)")
    p.add_argument("--limit", type=positive_int, default=50, metavar="N")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="everything about one job")
    p.add_argument("id", type=job_id_arg)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("logs", help="print a job's output (stderr lines go to stderr)")
    p.add_argument("id", type=job_id_arg)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel a queued or running job (stops its whole process tree)")
    p.add_argument("id", type=job_id_arg)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "wait",
        help="wait until jobs end; exit with the first one's status that did not complete (0: all did)",
    )
    p.add_argument("ids", type=job_id_arg, nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the ended jobs as JSON")
    p.add_argument(
        "--poll",
        type=non_negative_float,
        default=5.0,
        metavar="SECONDS",
        help="SLURM jobs: how often their cluster is asked for their state (default 5)",
    )
    p.add_argument(
        "--clusters", metavar="FILE", help="SLURM jobs: this clusters.yaml instead of the config dir's"
    )
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("add", help="queue a command as a job and return: jobs add [options] -- CMD ...")
    _job_options(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("run", help="run a command as a supervised job: jobs run [options] -- CMD ...")
    _job_options(p)
    p.add_argument("--no-wait", action="store_true", help="when no slot is free, leave it queued and return")
    p.add_argument(
        "--wait", action="store_true", help="wait until the job ends and exit with its status (see README)"
    )
    p.set_defaults(func=cmd_run)


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", type=job_name_arg, help="shown in the Jobs table (default: the command)")
    p.add_argument("--cwd", metavar="DIR", help="working directory (default: the job's run folder)")
    p.add_argument(
        "--gpus", type=gpu_count_arg, default=0, metavar="N", help="GPUs to reserve (CUDA_VISIBLE_DEVICES)"
    )
    p.add_argument(
        "--after",
        type=job_id_arg,
        action="append",
        default=[],
        metavar="ID",
        help="start only once job ID has COMPLETED; fail if it ends otherwise (repeatable)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")


def _repo(ctx: CliContext) -> JobRepository:
    """The store, with every job whose supervisor is gone settled first: reading the jobs is enough
    to give such a job its final state, with or without an open app (job_lifecycle.inspect)."""
    repo = JobRepository(ctx.conn)
    lifecycle.settle_unwatched(repo)
    return repo


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    records = _repo(ctx).list_jobs(limit=args.limit)
    if args.json:
        print(json.dumps(envelope(jobs=[job_json(r) for r in records]), indent=1))
        return 0
    if not records:
        print("no jobs yet (start one with: msquant-desktop jobs run -- CMD ...)")
        return 0
    now = datetime.now(UTC)
    print(f"{'ID':>5}  {'STATE':<15} {'DURATION':>9}  {'EXIT':<18} NAME")
    for r in records:
        seconds = r.duration_seconds(now)
        duration = f"{seconds:8.1f}s" if seconds is not None else "-"
        outcome = r.outcome.describe() if r.outcome else ""
        print(f"{r.id:>5}  {r.state.value:<15} {duration:>9}  {outcome[:18]:<18} {r.spec.name}")
    return 0


def _find_or_say(repo: JobRepository, job_id: int) -> JobRecord | None:
    """The job, or None after telling the user there is no such job."""
    record = repo.find(job_id)
    if record is None:
        print(f"msquant-desktop: no job with id {job_id}", file=sys.stderr)
    return record


def cmd_show(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = _repo(ctx)
    record = _find_or_say(repo, args.id)
    if record is None:
        return 1
    transitions = [
        {"from": t.old.value if t.old else None, "to": t.new.value, "at": t.at.isoformat(), "note": t.note}
        for t in repo.transitions(args.id)
    ]
    if args.json:
        data = envelope(
            job=job_json(record), spec=record.spec.to_dict(), result=record.result, transitions=transitions
        )
        print(json.dumps(data, indent=1))
        return 0
    flat = {
        **job_json(record),
        "spec": record.spec.to_dict(),
        "result": record.result,
        "transitions": transitions,
    }
    for key, value in flat.items():
        text = json.dumps(value) if isinstance(value, dict | list) else value
        print(f"{key:>14}: {text}")
    return 0


def cmd_logs(args: argparse.Namespace, ctx: CliContext) -> int:
    """Print the log; with --follow, until the job ends, then exit with its status."""
    repo = _repo(ctx)
    record = _find_or_say(repo, args.id)
    if record is None:
        return 1
    if args.follow and record.spec.target is JobTarget.SLURM:
        print(f"job {args.id} runs on a cluster: `slurm logs {args.id} --follow` follows it", file=sys.stderr)
        return 2
    if not record.run_dir:
        if not args.follow:
            print(f"job {args.id} has no output yet ({record.state.value.lower()})", file=sys.stderr)
            return 0
        record = _wait_for_run_dir(ctx, repo, args.id)
        if not record.run_dir:
            return _status_of(record)
    _print_log(Path(str(record.run_dir)), repo, args.id, args.follow, ctx)
    return _status_of(_ended(ctx, repo, args.id)) if args.follow else 0


def _status_of(record: JobRecord) -> int:
    status = exit_status(record.state, record.exit_code, record.signal)
    return 0 if status is None else status


def _wait_for_run_dir(ctx: CliContext, repo: JobRepository, job_id: int) -> JobRecord:
    while True:
        _move_queue(ctx, repo, every=MOVE_QUEUE_EVERY_S)
        record = repo.get(job_id)
        if record.run_dir or record.state.is_final:
            return record
        time.sleep(WAIT_POLL_SECONDS)


def _ended(ctx: CliContext, repo: JobRepository, job_id: int) -> JobRecord:
    """The job once it has its final state (its supervisor records it right after exit.json)."""
    while True:
        record = repo.get(job_id)
        if record.state.is_final:
            return record
        _move_queue(ctx, repo, every=MOVE_QUEUE_EVERY_S)
        time.sleep(WAIT_POLL_SECONDS)


MOVE_QUEUE_EVERY_S = 1.0
"""While a command waits, the queue is looked at this often (settling reads every active job's
run folder); the job it waits for is looked at every WAIT_POLL_SECONDS."""
_last_move = [0.0]


def _move_queue(ctx: CliContext, repo: JobRepository, every: float = 0.0) -> None:
    """Settle jobs whose supervisor is gone, then start what the freed slots allow: a CLI that
    waits is one of the processes that keep the queue moving.  `every`: not again before that many
    seconds have passed since the last time."""
    if every and time.monotonic() - _last_move[0] < every:
        return
    _last_move[0] = time.monotonic()
    lifecycle.settle_unwatched(repo)
    limits = lifecycle.queue_limits(ctx.paths, ctx.settings, control.detect_gpu_count())
    lifecycle.advance_queue(repo, limits, lifecycle.ProcessIdentity.of_this_process(), dict(os.environ))


def _print_log(run_dir: Path, repo: JobRepository, job_id: int, follow: bool, ctx: CliContext) -> None:
    splitter = LineSplitter()
    offset = 0
    last_look = 0.0
    while True:
        try:
            with (run_dir / LOG_FILE).open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        chunk = decode_tagged(splitter.feed(data))
        for text, is_err in chunk.texts:
            (sys.stderr if is_err else sys.stdout).write(text)
        sys.stdout.flush()
        if not follow:
            return
        if not data and (read_exit_record(run_dir) is not None or repo.get(job_id).state.is_final):
            rest = splitter.flush()
            if rest:
                sys.stdout.write(
                    rest[2:].decode("utf-8", "replace") if not rest.startswith(STDERR_TAG) else ""
                )
            return
        if not data:
            if time.monotonic() - last_look > 2.0:  # a vanished supervisor never writes exit.json
                _move_queue(ctx, repo)
                last_look = time.monotonic()
            time.sleep(WAIT_POLL_SECONDS)


def cmd_wait(args: argparse.Namespace, ctx: CliContext) -> int:
    """Wait for every named job to end; the status of the first (in the order given) that did not
    complete, or 0 when all completed.  The queue keeps moving meanwhile."""
    repo = _repo(ctx)
    for job_id in args.ids:
        if _find_or_say(repo, job_id) is None:
            return 1
    watch = None  # SLURM jobs: their states are polled on the cluster, as `slurm logs --follow` does
    try:
        while True:
            records = [repo.get(job_id) for job_id in args.ids]
            if all(r.state.is_final for r in records):
                break
            _move_queue(ctx, repo, every=MOVE_QUEUE_EVERY_S)
            on_clusters = [r for r in records if r.spec.target is JobTarget.SLURM and not r.state.is_final]
            if on_clusters:
                from msquant_desktop.cli import slurm_commands  # paramiko only when a cluster is involved

                watch = watch or slurm_commands.ClusterWatch(args, ctx, args.poll)
                try:
                    watch.poll(repo, on_clusters)
                except Exception as exc:  # a connection or profile error: the command's own failure
                    print(f"jobs wait: {exc}", file=sys.stderr)
                    return 1
            time.sleep(WAIT_POLL_SECONDS)
    finally:
        if watch is not None:
            watch.close()
    if args.json:
        print(json.dumps(envelope(jobs=[job_json(r) for r in records]), indent=1))
    else:
        for r in records:
            print(f"job {r.id}: {r.outcome.describe() if r.outcome else r.state.value}")
    return next((s for s in (_status_of(r) for r in records) if s != 0), 0)


def cmd_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = _repo(ctx)
    record = _find_or_say(repo, args.id)
    if record is None:
        return 1
    if record.spec.target is JobTarget.SLURM:
        print(f"job {args.id} runs on a cluster: `slurm cancel {args.id}` scancels it", file=sys.stderr)
        return 1
    grace = ctx.settings.cancel_grace_seconds
    result = lifecycle.cancel_now(repo, args.id, grace, note_suffix=" (CLI)")
    if result.words == "cancelling":
        print(f"job {args.id}: cancelling (TERM, then KILL after {grace:g} s)")
    else:
        print(f"job {args.id}: {result.words}")
    return 0


def _queue_job(args: argparse.Namespace, ctx: CliContext) -> tuple[JobRepository, JobRecord] | int:
    """Check the options and queue the job; the usage error's status when they are wrong."""
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(
            f"msquant-desktop: jobs {args.jobs_command} needs a command after --, e.g. "
            f"jobs {args.jobs_command} -- python train.py",
            file=sys.stderr,
        )
        return 2
    cwd = None
    if args.cwd:
        cwd = str(Path(args.cwd).expanduser().resolve())
        if not Path(cwd).is_dir():
            print(f"msquant-desktop: --cwd {args.cwd}: no such directory", file=sys.stderr)
            return 2
    meta = {AFTER_META_KEY: sorted(set(args.after))} if args.after else {}
    try:
        spec = JobSpec(
            name=args.name or name_from_command(" ".join(argv)),
            argv=tuple(argv),
            cwd=cwd,
            gpus=args.gpus,
            meta=meta,
        )
    except ValueError as exc:
        print(f"msquant-desktop: {exc}", file=sys.stderr)
        return 2
    ctx.settings.validate()  # a bad settings file is refused before anything is queued
    repo = _repo(ctx)
    for dep in args.after:
        found = repo.find(dep)
        if found is None or found.spec.target is not JobTarget.LOCAL:
            print(f"msquant-desktop: --after {dep}: no local job with that id", file=sys.stderr)
            return 2
    record = repo.create(spec, JobState.QUEUED, "submitted from the command line")
    after = f" after job {', '.join(map(str, sorted(set(args.after))))}" if args.after else ""
    print(f"job {record.id} queued{after}")
    return repo, record


def cmd_add(args: argparse.Namespace, ctx: CliContext) -> int:
    """Queue the job and start what the queue allows now (this one, if it is its turn); return."""
    queued = _queue_job(args, ctx)
    if isinstance(queued, int):
        return queued
    repo, record = queued
    _move_queue(ctx, repo)
    return _report_start(repo.get(record.id), announce_queued=True)


def cmd_run(args: argparse.Namespace, ctx: CliContext) -> int:
    queued = _queue_job(args, ctx)
    if isinstance(queued, int):
        return queued
    repo, record = queued
    announced = False
    while True:
        _move_queue(ctx, repo, every=MOVE_QUEUE_EVERY_S)
        current = repo.get(record.id)
        if current.state is not JobState.QUEUED:
            break
        if args.no_wait:
            print(f"job {record.id} waits in the queue; it starts when a slot is free")
            return 0
        if not announced:
            print(
                f"job {record.id} waits for a free slot (limit {ctx.settings.max_concurrent_jobs})"
                f"{' and the jobs it runs after' if args.after else ''}; Ctrl+C leaves it queued"
            )
            announced = True
        time.sleep(WAIT_POLL_SECONDS)
    status = _report_start(current, announce_queued=False)
    if not args.wait or current.state.is_final:
        return _status_of(current) if args.wait else status
    return _status_of(_ended(ctx, repo, record.id))


def _report_start(record: JobRecord, announce_queued: bool) -> int:
    """Say where a job stands after the queue moved: still queued, running, already ended, or why it
    could not run (1).  A job that ran counts as started (0), however it ended: `--wait` reports that."""
    if record.state is JobState.QUEUED:
        if announce_queued:
            print(f"job {record.id} waits in the queue; it starts when a slot is free")
        return 0
    outcome = record.outcome.describe() if record.outcome else record.state.value
    # Never started (rejected by the queue, no run folder, no supervisor): decided by this launch,
    # so the status does not depend on timing.  A command the supervisor could not execute did
    # start (it has a start time) and is reported by `--wait`, like any other ending.
    if record.state.is_final and record.started_at is None:
        print(f"msquant-desktop: job {record.id} cannot run: {outcome}", file=sys.stderr)
        return 1
    if record.state.is_final:  # a quick one: it ended before we looked again
        print(f"job {record.id} ended ({outcome}); run folder {record.run_dir}")
        return 0
    if record.run_dir:
        print(f"job {record.id} running; run folder {record.run_dir}")
    print(f"follow it with: msquant-desktop jobs logs {record.id} --follow")
    return 0
