"""Bad input on the command line gets one clear line and a usage exit, never a traceback, and nothing
is queued when the settings are bad."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("MSQUANT_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("jobs", "show", str(2**70)), "is not a job id"),
        (("jobs", "show", "-3"), "is not a job id"),
        (("jobs", "cancel", "1e3"), "is not a job id"),
        (("jobs", "logs", "abc"), "is not a job id"),
        (("jobs", "list", "--limit", "0"), "must be from 1"),
        (("slurm", "logs", "x"), "is not a job id"),
        (("slurm", "status", "--limit", "-1"), "must be from 1"),
        (("doctor", "--grace", "-5"), "must be a number of 0 or more"),
        (("doctor", "--grace", "nan"), "must be a number of 0 or more"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    done = _cli(tmp_path / "d", *args)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr and words in done.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "content",
    ['{"max_concurrent_jobs": "x"}', "{not json", '["a list"]', "[" * 100_000, b"\xff\xfe\x00bad"],
)
def test_a_bad_settings_file_is_refused_before_anything_is_queued(tmp_path: Path, content: str | bytes) -> None:
    data = tmp_path / "d"
    (data / "config").mkdir(parents=True)
    settings = data / "config" / "settings.json"
    settings.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = _cli(data, "jobs", "run", "--", "true")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert str(settings) in done.stderr and len(done.stderr.strip().splitlines()) == 1
    settings.unlink()
    assert "no jobs yet" in _cli(data, "jobs", "list").stdout  # nothing was queued to run later
