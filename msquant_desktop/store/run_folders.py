"""Run folders on disk: exclusive creation, the files written before a launch, and reading back.

Creation never overwrites: `mkdir` without exist_ok is atomic, and a collision (two jobs in the same
microsecond, or a clock step back) retries with a fresh short id.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msquant_desktop.domain.logformat import META_TAG, STDERR_TAG, parse_event
from msquant_desktop.domain.runfiles import EVENTS_FILE, EXIT_FILE, LAUNCH_FILE, LOG_FILE, SPEC_FILE
from msquant_desktop.domain.runs import ExitRecord, run_folder_name
from msquant_desktop.store.db import StoreError
from msquant_desktop.store.disk_space import LOW_SPACE_BYTES, free_bytes

MAX_ATTEMPTS = 50


def create_run_folder(runs_dir: Path, kind: str, now: datetime | None = None) -> Path:
    """Make a new, empty run folder under `runs_dir`; never returns one that existed before."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_ATTEMPTS):
        name = run_folder_name(now or datetime.now(UTC), kind, secrets.token_hex(3))
        path = runs_dir / name
        try:
            path.mkdir(mode=0o700)  # private: logs and launch facts are the user's own
        except FileExistsError:
            now = None  # a fresh timestamp and id on the next try
            continue
        return path
    raise StoreError(f"could not create a unique run folder in {runs_dir} after {MAX_ATTEMPTS} attempts")


def write_json_atomic(path: Path, data: dict[str, Any], durable: bool = True) -> None:
    """Write to a `.partial` file, (fsync,) rename: readers see the old file or the whole new one."""
    tmp = path.with_name(path.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_launch_files(run_dir: Path, spec: dict[str, Any], launch: dict[str, Any]) -> None:
    # No fsync: these matter only while the job can run, and a machine crash ends the job anyway;
    # skipping it keeps the click -> running path short.
    write_json_atomic(run_dir / SPEC_FILE, spec, durable=False)
    write_json_atomic(run_dir / LAUNCH_FILE, launch, durable=False)


def read_exit_record(run_dir: Path) -> ExitRecord | None:
    """The supervisor's exit record, or None while the job has not ended (or left no trace)."""
    try:
        data = json.loads((run_dir / EXIT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return ExitRecord.from_dict(data) if isinstance(data, dict) else None


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All events of a run (bad lines skipped: a crash may leave half a line)."""
    events: list[dict[str, Any]] = []
    try:
        with (run_dir / EVENTS_FILE).open("rb") as fh:
            for line in fh:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    events.append(value)
    except OSError:
        pass
    return events


def last_event_of_type(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    event: dict[str, Any]  # (reversed() of a list whose items hold Any is Any to mypy)
    for event in reversed(events):
        if event.get("type") == kind:
            return event
    return None


def log_path(run_dir: Path) -> Path:
    return run_dir / LOG_FILE


def read_log_tail(
    run_dir: Path, max_lines: int, max_bytes: int = 8 << 20
) -> tuple[list[tuple[str, bool]], int, int]:
    """The last `max_lines` output lines: ([(text, is_stderr)], lines left out, end offset).

    Reads at most `max_bytes` from the end, so opening a huge log stays fast.  Supervisor messages
    and event lines are left out (they are data, not output).  The end offset is where the last
    complete line ends: a live view continues reading from there.
    """
    path = run_dir / LOG_FILE
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read(size - start)
            earlier_lines = 0
            if start > 0:
                first_newline = data.find(b"\n") + 1
                start += first_newline
                data = data[first_newline:]
                fh.seek(0)
                earlier_lines = _count_newlines(fh, start)
    except OSError:
        return [], 0, 0
    cut = data.rfind(b"\n") + 1
    lines = [
        ln
        for ln in data[:cut].split(b"\n")
        if ln and not ln.startswith(META_TAG) and parse_event(ln[2:]) is None
    ]
    hidden = earlier_lines + max(0, len(lines) - max_lines)
    lines = lines[-max_lines:] if max_lines > 0 else []
    result = [(ln[2:].decode("utf-8", "replace"), ln.startswith(STDERR_TAG)) for ln in lines]
    return result, hidden, start + cut


def _count_newlines(fh: Any, limit: int) -> int:
    count = 0
    remaining = limit
    while remaining > 0:
        block = fh.read(min(remaining, 1 << 20))
        if not block:
            break
        count += block.count(b"\n")
        remaining -= len(block)
    return count


def prepare_run(
    repo: Any,
    record: Any,
    runs_dir: Path,
    store_path: Path,
    grace_seconds: float,
    base_env: dict[str, str],
    secret_patterns: tuple[str, ...] = (),
) -> tuple[Any, dict[str, str]]:
    """Make the run folder of a STARTING job and write its spec and launch files (secrets redacted).

    Returns the updated JobRecord (with `run_dir`) and the full environment to start the supervisor with.
    """
    from msquant_desktop.domain.runs import build_launch
    from msquant_desktop.domain.secrets import redact_env

    spec = record.spec
    run_dir = create_run_folder(runs_dir, spec.kind.value)
    launch, env = build_launch(
        spec.argv,
        spec.cwd,
        spec.env,
        record.id,
        str(run_dir),
        str(store_path),
        record.gpu_indices,
        base_env,
        grace_seconds,
        secret_patterns,
    )
    spec_record = {"job_id": record.id, **spec.to_dict()}
    spec_record["env"] = [list(kv) for kv in redact_env(dict(spec.env), secret_patterns).items()]
    write_launch_files(run_dir, spec_record, launch)
    return repo.update(record.id, run_dir=str(run_dir)), env


def log_end_offset(run_dir: Path) -> int:
    """Where the log's last complete line ends (a tail continues from here)."""
    try:
        with (run_dir / LOG_FILE).open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - 65536)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return 0
    return start + data.rfind(b"\n") + 1


def full_disk_words(run_dir: Path) -> str:
    """ "; the disk holding its run folder is full (12 KiB free)" when it is, else "": said in the
    reason of a job whose end went unrecorded, the likely cause (the supervisor waits for space
    before it gives up; one stopped meanwhile leaves only this)."""
    free = free_bytes(run_dir)
    if free is None or free >= LOW_SPACE_BYTES:
        return ""
    return f"; the disk holding its run folder is full ({free // 1024} KiB free)"
