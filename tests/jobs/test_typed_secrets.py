"""A secret typed for a job reaches the job and never a file: not the store, not the run folder."""

from __future__ import annotations

import hashlib
import sys

from msquant_desktop.domain.jobs import JobSpec, JobState
from tests.jobs.conftest import wait_final

SECRET = "hf_typed_Zq81x"
# The job checks its value by digest, so the secret itself is not in the command (which is stored).
CHECK = (
    "import hashlib, os, sys; v = os.environ.get('HF_TOKEN', '').encode();"
    f" sys.exit(0 if hashlib.sha256(v).hexdigest() == {hashlib.sha256(SECRET.encode()).hexdigest()!r} else 5)"
)


def _files_holding(root, needle: bytes) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_typed_secret_reaches_the_job_and_no_file(make_engine, qtbot, app_paths) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    record = service.submit(
        JobSpec(name="with token", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET), ("LR", "0.1")))
    )
    done = wait_final(qtbot, service, record.id)
    assert done.state is JobState.COMPLETED, done.reason
    service._repo.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for root in (app_paths.data_dir, app_paths.config_dir):
        assert _files_holding(root, SECRET.encode()) == []
    assert dict(service.get(record.id).spec.env)["LR"] == "0.1"


def test_a_queued_job_whose_secret_is_not_held_does_not_start_with_a_placeholder(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = make_engine()
    record = first.submit(JobSpec(name="blocker", argv=(sys.executable, "-c", "import time; time.sleep(30)")))
    queued = first.submit(
        JobSpec(name="with token", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET),))
    )
    assert first.get(queued.id).state is JobState.QUEUED
    first._held_secrets.clear()  # what a restart of the app that queued it leaves: nothing held
    first.cancel(record.id)
    done = wait_final(qtbot, first, queued.id)
    assert done.state is JobState.FAILED_TO_START
    assert "HF_TOKEN" in done.reason and "never stored" in done.reason
