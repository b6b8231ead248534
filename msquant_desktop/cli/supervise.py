"""`_supervise --run-dir DIR`: the hidden subcommand that runs one job under our supervisor.

Started by the app (QProcess, new session) or by `jobs run` (detached).  After the job has ended
and `exit.json` is written, it records the final state in the store itself, so the history is right
even when no app is running.  `python -m msquant_desktop _supervise` takes a fast path that imports
only this module and the supervisor (start-up time is part of "click -> process running"), so the
imports here stay minimal and argparse is only used when the full CLI builds its parser.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

USAGE = "usage: msquant-desktop _supervise --run-dir DIR"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    # No help text: a helper process's entry point, not something a user types.
    parser = subparsers.add_parser("_supervise")
    parser.add_argument("--run-dir", required=True)
    parser.set_defaults(func=lambda args, ctx: main(["--run-dir", args.run_dir]))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--run-dir" or not argv[1]:
        print(USAGE, file=sys.stderr)
        return 2
    run_dir = argv[1]
    from msquant_desktop.supervisor.runner import supervise

    def record_end(record: dict) -> None:  # type: ignore[type-arg]
        try:
            _record_in_store(run_dir, record)
        except Exception as exc:
            _say(f"could not record the job's end in the store: {exc}")

    try:
        # The end goes to the store before a slow app has taken the rest of our output.
        supervise(run_dir, after_exit=record_end)
    except Exception as exc:  # the app reads our stderr; the job's own outcome is in exit.json
        _say(f"supervisor failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


def _say(text: str) -> None:
    try:
        print(f"msquant supervisor: {text}", file=sys.stderr, flush=True)
    except OSError:
        pass  # the app is gone; never die of a dead pipe


def _record_in_store(run_dir_text: str, exit_data: dict) -> None:  # type: ignore[type-arg]
    """Write the final state unless the app (or a cancel) already did."""
    import json
    from pathlib import Path

    from msquant_desktop.domain.markers import STORE_ENV
    from msquant_desktop.domain.runfiles import LAUNCH_FILE
    from msquant_desktop.domain.runs import ExitRecord, outcome_from_exit
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository
    from msquant_desktop.store.run_folders import last_event_of_type, read_events

    run_dir = Path(run_dir_text)
    launch = json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
    store_path = launch["env"].get(STORE_ENV)
    if not store_path:
        return
    outcome = outcome_from_exit(ExitRecord.from_dict(exit_data))
    result = last_event_of_type(read_events(run_dir), "result")
    conn = connect(Path(store_path))
    try:
        fields: dict[str, object] = {
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "reason": outcome.reason,
        }
        if result is not None:
            fields["result"] = result
        JobRepository(conn).finish_if_active(
            int(launch["job_id"]), outcome.state, "recorded by the supervisor", **fields
        )
    finally:
        conn.close()
