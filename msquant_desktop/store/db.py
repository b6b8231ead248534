"""The SQLite store: one file, WAL, foreign keys, versioned migrations in `PRAGMA user_version`.

A database written by a newer version of the app is refused before anything writes to it: the
version is read straight from the file header (bytes 60..63), so the file stays byte-identical.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
USER_VERSION_OFFSET = 60


class StoreError(RuntimeError):
    """The store cannot be used; the message says why and what to do."""


class NewerSchemaError(StoreError):
    """The database was written by a newer version of the app."""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the surrounding migration transaction; run statements one by one.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migration_1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE projects (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            name         TEXT NOT NULL,
            path         TEXT NOT NULL UNIQUE,
            config_dir   TEXT,
            entry_point  TEXT NOT NULL DEFAULT 'python train.py',
            added_at     TEXT NOT NULL,
            extra        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE jobs (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            name            TEXT NOT NULL,
            kind            TEXT NOT NULL,
            target          TEXT NOT NULL,
            spec            TEXT NOT NULL,
            state           TEXT NOT NULL,
            queue_position  INTEGER,
            project_id      INTEGER REFERENCES projects(id) ON DELETE SET NULL,
            cluster         TEXT,
            created_at      TEXT NOT NULL,
            started_at      TEXT,
            finished_at     TEXT,
            run_dir         TEXT,
            pid             INTEGER,
            pid_start_time  REAL,
            gpu_indices     TEXT NOT NULL DEFAULT '',
            exit_code       INTEGER,
            signal          INTEGER,
            reason          TEXT NOT NULL DEFAULT '',
            slurm_job_id    TEXT,
            result          TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX jobs_by_state ON jobs(state);
        CREATE INDEX jobs_by_project ON jobs(project_id);
        CREATE INDEX jobs_by_cluster ON jobs(cluster, slurm_job_id);
        CREATE TABLE job_transitions (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            old_state  TEXT,
            new_state  TEXT NOT NULL,
            at         TEXT NOT NULL,
            note       TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX transitions_by_job ON job_transitions(job_id);
        CREATE TABLE kv (
            key    TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        );
        """,
    )


def _migration_2(conn: sqlite3.Connection) -> None:
    # Who claimed a STARTING job (the app or `jobs run`): a dead claimer means a failed launch.
    _run_script(
        conn,
        """
        ALTER TABLE jobs ADD COLUMN claimer_pid INTEGER;
        ALTER TABLE jobs ADD COLUMN claimer_start_time REAL
        """,
    )


# Index i holds the migration that takes the schema from version i to i + 1.  Append only.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, _migration_2]
SCHEMA_VERSION = len(MIGRATIONS)


def read_user_version_from_header(path: Path) -> int | None:
    """`PRAGMA user_version` read from the file header without opening it through SQLite.

    None when the file does not exist or is empty (a new store).  Raises StoreError when the file is
    not an SQLite database at all.
    """
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except FileNotFoundError:
        return None
    if not header:
        return None
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path} is not an SQLite database; move it away or pass another --data-dir")
    return int.from_bytes(header[USER_VERSION_OFFSET : USER_VERSION_OFFSET + 4], "big", signed=True)


def check_not_newer(path: Path) -> None:
    version = read_user_version_from_header(path)
    if version is not None and version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"The database {path} was written by a newer version of MSQuant Desktop "
            f"(schema {version}; this version understands up to {SCHEMA_VERSION}). "
            "It was left untouched. Update MSQuant Desktop, or start with another --data-dir."
        )


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the store at `path`."""
    check_not_newer(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn, path)
    return conn


def migrate(conn: sqlite3.Connection, path: Path | str = "<memory>") -> None:
    """Apply the missing migrations, each in its own transaction."""
    with transaction(conn):
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"The database {path} has schema {current}; this version understands up to "
                f"{SCHEMA_VERSION}. Update MSQuant Desktop."
            )
        for version in range(current, SCHEMA_VERSION):
            log.info("migrating store %s from schema %d to %d", path, version, version + 1)
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent writers (app and CLI) serialize cleanly.

    Re-entrant: inside an open transaction it simply joins it.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
