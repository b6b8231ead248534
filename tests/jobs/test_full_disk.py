"""A full disk never kills a job: the supervisor counts what it could not write, writes again when
space comes back, and still records how the job ended (its exit record's blocks are reserved at
start).  A real 4 MiB tmpfs; needs root to mount it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.runs import ExitRecord, outcome_from_exit
from msquant_desktop.services.job_lifecycle import storage_words
from tests.conftest import fill_disk
from tests.jobs.helpers import child_env, start_supervisor, write_launch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

LINES = 400_000
# Prints 400,000 lines (~24 MB into a 4 MiB disk), waits for the test to free space, prints more.
JOB = f"""
import os, sys, time
for i in range({LINES}):
    sys.stdout.write(f"line {{i:07d}} " + "x" * 48 + "\\n")
sys.stdout.flush()
open(sys.argv[1], "w").write("printed all")  # outside the tiny disk: proof the job was not killed
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
print("after space came back", flush=True)
"""


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_the_job_outlives_a_full_disk_and_its_end_is_recorded(tiny_disk: Path, tmp_path: Path) -> None:
    run_dir = tiny_disk / "run"
    printed, resume = tmp_path / "printed", tmp_path / "resume"
    env = write_launch(run_dir, [sys.executable, "-c", JOB, str(printed), str(resume)])
    filler = tiny_disk / "filler"
    with filler.open("wb") as fh:  # 3 of the 4 MiB: the job's output fills the rest
        fh.write(b"\0" * (3 << 20))
    supervisor = start_supervisor(run_dir, env, stdout=subprocess.DEVNULL)
    try:
        deadline = 60.0
        import time

        start = time.monotonic()
        while not printed.exists() and time.monotonic() - start < deadline:
            time.sleep(0.05)
        assert printed.exists(), "the job died when the disk filled up"
        assert supervisor.poll() is None
        filler.unlink()  # the user frees space: the job's last line must land in output.log
        resume.write_text("go")
        assert supervisor.wait(timeout=60) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    record = ExitRecord.from_dict(json.loads((run_dir / "exit.json").read_text()))
    assert record.returncode == 0
    lost = record.extra["log_lines_lost"]
    assert 0 < lost < LINES and record.extra["log_error"] == "No space left on device"
    assert outcome_from_exit(record).state is JobState.COMPLETED
    assert f"{lost:,} output line(s) could not be written to the run folder" in storage_words(record)
    # Writing resumed: the line printed after space came back is there, after a note of the gap.
    log = (run_dir / "output.log").read_text()
    assert "O after space came back" in log
    gaps = [line for line in log.split("\n") if '"log_gap"' in line]
    # Each note on a line of its own, even after a write the full disk tore mid-line.
    assert gaps and all(line.startswith("M {") for line in gaps), gaps[:3]


WAIT_THEN_EXIT_3 = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.exit(3)
"""


def test_an_end_the_full_disk_refused_is_recorded_once_space_returns(tiny_disk: Path, tmp_path: Path) -> None:
    """No reserve (it found no room at start) and no room at the end: the supervisor keeps the
    record, waits for space and then writes the job's true end, instead of leaving a LOST job."""
    run_dir = tiny_disk / "run"
    go = tmp_path / "go"
    env = write_launch(run_dir, [sys.executable, "-c", WAIT_THEN_EXIT_3, str(go)])
    supervisor = start_supervisor(run_dir, env, stdout=subprocess.DEVNULL)
    try:
        import time

        reserve = run_dir / "exit.json.partial"  # made right after supervisor.json
        deadline = time.monotonic() + 30
        while not reserve.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)  # its fallocate done
        reserve.unlink()  # as when the reserve found the disk full
        filler = fill_disk(tiny_disk)
        go.write_text("end now")
        time.sleep(3)
        assert supervisor.poll() is None, "the supervisor gave up on the job's end"
        assert not (run_dir / "exit.json").exists()
        filler.unlink()
        assert supervisor.wait(timeout=60) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    record = ExitRecord.from_dict(json.loads((run_dir / "exit.json").read_text()))
    assert record.returncode == 3 and "exit_record_error" not in record.extra
    assert outcome_from_exit(record).state is JobState.FAILED


def test_jobs_run_on_a_full_data_dir_keeps_the_job_and_its_end(tiny_disk: Path, tmp_path: Path) -> None:
    """The whole data dir on the tiny disk (store included), through `jobs run` and `jobs show`."""
    data = tiny_disk / "msquant"
    printed, resume = tmp_path / "printed", tmp_path / "resume"
    resume.write_text("go")  # no pause: the job ends while the disk is still full
    cli = [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data), "jobs"]
    done = subprocess.run(
        [*cli, "run", "--", sys.executable, "-c", JOB, str(printed), str(resume)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[1]
    import time

    start = time.monotonic()
    while time.monotonic() - start < 90:
        shown = subprocess.run(
            [*cli, "show", job_id, "--json"], env=child_env(), capture_output=True, text=True
        )
        if shown.returncode == 0 and json.loads(shown.stdout)["job"]["state"] not in ("STARTING", "RUNNING"):
            break
        time.sleep(0.5)
    assert printed.exists(), "the job died when the disk filled up"
    assert "Traceback" not in shown.stderr
    info = json.loads(shown.stdout)["job"]
    assert info["state"] == "COMPLETED", info
    assert "could not be written to the run folder" in info["reason"]
