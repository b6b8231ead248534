"""The SQLite store on a real file: migrations, pragmas, transitions, and refusing newer schemas."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.store import (
    IllegalTransition,
    JobRepository,
    NewerSchemaError,
    ProjectRepository,
    StoreError,
    connect,
)
from msquant_desktop.store.db import SCHEMA_VERSION, read_user_version_from_header
from tests.conftest import REPO_ROOT, run_cli_argv


def test_new_store_is_migrated_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "job_transitions", "projects", "kv"} <= tables
    conn.close()
    assert read_user_version_from_header(tmp_path / "s.sqlite3") == SCHEMA_VERSION


def test_reopening_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    conn = connect(db)
    job = JobRepository(conn).create(JobSpec(name="a", argv=("true",)))
    conn.close()
    conn = connect(db)
    assert JobRepository(conn).get(job.id).spec.argv == ("true",)


def test_every_transition_is_recorded_with_its_time(tmp_path: Path) -> None:
    repo = JobRepository(connect(tmp_path / "s.sqlite3"))
    job = repo.create(JobSpec(name="a", argv=("true",)))
    assert job.state is JobState.QUEUED and job.queue_position == 1
    repo.transition(job.id, JobState.STARTING)
    running = repo.transition(job.id, JobState.RUNNING, pid=1234, pid_start_time=5.0, gpu_indices=(0, 1))
    assert running.started_at is not None and running.gpu_indices == (0, 1) and running.queue_position is None
    done = repo.transition(job.id, JobState.FAILED, exit_code=3)
    assert done.outcome is not None and done.outcome.describe() == "exit 3"
    steps = [(t.old, t.new) for t in repo.transitions(job.id)]
    assert steps == [
        (None, JobState.QUEUED),
        (JobState.QUEUED, JobState.STARTING),
        (JobState.STARTING, JobState.RUNNING),
        (JobState.RUNNING, JobState.FAILED),
    ]
    times = [t.at for t in repo.transitions(job.id)]
    assert times == sorted(times)


def test_final_states_never_change(tmp_path: Path) -> None:
    repo = JobRepository(connect(tmp_path / "s.sqlite3"))
    job = repo.create(JobSpec(name="a", argv=("true",)))
    repo.transition(job.id, JobState.CANCELLED)
    with pytest.raises(IllegalTransition):
        repo.transition(job.id, JobState.RUNNING)
    assert repo.get(job.id).state is JobState.CANCELLED


def test_queue_order_and_reorder(tmp_path: Path) -> None:
    repo = JobRepository(connect(tmp_path / "s.sqlite3"))
    ids = [repo.create(JobSpec(name=str(i), argv=("true",))).id for i in range(4)]
    assert [j.id for j in repo.queued()] == ids
    repo.reorder_queue([ids[3], ids[1]])
    assert [j.id for j in repo.queued()] == [ids[3], ids[1], ids[0], ids[2]]


def test_delete_refused_while_active(tmp_path: Path) -> None:
    repo = JobRepository(connect(tmp_path / "s.sqlite3"))
    job = repo.create(JobSpec(name="a", argv=("true",)))
    repo.transition(job.id, JobState.STARTING)
    with pytest.raises(StoreError, match="cancel it before deleting"):
        repo.delete(job.id)
    repo.transition(job.id, JobState.FAILED_TO_START, reason="no such file")
    repo.delete(job.id)
    assert repo.find(job.id) is None
    assert repo.transitions(job.id) == []  # cascaded


def test_project_removal_unlinks_jobs(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.sqlite3")
    project = ProjectRepository(conn).add("p", str(tmp_path))
    repo = JobRepository(conn)
    job = repo.create(JobSpec(name="a", argv=("true",), project_id=project.id))
    ProjectRepository(conn).remove(project.id)
    assert conn.execute("SELECT project_id FROM jobs WHERE id = ?", (job.id,)).fetchone()[0] is None
    with pytest.raises(StoreError, match="already added"):
        ProjectRepository(conn).add("p", str(tmp_path))
        ProjectRepository(conn).add("p", str(tmp_path))


def _make_newer_store(path: Path) -> str:
    conn = connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    digest = _make_newer_store(db)
    mtime = db.stat().st_mtime_ns
    with pytest.raises(NewerSchemaError, match="newer version"):
        connect(db)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert db.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite3"]


def test_app_exits_with_clear_message_on_newer_store(data_dir: Path) -> None:
    from msquant_desktop.config.paths import resolve_paths

    db = resolve_paths(data_dir).ensure().database
    digest = _make_newer_store(db)
    proc = subprocess.run(
        run_cli_argv("--data-dir", str(data_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen", "HOME": str(data_dir)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "written by a newer version of MSQuant Desktop" in proc.stderr
    assert "left untouched" in proc.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    db.write_bytes(b"hello, not sqlite" * 10)
    with pytest.raises(StoreError, match="not an SQLite database"):
        connect(db)
    assert db.read_bytes() == b"hello, not sqlite" * 10


def test_a_write_on_one_connection_is_seen_by_another_at_once(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    a, b = JobRepository(connect(db)), JobRepository(connect(db))
    assert a.connection is not b.connection
    job = a.create(JobSpec(name="from a", argv=("true",)))
    assert not a.connection.in_transaction  # committed, not left open
    assert b.get(job.id).spec.name == "from a" and b.queued()[0].queue_position == 1
    b.transition(job.id, JobState.CANCELLED, "from b")
    assert a.get(job.id).state is JobState.CANCELLED
    a.connection.close()
    b.connection.close()


WRITER = """
import sys, time
from pathlib import Path
from msquant_desktop.domain.jobs import JobSpec
from msquant_desktop.store import JobRepository, connect

