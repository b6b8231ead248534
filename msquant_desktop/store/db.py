"""The SQLite store: one file, WAL, foreign keys, versioned migrations in `PRAGMA user_version`.

A database written by a newer version of the app is refused before anything writes to it: the
version is read straight from the file header (bytes 60..63) and from the newest copy of page 1 in
the -wal file, so the file and its -wal stay byte-identical.  A store that is empty, damaged,
read-only or on a full disk is never replaced: `store_error` turns SQLite's error into one line that
names the file and what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from msquant_desktop.store.disk_space import is_nearly_full

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

    None when the file does not exist (a new store).  Raises StoreError when it is empty (a store
    that lost its contents is never silently replaced by a new one) or not an SQLite database.
    """
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the store {path} ({exc.strerror}): fix its permissions") from exc
    if not header:
        raise StoreError(
            f"the store {path} is empty (0 bytes): its history is gone or it was truncated. "
            "Restore it from a backup, or move it away to start a new one"
        )
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path} is not an SQLite database; move it away or pass another --data-dir")
    _check_not_truncated(path, header)
    return int.from_bytes(header[USER_VERSION_OFFSET : USER_VERSION_OFFSET + 4], "big", signed=True)


def _check_not_truncated(path: Path, header: bytes) -> None:
    """A file shorter than the page count its header claims lost its tail (SQLite would only notice
    when a query reaches a missing page).  The count is valid when the "version-valid-for" number
    (offset 92) equals the change counter (offset 24), as SQLite's file format says."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if pages == 0 or header[92:96] != header[24:28]:
        return
    size = path.stat().st_size
    if size < pages * page_size:
        raise StoreError(
            f"the store {path} is damaged (it is {size} bytes; its header says {pages * page_size}): "
            "move it away (with its -wal and -shm files) to start a new one, or restore a backup; "
            "run folders are not affected"
        )


_WAL_MAGIC = (0x377F0682, 0x377F0683)


def read_user_version_from_wal(path: Path) -> int | None:
    """`user_version` in the newest committed-looking copy of page 1 in `<path>-wal`, or None.

    A newer app may have written its schema version only to the -wal so far (not checkpointed).
    Frames are valid when their salts match the WAL header's (checksums are not verified: a torn
    last frame can only make us see an older version, which the main file then decides).
    """
    wal = path.with_name(path.name + "-wal")
    try:
        with wal.open("rb") as fh:
            header = fh.read(32)
            if len(header) < 32 or int.from_bytes(header[0:4], "big") not in _WAL_MAGIC:
                return None
            page_size = int.from_bytes(header[8:12], "big")
            salts = header[16:24]
            version = None
            while True:
                frame = fh.read(24)
                if len(frame) < 24:
                    break
                page = fh.read(page_size)
                if len(page) < page_size or frame[8:16] != salts:
                    break
                if int.from_bytes(frame[0:4], "big") == 1:
                    raw = page[USER_VERSION_OFFSET : USER_VERSION_OFFSET + 4]
                    version = int.from_bytes(raw, "big", signed=True)
            return version
    except OSError:
        return None


def check_not_newer(path: Path) -> None:
    version = read_user_version_from_header(path)
    in_wal = read_user_version_from_wal(path) if version is not None else None
    if in_wal is not None and (version is None or in_wal > version):
        version = in_wal
    if version is not None and version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"The database {path} was written by a newer version of MSQuant Desktop "
            f"(schema {version}; this version understands up to {SCHEMA_VERSION}). "
            "It was left untouched. Update MSQuant Desktop, or start with another --data-dir."
        )


class StoreConnection(sqlite3.Connection):
    """A connection `connect` made; it knows when it is closed (see `_open_in_this_process`)."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


_OPEN: dict[str, weakref.WeakSet[StoreConnection]] = {}
_OPEN_LOCK = threading.Lock()


def _store_key(path: Path) -> str:
    return os.path.realpath(path)


def _open_in_this_process(path: Path) -> bool:
    """Whether this process holds an open connection to the store at `path`.

    Then its header must not be read through a file handle of our own: closing any descriptor of a
    file drops every POSIX lock this process holds on it, SQLite's included, and a connection in
    another process (a job's supervisor) that closes next believes it is the last one, checkpoints
    and resets the WAL under our open connections — they then read and write a stale copy.  The
    header was checked when the first connection was opened; SQLite's own `user_version` check in
    `migrate` still refuses a newer schema."""
    with _OPEN_LOCK:
        return any(not conn.closed for conn in _OPEN.get(_store_key(path), ()))


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the store at `path`.  StoreError with one clear line
    when it cannot be used; nothing is replaced.  Safe to call on any thread, while other
    connections of this process are open (one connection per thread)."""
    if not _open_in_this_process(path):
        check_not_newer(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False, factory=StoreConnection
        )
    except (OSError, sqlite3.Error) as exc:
        raise store_error(path, exc) from exc
    with _OPEN_LOCK:
        _OPEN.setdefault(_store_key(path), weakref.WeakSet()).add(conn)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads page 1: damage shows here
        migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(path, exc) from exc
    return conn


def store_error(path: Path | str, exc: BaseException) -> StoreError:
    """One line for a user: what is wrong with the store at `path` and what to do about it."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc)
    lowered = text.lower()
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return StoreError(
            f"the store {path} is damaged ({text}). Move it away (with its -wal and -shm files) to start "
            "a new one, or restore a backup; run folders are not affected"
        )
    if (
        "disk is full" in lowered
        or "no space" in lowered
        or getattr(exc, "errno", None) == 28
        or ("disk i/o error" in lowered and is_nearly_full(Path(path).parent))
    ):
        # A disk full to its last byte fails the shared-memory file first: SQLite says only "disk
        # I/O error" (SQLITE_IOERR_SHMSIZE), so the free space is looked at to say what it means.
        return StoreError(f"no space left for the store {path}: free some disk space and try again")
    if (
        "readonly" in lowered
        or "read-only" in lowered
        or "permission" in lowered
        or "unable to open" in lowered
    ):
        return StoreError(
            f"cannot write the store {path} (read-only or no permission): fix the permissions of its "
            "folder or pass another --data-dir"
        )
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"the store {path} is busy (another process holds a write lock): try again")
    return StoreError(f"the store {path} cannot be used: {text}")


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
