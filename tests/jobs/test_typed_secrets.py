"""A secret typed for a job reaches the job and never a file: not the store, not the run folder."""

from __future__ import annotations

import hashlib
import sys

import pytest

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.secrets import HELD
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
        JobSpec(
            name="with token", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET), ("LR", "0.1"))
        )
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


def test_rerun_in_the_same_session_carries_the_typed_secret(make_engine, qtbot, app_paths) -> None:  # type: ignore[no-untyped-def]
    """Before: the stored spec holds only the reference, so the re-run ended FAILED_TO_START with
    "the app that queued it, which has closed since" while that app was still open."""
    service = make_engine()
    first = service.submit(
        JobSpec(
            name="with token", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET), ("LR", "0.1"))
        )
    )
    assert wait_final(qtbot, service, first.id).state is JobState.COMPLETED
    again = service.rerun(first.id)
    done = wait_final(qtbot, service, again.id)
    assert done.state is JobState.COMPLETED, done.reason  # the child checked the real value's digest
    assert again.id != first.id and dict(done.spec.env) == {"HF_TOKEN": HELD, "LR": "0.1"}
    service._repo.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for root in (app_paths.data_dir, app_paths.config_dir):
        assert _files_holding(root, SECRET.encode()) == []


def test_rerun_without_the_typed_value_is_refused_and_queues_nothing(make_engine, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A job queued by an earlier app session (or the CLI): its value is not known here."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    earlier = make_engine()
    first = earlier.submit(
        JobSpec(name="with token", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET),))
    )
    assert wait_final(qtbot, earlier, first.id).state is JobState.COMPLETED
    later = make_engine()  # a new app session over the same store: nothing typed in it
    before = len(later._repo.list_jobs(limit=100))
    with pytest.raises(ValueError, match="HF_TOKEN") as refused:
        later.rerun(first.id)
    assert "\n" not in str(refused.value) and "type it again" in str(refused.value)
    assert len(later._repo.list_jobs(limit=100)) == before


def test_a_job_claimed_the_moment_it_is_stored_still_gets_its_typed_secret(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The launcher thread may claim a job between its insert and the GUI thread's next line (seen
    once in a clean-clone run: FAILED_TO_START "...set it in the environment the app starts in").
    Here the GUI thread is held right after the insert until the launcher has claimed the job."""
    import time

    service = make_engine()
    real_create = service._repo.create

    def create_then_pause(*args, **kwargs):  # type: ignore[no-untyped-def]
        record = real_create(*args, **kwargs)
        service._launcher.request()
        deadline = time.monotonic() + 10
        while service._repo.get(record.id).state is JobState.QUEUED and time.monotonic() < deadline:
            time.sleep(0.01)
        return record

    service._repo.create = create_then_pause
    job = service.submit(
        JobSpec(name="claimed at once", argv=(sys.executable, "-c", CHECK), env=(("HF_TOKEN", SECRET),))
    )
    done = wait_final(qtbot, service, job.id)
    assert done.state is JobState.COMPLETED, done.reason