db, tag, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
repo = JobRepository(connect(db))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    repo.create(JobSpec(name=f"{tag}-{i}", argv=("true",)))
    # A breath between writes, as a real app or CLI takes: SQLite's lock is not fair, and a writer
    # in a tight loop takes it again before the other's busy handler wakes (no overlap to prove).
    time.sleep(0.0005)
"""


def test_two_processes_writing_at_once_are_serialized(tmp_path: Path) -> None:
    """The app and `jobs run` write the same store: each create reads the queue's end and appends in
    one write transaction, so concurrent writers lose nothing, never share a queue position and never
    see "database is locked"."""
    db, go, count = tmp_path / "s.sqlite3", tmp_path / "go", 300
    connect(db).close()  # migrated before the race
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), tag, str(count), str(go)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        go.touch()
        results = [writer.communicate(timeout=120) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    for writer, (_out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0 and err == "", err
    conn = connect(db)
    rows = conn.execute("SELECT name, queue_position FROM jobs ORDER BY id").fetchall()
    conn.close()
    names = [r["name"] for r in rows]
    assert sorted(names) == sorted(f"{tag}-{i}" for tag in "ab" for i in range(count))
    assert [r["queue_position"] for r in rows] == list(range(1, 2 * count + 1))
    for tag in "ab":  # each writer's jobs are stored in the order it wrote them
        assert [n for n in names if n[0] == tag] == [f"{tag}-{i}" for i in range(count)]
    switches = sum(1 for x, y in zip(names, names[1:], strict=False) if x[0] != y[0])
    assert switches >= 2, "the two writers did not overlap, so nothing was proven"


_WRITE_AND_CLOSE = """
import sys
from pathlib import Path
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.store import JobRepository, connect
conn = connect(Path(sys.argv[1]))
JobRepository(conn).transition(int(sys.argv[2]), JobState.STARTING, "claimed by a child process")
conn.close()  # the child's last connection: SQLite checkpoints when it believes it is the last one
"""


def test_a_second_connection_on_another_thread_keeps_the_first_ones_view(tmp_path: Path) -> None:
    """The app holds its GUI-thread connection while a launcher thread opens another one; a job's
    supervisor (another process) then writes and closes.  The store's header check once read the
    file through a handle of its own and closed it, which dropped this process's POSIX locks: the
    child's close then reset the WAL under the open connections, which went on reading (and writing)
    a stale copy — a job the child had claimed still read QUEUED here."""
    import threading

    path = tmp_path / "store.sqlite3"
    first = connect(path)
    repo = JobRepository(first)
    job = repo.create(JobSpec(name="j", argv=("true",)))
    opened: list[object] = []
    thread = threading.Thread(target=lambda: opened.append(connect(path)))
    thread.start()
    thread.join()
    subprocess.run(
        [sys.executable, "-c", _WRITE_AND_CLOSE, str(path), str(job.id)],
        check=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert repo.get(job.id).state is JobState.STARTING
    repo.transition(job.id, JobState.FAILED_TO_START, "seen here", reason="seen here")
    second = connect(path)  # and a connection opened afterwards sees both writes
    assert JobRepository(second).get(job.id).state is JobState.FAILED_TO_START
    for conn in (first, second, *opened):
        conn.close()  # type: ignore[attr-defined]
