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
    import sqlite3
    import threading
    from typing import Any

    from msquant_desktop.store.jobs_repo import JobRepository

USAGE = "usage: msquant-desktop _supervise --run-dir DIR"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    store = _StoreLink(run_dir)
    try:
        # The end goes to the store before a slow app has taken the rest of our output.
        supervise(
            run_dir,
            on_started=store.job_started,
            after_exit=store.job_ended,
            after_drain=store.queue_moves_on,
        )
    except Exception as exc:  # the app reads our stderr; the job's own outcome is in exit.json
        _say(f"supervisor failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


def _say(text: str) -> None:
    try:
        print(f"msquant supervisor: {text}", file=sys.stderr, flush=True)
    except OSError:
        pass  # the app is gone; never die of a dead pipe


class _StoreLink:
    """The supervisor's two writes to the store, through the one job lifecycle.

    RUNNING is written by the supervisor itself as soon as the job's process exists, and the final
    state as soon as exit.json is written: the history is right even when no app runs, and a job that
    ends in a millisecond still has its RUNNING step and start time.  A store that cannot be written
    never stops the job: the app (or the next `jobs` command) settles it from the run folder.
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self._started: threading.Thread | None = None
        self.app_reads = _app_reads_us()

    def _open(self) -> tuple[sqlite3.Connection, JobRepository, int] | None:
        import json
        from pathlib import Path

        from msquant_desktop.domain.markers import STORE_ENV
        from msquant_desktop.domain.runfiles import LAUNCH_FILE
        from msquant_desktop.store import connect
        from msquant_desktop.store.jobs_repo import JobRepository

        launch = json.loads((Path(self.run_dir) / LAUNCH_FILE).read_text(encoding="utf-8"))
        import os

        store_path = os.environ.get(STORE_ENV) or launch["env"].get(STORE_ENV)
        if not store_path:
            return None
        conn = connect(Path(store_path))
        return conn, JobRepository(conn), int(launch["job_id"])

    def job_started(self, job_pid: int) -> None:
        """Record RUNNING on a thread when no app reads our output (`jobs run` starts us with stdout
        on /dev/null): importing the store costs tens of milliseconds of CPU, and twenty jobs started
        at once would take them from the app.  An app marks RUNNING itself on our `started` line (and
        stops a job cancelled meanwhile); an end recorded before either looked still gets its RUNNING
        step (`job_lifecycle.finish_from_exit`)."""
        import threading

        if self.app_reads:
            return

        self._started = threading.Thread(target=self._record_running, args=(job_pid,), name="record-running")
        self._started.start()

    def _record_running(self, job_pid: int) -> None:
        try:
            import os
            import signal

            from msquant_desktop.domain.jobs import JobState
            from msquant_desktop.services import job_lifecycle

            opened = self._open()
            if opened is None:
                return
            conn, repo, job_id = opened
            try:
                me = job_lifecycle.ProcessIdentity.of_this_process()
                if job_lifecycle.mark_running(repo, job_id, me, job_pid) is JobState.CANCELLING:
                    os.kill(os.getpid(), signal.SIGTERM)  # cancelled while starting: stop it as a cancel does
            finally:
                conn.close()
        except Exception as exc:
            _say(f"could not record the job's start in the store: {exc}")

    def job_ended(self, exit_data: dict[str, Any]) -> bool:
        """Write the final state unless the app (or a cancel) already did; RUNNING always first.
        True when the store holds the job's end now."""
        if self._started is not None:
            self._started.join(timeout=30)
        try:
            from msquant_desktop.domain.runs import ExitRecord
            from msquant_desktop.services import job_lifecycle

            opened = self._open()
            if opened is None:
                return False
            conn, repo, job_id = opened
            try:
                job = repo.get(job_id)
                job_lifecycle.finish_from_exit(
                    repo, job, ExitRecord.from_dict(exit_data), "recorded by the supervisor"
                )
                return repo.get(job_id).state.is_final
            finally:
                conn.close()
        except Exception as exc:
            _say(f"could not record the job's end in the store: {exc}")
            return False

    def queue_moves_on(self, app_still_reads: bool) -> None:
        """Start the next queued jobs when no app is left to do it (pueue's queue advances with no
        client open; ours with no window open).  An app that reads us claims them itself, and the
        claims are transactional either way: this only decides who bothers."""
        if self.app_reads and app_still_reads:
            return
        try:
            import json
            import os
            from pathlib import Path

            from msquant_desktop.config.paths import paths_for_store
            from msquant_desktop.config.settings_store import load_settings
            from msquant_desktop.domain.runfiles import LAUNCH_FILE
            from msquant_desktop.services import job_lifecycle
            from msquant_desktop.supervisor.control import detect_gpu_count

            opened = self._open()
            if opened is None:
                return
            conn, repo, _job_id = opened
            try:
                paths = paths_for_store(Path(conn_path(conn)))
                if paths is None:
                    return  # a store outside our layouts: its owner moves its queue
                limits = job_lifecycle.queue_limits(
                    paths, load_settings(paths.settings_file), detect_gpu_count()
                )
                # The next job inherits what this one inherited, without what this job set itself.
                own = json.loads((Path(self.run_dir) / LAUNCH_FILE).read_text(encoding="utf-8"))["env"]
                base_env = {k: v for k, v in os.environ.items() if k not in own}
                me = job_lifecycle.ProcessIdentity.of_this_process()
                job_lifecycle.advance_queue(repo, limits, me, base_env)
            finally:
                conn.close()
        except Exception as exc:
            _say(f"could not start the next queued job: {exc}")


def conn_path(conn: sqlite3.Connection) -> str:
    """The file behind a store connection (its main database)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2])


def _app_reads_us() -> bool:
    """True when our stdout is a pipe or socket: an app started us and reads our messages
    (`jobs run` and a queue-advancing supervisor start us with stdout on /dev/null)."""
    import os
    import stat

    try:
        mode = os.fstat(1).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
