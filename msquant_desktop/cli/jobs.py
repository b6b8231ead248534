"""`jobs list|show|logs|cancel|run`: the local job engine from a terminal.

CLI jobs land in the same store as the app's: an open app shows them live, and the concurrency limit
holds across both because every start is decided inside one store transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msquant_desktop.cli.context import CliContext, job_id_arg, job_name_arg, positive_int
from msquant_desktop.domain.jobs import JobRecord, JobSpec, JobState, JobTarget
from msquant_desktop.domain.logformat import STDERR_TAG, LineSplitter, decode_tagged
from msquant_desktop.domain.runfiles import LOG_FILE
from msquant_desktop.domain.secrets import extra_patterns
from msquant_desktop.runtime import self_command
from msquant_desktop.services import job_lifecycle as lifecycle
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

    p = sub.add_parser("run", help="run a command as a supervised job: jobs run [options] -- CMD ...")
    p.add_argument("--name", type=job_name_arg, help="shown in the Jobs table (default: the command)")
    p.add_argument("--cwd", metavar="DIR", help="working directory (default: the job's run folder)")
    p.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs to reserve (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--no-wait", action="store_true", help="when no slot is free, leave it queued for the app")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=cmd_run)


def _repo(ctx: CliContext) -> JobRepository:
    """The store, with every job whose supervisor is gone settled first: reading the jobs is enough
    to give such a job its final state, with or without an open app (job_lifecycle.inspect)."""
    repo = JobRepository(ctx.conn)
    lifecycle.settle_unwatched(repo)
    return repo


def _summary(r: JobRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.spec.name,
        "kind": r.spec.kind.value,
        "target": r.spec.target.value,
        "state": r.state.value,
        "created_at": r.created_at.isoformat(),
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "gpus": list(r.gpu_indices),
        "exit": r.outcome.describe() if r.outcome else None,
        "reason": r.reason,
        "run_dir": r.run_dir,
    }


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    records = _repo(ctx).list_jobs(limit=args.limit)
    if args.json:
        print(json.dumps([_summary(r) for r in records], indent=1))
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
    data = _summary(record)
    data["spec"] = record.spec.to_dict()
    data["result"] = record.result
    data["transitions"] = [
        {"from": t.old.value if t.old else None, "to": t.new.value, "at": t.at.isoformat(), "note": t.note}
        for t in repo.transitions(args.id)
    ]
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        for key, value in data.items():
            text = json.dumps(value) if isinstance(value, dict | list) else value
            print(f"{key:>12}: {text}")
    return 0


def cmd_logs(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = _repo(ctx)
    record = _find_or_say(repo, args.id)
    if record is None:
        return 1
    if not record.run_dir:
        print(f"job {args.id} has no output yet ({record.state.value.lower()})", file=sys.stderr)
        return 0 if not args.follow else _wait_for_run_dir_then_follow(args, ctx)
    return _print_log(Path(record.run_dir), repo, args.id, args.follow)


def _wait_for_run_dir_then_follow(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = _repo(ctx)
    while True:
        record = repo.get(args.id)
        if record.run_dir:
            return _print_log(Path(record.run_dir), repo, args.id, True)
        if record.state.is_final:
            return 0
        time.sleep(WAIT_POLL_SECONDS)


def _print_log(run_dir: Path, repo: JobRepository, job_id: int, follow: bool) -> int:
    splitter = LineSplitter()
    offset = 0
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
            return 0
        if not data and (read_exit_record(run_dir) is not None or repo.get(job_id).state.is_final):
            rest = splitter.flush()
            if rest:
                sys.stdout.write(
                    rest[2:].decode("utf-8", "replace") if not rest.startswith(STDERR_TAG) else ""
                )
            return 0
        if not data:
            time.sleep(WAIT_POLL_SECONDS)


def cmd_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = _repo(ctx)
    record = _find_or_say(repo, args.id)
    if record is None:
        return 1
    if record.spec.target is JobTarget.SLURM:
        print(
            "SLURM jobs are cancelled from the app's Clusters area (scancel on the cluster)", file=sys.stderr
        )
        return 1
    grace = ctx.settings.cancel_grace_seconds
    result = lifecycle.cancel_now(repo, args.id, grace, note_suffix=" (CLI)")
    if result.words == "cancelling":
        print(f"job {args.id}: cancelling (TERM, then KILL after {grace:g} s)")
    else:
        print(f"job {args.id}: {result.words}")
    return 0


def cmd_run(args: argparse.Namespace, ctx: CliContext) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(
            "msquant-desktop: jobs run needs a command after --, e.g. jobs run -- python train.py",
            file=sys.stderr,
        )
        return 2
    cwd = None
    if args.cwd:
        cwd = str(Path(args.cwd).expanduser().resolve())
        if not Path(cwd).is_dir():
            print(f"msquant-desktop: --cwd {args.cwd}: no such directory", file=sys.stderr)
            return 2
    try:
        spec = JobSpec(name=args.name or " ".join(argv)[:80], argv=tuple(argv), cwd=cwd, gpus=args.gpus)
    except ValueError as exc:
        print(f"msquant-desktop: {exc}", file=sys.stderr)
        return 2
    ctx.settings.validate()  # a bad settings file is refused before anything is queued
    repo = _repo(ctx)
    record = repo.create(spec, JobState.QUEUED, "submitted from the command line")
    print(f"job {record.id} queued")
    me = lifecycle.ProcessIdentity.of_this_process()
    announced = False
    while True:
        current = repo.get(record.id)
        if current.state is not JobState.QUEUED:
            print(f"job {record.id} was started elsewhere (the app): {current.state.value}")
            return 0
        claimed = lifecycle.claim(
            repo, ctx.settings.max_concurrent_jobs, control.detect_gpu_count(), me, only_job=record.id
        )
        if claimed is not None:
            if claimed.state is not JobState.STARTING:
                print(f"msquant-desktop: job {record.id} cannot run: {claimed.reason}", file=sys.stderr)
                return 1
            return _launch_detached(repo, claimed, ctx)
        if args.no_wait:
            print(f"job {record.id} waits in the queue; the app starts it when a slot is free")
            return 0
        if not announced:
            print(
                f"job {record.id} waits for a free slot (limit {ctx.settings.max_concurrent_jobs}); Ctrl+C leaves it queued"
            )
            announced = True
        time.sleep(WAIT_POLL_SECONDS)


def _launch_detached(repo: JobRepository, record: JobRecord, ctx: CliContext) -> int:
    """Start the supervisor in its own session, not tied to this terminal.  The supervisor records
    RUNNING (and the end) itself, as for a job the app starts."""
    prepared = lifecycle.prepare_launch(
        repo,
        record,
        ctx.paths.runs_dir,
        ctx.paths.database,
        ctx.settings.cancel_grace_seconds,
        dict(os.environ),
        extra_patterns(ctx.settings.secret_env_names),
    )
    if not isinstance(prepared, lifecycle.Launch):
        print(
            f"msquant-desktop: job {record.id}: {prepared.outcome.describe() if prepared.outcome else prepared.state.value}",
            file=sys.stderr,
        )
        return 1
    run_dir = str(prepared.run_dir)
    argv = self_command("_supervise", "--run-dir", run_dir)
    problem = lifecycle.supervisor_problem(argv)
    if problem is None:
        try:
            subprocess.Popen(  # detached on purpose: the job outlives this command
                argv,
                cwd=run_dir,
                env=prepared.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            problem = str(exc)
    if problem is not None:
        final = lifecycle.fail_to_start(repo, record.id, problem)
        print(f"msquant-desktop: {final.reason}", file=sys.stderr)
        return 1
    print(f"job {record.id} running; run folder {run_dir}")
    print(f"follow it with: msquant-desktop jobs logs {record.id} --follow")
    return 0
