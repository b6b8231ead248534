"""Numbers and files without a bound: each is refused in one line by the real command, in its own
process, and quickly (a NaN grace period, 10**20 GPUs, /dev/zero as a clusters file)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.test_bad_input_sweep import Case, _write, run_case

REPO_ROOT = Path(__file__).resolve().parents[2]
HUGE = str(10**20)


def _fifo(root: Path) -> None:
    os.mkfifo(root / "fifo.yaml")


def _sparse_600_mb(root: Path) -> None:
    # Sparse: 600 MB by its size, no disk used; reading it whole would still cost 600 MB of memory.
    with open(root / "big.yaml", "wb") as f:
        f.truncate(600 * 1024 * 1024)


CASES = [
    Case(
        "jobs run --gpus 10**20",
        ("jobs", "run", "--gpus", HUGE, "--", "true"),
        words="GPU count from 0 to 64",
    ),
    Case("jobs add --gpus 65", ("jobs", "add", "--gpus", "65", "--", "true"), words="GPU count from 0 to 64"),
    Case(
        "jobs run --gpus 5000 digits", ("jobs", "run", "--gpus", "9" * 5000, "--", "true"), words="GPU count"
    ),
    Case(
        "slurm submit --gpus 10**20",
        ("slurm", "submit", "c", "--name", "x", "--gpus", HUGE, "--", "true"),
        words="GPU count",
    ),
    Case(
        "slurm quantize --cpus 0",
        ("slurm", "quantize", "--model", "m", "--scheme", "W4A16", "--out", "o", "c", "--cpus", "0"),
        words="must be from 1",
    ),
    Case(
        "slurm download --retries -1",
        ("slurm", "download", "1", "--to", "x", "--retries", "-1"),
        words="from 0",
    ),
    Case("gpu --watch nan", ("gpu", "--watch", "nan"), words="0 or more"),
    Case("gpu --count 0", ("gpu", "--watch", "1", "--count", "0"), words="must be from 1"),
    Case(
        "plan queue --replicas 10**20",
        ("plan", "queue", "--arrival-rate", "1", "--service-rate", "2", "--replicas", HUGE),
        words="must be from 1",
    ),
    Case(
        "plan memory --context 10**20",
        ("plan", "memory", "--model", "m", "--context", HUGE),
        words="token count",
    ),
    Case(
        "plan place --port 70000",
        ("plan", "place", "c", "--model", "m", "--replicas", "1", "--port", "70000"),
        words="port",
    ),
    Case(
        "plan size rate 1e300",
        ("plan", "size", "--arrival-rate", "1e300", "--service-rate", "1", "--max-mean-wait", "1"),
        words="servers would be needed",
    ),
    Case(
        "settings grace NaN",
        ("jobs", "run", "--", "true"),
        _write("d/config/settings.json", '{"cancel_grace_seconds": NaN}'),
        "cancel_grace_seconds must be a finite number",
    ),
    Case(
        "settings sample interval Infinity",
        ("jobs", "add", "--", "true"),
        _write("d/config/settings.json", '{"gpu_sample_interval_seconds": Infinity}'),
        "gpu_sample_interval_seconds must be a finite number",
    ),
    Case(
        "settings max jobs 10**20",
        ("jobs", "run", "--", "true"),
        _write("d/config/settings.json", f'{{"max_concurrent_jobs": {HUGE}}}'),
        "max_concurrent_jobs must be at least 1 and at most 64",
    ),
    Case(
        "--clusters /dev/zero", ("slurm", "clusters", "--clusters", "/dev/zero"), words="not a regular file"
    ),
    Case(
        "--clusters a FIFO",
        ("slurm", "clusters", "--clusters", "{root}/fifo.yaml"),
        _fifo,
        "not a regular file",
    ),
    Case(
        "--clusters 600 MB",
        ("slurm", "clusters", "--clusters", "{root}/big.yaml"),
        _sparse_600_mb,
        "too large",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_unbounded_input_is_refused_in_one_line(case: Case, tmp_path: Path) -> None:
    done = run_case(case, tmp_path / "case", timeout=30)
    said = done.stderr.strip() or done.stdout.strip()  # `plan size` answers "no number…" on stdout, exit 3
    last = said.splitlines()[-1] if said else ""
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-1500:]
    assert done.returncode != 0, done.stdout[-300:]
    assert case.words in last, last
    assert "queued" not in done.stdout  # nothing reached the store


def test_a_huge_clusters_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Before: 600 MB were read (1.9 GB resident) before the size was checked."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = run_case(CASES[-1], tmp_path / "big", timeout=30)
    assert done.returncode == 1 and "too large" in done.stderr
    assert time.monotonic() - started < 20
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib == before or peak_kib < 300 * 1024, f"the child grew to {peak_kib // 1024} MiB"


def test_cancel_is_refused_while_the_grace_period_is_nan(tmp_path: Path) -> None:
    """Before: `jobs cancel` said "TERM, then KILL after nan s" and a job ignoring TERM was never
    killed.  Now the settings file is refused, naming it and the field, and nothing is cancelled."""
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.domain.jobs import JobSpec, JobState
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    paths = resolve_paths(tmp_path / "d").ensure()
    conn = connect(paths.database)
    try:
        repo = JobRepository(conn)
        record = repo.create(JobSpec(name="sleeper", argv=("sleep", "60")), JobState.QUEUED, "test")
        paths.settings_file.write_text('{"cancel_grace_seconds": NaN}')
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "msquant_desktop",
                "--data-dir",
                str(tmp_path / "d"),
                "jobs",
                "cancel",
                str(record.id),
            ],
            env={
                k: v
                for k, v in dict(os.environ, PYTHONPATH=str(REPO_ROOT)).items()
                if k != "MSQUANT_DATA_DIR"
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        assert done.returncode != 0 and "nan s" not in done.stdout, done.stdout
        assert "settings.json" in last and "cancel_grace_seconds" in last, last
        assert repo.get(record.id).state is JobState.QUEUED
    finally:
        conn.close()
