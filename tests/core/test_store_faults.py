"""Storage faults on real files and mounts: every command says one clear line, exits non-zero, and
never replaces or rewrites the user's store.  tmpfs and read-only bind mounts need root (skipped
otherwise, with the reason)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from msquant_desktop.store import StoreError, connect
from msquant_desktop.store.db import SCHEMA_VERSION, read_user_version_from_wal
from tests.conftest import fill_disk

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs and read-only bind mounts need root")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("MSQUANT_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _digest(*paths: Path) -> list[str | None]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths]


@pytest.fixture
def data_dir_with_jobs(tmp_path: Path) -> Path:
    data = tmp_path / "msquant"
    done = _cli(data, "jobs", "run", "--no-wait", "--", "true")
    assert done.returncode == 0, done.stderr
    # The job's supervisor records its end (and moves the queue) in the store: let it finish and
    # exit before a test damages the store, or its late write is taken for the command's.
    assert _cli(data, "jobs", "wait", "1").returncode == 0
    deadline = time.monotonic() + 30
    while any(str(data) in " ".join(p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"])):
        assert time.monotonic() < deadline, "the job's supervisor did not exit"
        time.sleep(0.05)
    return data


def _store(data: Path) -> Path:
    return data / "data" / "msquant.sqlite3"


def test_an_empty_store_is_refused_and_left_empty(data_dir_with_jobs: Path) -> None:
    store = _store(data_dir_with_jobs)
    store.write_bytes(b"")
    for args in (("jobs", "list"), ("jobs", "run", "--", "true"), ("slurm", "status")):
        _one_clear_line(_cli(data_dir_with_jobs, *args), str(store), "empty")
    assert store.stat().st_size == 0  # never silently rebuilt as a new, empty store


@pytest.mark.parametrize("damage", ["truncated to half", "garbage on page 1"])
def test_a_damaged_store_is_refused_byte_identical(data_dir_with_jobs: Path, damage: str) -> None:
    store = _store(data_dir_with_jobs)
    # Make it a few pages long and checkpoint into the file; then close, before the file is damaged:
    # a connection left open would keep the damaged file's -shm mapped in this process.
    conn = sqlite3.connect(store)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO kv (key, value) VALUES (?, ?)", [(f"k{i}", "v" * 500) for i in range(200)]
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    data = store.read_bytes()
    if damage == "truncated to half":
        store.write_bytes(data[: len(data) // 2])
    else:
        store.write_bytes(data[:100] + os.urandom(3900) + data[4000:])
    before = _digest(store)
    for args in (("jobs", "list"), ("jobs", "show", "1")):
        done = _cli(data_dir_with_jobs, *args)
        _one_clear_line(done, str(store))
        assert "damaged" in done.stderr or "malformed" in done.stderr
    assert _digest(store) == before


def test_a_newer_schema_only_in_the_wal_is_refused_and_both_files_stay_identical(tmp_path: Path) -> None:
    live = tmp_path / "live" / "msquant.sqlite3"
    conn = connect(live)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")  # a newer app, not checkpointed yet
    copy = tmp_path / "copy" / "msquant.sqlite3"
    copy.parent.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy2(f"{live}{suffix}", f"{copy}{suffix}")
    conn.close()
    wal = Path(f"{copy}-wal")
    assert read_user_version_from_wal(copy) == SCHEMA_VERSION + 3
    before = _digest(copy, wal)
    with pytest.raises(StoreError, match="newer version"):
        connect(copy)
    assert _digest(copy, wal) == before and not Path(f"{copy}-shm").exists()


@needs_root
def test_a_read_only_data_dir_gives_one_line_for_every_command(data_dir_with_jobs: Path) -> None:
    subprocess.run(["mount", "--bind", str(data_dir_with_jobs), str(data_dir_with_jobs)], check=True)
    try:
        # A read-only remount is refused while a file is open for writing (the job's supervisor may
        # still be finishing): retry until it goes through.
        for _ in range(100):
            remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(data_dir_with_jobs)])
            if remount.returncode == 0:
                break
            time.sleep(0.1)
        assert remount.returncode == 0
        before = _digest(_store(data_dir_with_jobs))
        for args in (
            ("jobs", "list"),
            ("jobs", "run", "--", "true"),
            ("jobs", "show", "1"),
            ("slurm", "status"),
        ):
            _one_clear_line(_cli(data_dir_with_jobs, *args), "Read-only file system", "fix its permissions")
        assert _digest(_store(data_dir_with_jobs)) == before
    finally:
        subprocess.run(["umount", str(data_dir_with_jobs)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@needs_root
def test_a_full_disk_gives_one_line_and_keeps_the_jobs_already_stored(tiny_disk: Path) -> None:
    data = tiny_disk / "msquant"
    assert _cli(data, "jobs", "run", "--no-wait", "--name", "kept", "--", "true").returncode == 0
    for _ in range(100):  # let it end first: its supervisor must not be the one that meets the full disk
        if "COMPLETED" in _cli(data, "jobs", "list").stdout:
            break
        time.sleep(0.1)
    filler = fill_disk(tiny_disk)
    # Every command: one line that says the disk is full (SQLite's own words there can be a bare
    # "disk I/O error", from the shared-memory file it cannot grow).
    for command in (["jobs", "run", "--no-wait", "--", "true"], ["jobs", "list"], ["jobs", "show", "1"]):
        done = _cli(data, *command)
        if done.returncode == 0:
            continue  # a read the full disk did not stop
        _one_clear_line(done)
        assert "no space left" in done.stderr, (command, done.stderr)
    filler.unlink()  # space comes back: nothing was lost
    listing = _cli(data, "jobs", "list")
    assert listing.returncode == 0 and "kept" in listing.stdout


def test_a_data_dir_that_is_a_file_gives_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    _one_clear_line(_cli(not_a_dir, "jobs", "list"), str(not_a_dir), "Not a directory")


def test_a_closed_pipe_ends_the_output_quietly(data_dir_with_jobs: Path) -> None:
    for _ in range(3):
        assert _cli(data_dir_with_jobs, "jobs", "run", "--no-wait", "--", "true").returncode == 0
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    shell = (
        f"{sys.executable} -m msquant_desktop --data-dir {data_dir_with_jobs} jobs list --json | head -c 10"
    )
    done = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=60)
    assert len(done.stdout) == 10 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
