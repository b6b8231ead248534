"""JobService with real supervisors and processes: run, stream, events, cancel, queue, GPUs, SLURM rows."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobSpec, JobState, JobTarget
from msquant_desktop.store import JobRepository, StoreError, connect
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import marked, wait_for

PRINTER = (
    "import json, sys\n"
    "print('hello', flush=True)\n"
    "print('bad thing', file=sys.stderr, flush=True)\n"
    "ev = {'type': 'progress', 'stage': 'Calibrating', 'fraction': 0.5, 'eta_s': 3}\n"
    "print('@@MSQUANT-EVENT@@ ' + json.dumps(ev), flush=True)\n"
    "print('@@MSQUANT-EVENT@@ ' + json.dumps({'type': 'result', 'output': sys.argv[1]}), flush=True)\n"
)


def test_a_job_runs_streams_reports_events_and_completes(make_engine, qtbot, app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    texts: list[tuple[int, str, bool]] = []
    events: list[dict] = []  # type: ignore[type-arg]
    service.sig_log_text.connect(lambda j, t, e: texts.append((j, t, e)))
    service.sig_job_event.connect(lambda j, ev: events.append(ev))
    record = service.submit(JobSpec(name="printer", argv=(sys.executable, "-c", PRINTER, "{run_dir}/out")))
    assert record.state is JobState.QUEUED  # the launcher thread claims it: submit never waits
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.COMPLETED and final.exit_code == 0
    run_dir = service.run_dir(record.id)
    # The run folder is in this test's data dir (never the user's), next to the store that has the job.
    assert run_dir is not None and run_dir.parent == app_paths.runs_dir and run_dir.is_relative_to(data_dir)
    assert (run_dir / "output.log").is_file() and (run_dir / "exit.json").is_file()
    with closing(connect(app_paths.database)) as conn:
        assert JobRepository(conn).get(record.id).run_dir == str(run_dir)
    qtbot.waitUntil(lambda: any("bad thing" in t and err for _, t, err in texts))
    assert any("hello" in t and not err for _, t, err in texts)
    assert [e["type"] for e in events] == ["progress", "result"]
    assert final.result["output"] == f"{run_dir}/out"  # {run_dir} was replaced at start
    states = [t.new for t in service.transitions(record.id)]
    assert states == [JobState.QUEUED, JobState.STARTING, JobState.RUNNING, JobState.COMPLETED]
    lines, hidden = service.log_tail(record.id, 100)
    assert ("hello", False) in lines and ("bad thing", True) in lines and hidden == 0


def test_failures_and_failed_to_start_are_told_apart(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=2)
    failing = service.submit(JobSpec(name="fails", argv=("sh", "-c", "exit 3")))
    missing = service.submit(JobSpec(name="missing", argv=("/no/such/program",)))
    assert wait_final(qtbot, service, failing.id).outcome.describe() == "exit 3"  # type: ignore[union-attr]
    lost = wait_final(qtbot, service, missing.id)
    assert lost.state is JobState.FAILED_TO_START and "No such file" in lost.reason


def test_a_supervisor_that_cannot_start_is_failed_to_start_as_in_the_cli(
    make_engine, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """E.g. the app's executable was removed or moved while it ran: it cannot be started."""
    import msquant_desktop.services.job_lifecycle as lifecycle

    monkeypatch.setattr(lifecycle, "self_command", lambda *args: ["/nonexistent/msquant-desktop", *args])
    service = make_engine()
    record = service.submit(JobSpec(name="never runs", argv=("true",)))
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.FAILED_TO_START
    assert "the supervisor could not be started" in final.reason
    monkeypatch.undo()
    after = service.submit(JobSpec(name="next", argv=("true",)))  # the queue moves on
    assert wait_final(qtbot, service, after.id).state is JobState.COMPLETED


def test_an_unexpected_error_while_starting_fails_that_job_and_the_launcher_goes_on(
    make_engine, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A fault nobody foresaw (here: a bug raising RuntimeError in the launch preparation) ends the
    claimed job FAILED_TO_START with the error's words; it never stays STARTING, and the launcher
    thread lives on to start the next job."""
    import msquant_desktop.services.job_lifecycle as lifecycle

    real_prepare = lifecycle.prepare_launch

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in the launch preparation")

    monkeypatch.setattr(lifecycle, "prepare_launch", broken)
    service = make_engine()
    record = service.submit(JobSpec(name="never runs", argv=("true",)))
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.FAILED_TO_START
    assert final.reason.endswith("RuntimeError: a bug in the launch preparation"), final.reason
    monkeypatch.setattr(lifecycle, "prepare_launch", real_prepare)
    after = service.submit(JobSpec(name="next", argv=("true",)))
    assert wait_final(qtbot, service, after.id).state is JobState.COMPLETED


def test_a_supervisor_the_app_cannot_watch_directly_is_adopted(make_engine, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """pidfd_open refused (an old kernel, a sandbox's seccomp filter): the supervisor already runs,
    so the job is followed from its run folder as an adopted job, its log and its end included."""
    import msquant_desktop.services.job_launcher as launcher

    def refused(pid: int) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(launcher.os, "pidfd_open", refused)
    service = make_engine()
    texts: list[str] = []
    service.sig_log_text.connect(lambda j, t, e: texts.append(t))
    script = "import time; print('first', flush=True); time.sleep(1.5); print('second', flush=True)"
    record = service.submit(JobSpec(name="watched from its folder", argv=(sys.executable, "-c", script)))
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.COMPLETED and final.exit_code == 0
    lines, _hidden = service.log_tail(record.id, 10)
    assert [text for text, _err in lines] == ["first", "second"]
    qtbot.waitUntil(lambda: "second" in "".join(texts))  # shown live, from the log file


def test_cancel_stops_the_tree_and_delete_is_refused_while_running(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(grace=0.5)
    script = "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); subprocess.Popen(['setsid', 'sleep', '300']); print('up', flush=True); time.sleep(300)"
    record = service.submit(JobSpec(name="stubborn", argv=(sys.executable, "-c", script)))
    seen: list[str] = []
    service.sig_log_text.connect(lambda j, t, e: seen.append(t))
    qtbot.waitUntil(lambda: any("up" in t for t in seen), timeout=15000)
    with pytest.raises(StoreError):
        service.delete(record.id)
    service.cancel(record.id)
    assert service.get(record.id).state is JobState.CANCELLING
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.CANCELLED
    run_dir = service.run_dir(record.id)
    # The supervisor itself carries the marker too and exits right after recording the end.
    assert run_dir is not None and wait_for(lambda: marked(run_dir) == [], timeout=5)
    service.delete(record.id)  # the folder goes on a thread; the job is gone from the store at once
    assert service._repo.find(record.id) is None
    qtbot.waitUntil(lambda: not run_dir.exists() and service.deletes_pending() == 0, timeout=5000)


def test_queue_holds_the_limit_reorders_and_cancels_queued_jobs_instantly(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=1, grace=0.2)
    first = service.submit(JobSpec(name="first", argv=("sleep", "300")))
    second = service.submit(JobSpec(name="second", argv=("sh", "-c", "exit 0")))
    third = service.submit(JobSpec(name="third", argv=("sh", "-c", "exit 0")))
    fourth = service.submit(JobSpec(name="fourth", argv=("sh", "-c", "exit 0")))
    qtbot.waitUntil(lambda: service.get(first.id).state is JobState.RUNNING, timeout=15000)
    assert service.get(second.id).state is JobState.QUEUED and service.running_count() == 1
    service.move_in_queue(third.id, -1)
    assert [r.id for r in service._repo.queued()] == [third.id, second.id, fourth.id]
    service.cancel(fourth.id)
    assert service.get(fourth.id).state is JobState.CANCELLED  # at once, no process involved
    service.cancel(first.id)
    assert wait_final(qtbot, service, third.id).state is JobState.COMPLETED
    assert wait_final(qtbot, service, second.id).state is JobState.COMPLETED
    started = {r: service.get(r).started_at for r in (third.id, second.id)}
    assert started[third.id] < started[second.id]  # type: ignore[operator]


def test_gpu_slots_are_handed_out_through_cuda_visible_devices(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=4, gpus=2)
    show = (
        sys.executable,
        "-c",
        "import os, time; print('CVD=' + os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(300)",
    )
    a = service.submit(JobSpec(name="a", argv=show, gpus=1))
    b = service.submit(JobSpec(name="b", argv=show, gpus=2))  # must wait: only one GPU is free
    c = service.submit(JobSpec(name="c", argv=show, gpus=0))  # waits behind b (strict order)
    texts: list[str] = []  # connected before c can start: its only line comes early
    service.sig_log_text.connect(lambda j, t, e: texts.append(t) if j == c.id else None)
    too_big = service.submit(JobSpec(name="huge", argv=show, gpus=3))
    qtbot.waitUntil(lambda: service.get(a.id).state is JobState.RUNNING, timeout=15000)
    assert service.get(a.id).gpu_indices == (0,)
    assert service.get(b.id).state is JobState.QUEUED and service.get(c.id).state is JobState.QUEUED
    service.cancel(a.id)
    qtbot.waitUntil(lambda: service.get(b.id).state is JobState.RUNNING, timeout=15000)
    assert service.get(b.id).gpu_indices == (0, 1)
    qtbot.waitUntil(lambda: service.get(too_big.id).state is JobState.FAILED_TO_START, timeout=15000)
    assert "this machine has 2 GPUs" in service.get(too_big.id).reason
    qtbot.waitUntil(lambda: any("CVD=" in t for t in texts), timeout=15000)
    assert "CVD=\n" in "".join(texts)  # asked for no GPU: sees none


def test_slurm_jobs_show_up_but_never_enter_the_local_queue(make_engine, qtbot, app_paths, data_dir) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    added: list[int] = []
    service.sig_job_added.connect(added.append)
    spec = JobSpec(name="remote", argv=("python", "train.py"), target=JobTarget.SLURM, cluster="lab")
    other_area = service._repo  # the Clusters area writes through the same store
    remote = other_area.create(spec, JobState.STARTING)
    other_area.transition(remote.id, JobState.QUEUED)
    qtbot.waitUntil(lambda: remote.id in added, timeout=5000)
    service.schedule()
    assert service.get(remote.id).state is JobState.QUEUED and service.get(remote.id).run_dir is None
    cancelled: list[int] = []
    service.set_remote_canceller(lambda r: cancelled.append(r.id))
    service.cancel(remote.id)
    assert cancelled == [remote.id]
    with pytest.raises(ValueError):
        service.submit(spec)
    # All of it happened in this test's own store, and a SLURM job leaves no local run folder.
    (_, _, store_file), *_ = service._repo.connection.execute("PRAGMA database_list").fetchall()
    assert Path(store_file) == app_paths.database and app_paths.database.is_relative_to(data_dir)
    with closing(connect(app_paths.database)) as conn:
        assert [r.id for r in JobRepository(conn).list_jobs()] == [remote.id]
    assert not app_paths.runs_dir.exists() or list(app_paths.runs_dir.iterdir()) == []


def test_submit_many_queues_all_members_in_one_transaction_or_none(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=1, grace=0.2)
    blocker = service.submit(JobSpec(name="blocker", argv=("sleep", "300")))
    qtbot.waitUntil(lambda: service.get(blocker.id).state is JobState.RUNNING, timeout=15000)
    before = [r.id for r in service.list_jobs()]
    good = JobSpec(name="member", argv=("sh", "-c", "exit 0"))
    unstorable = JobSpec(name="bad", argv=("true",), meta={"not json": object()})
    with pytest.raises(TypeError):
        service.submit_many([good, good, unstorable])  # the third fails after two rows were written
    assert [r.id for r in service.list_jobs()] == before  # rolled back: none of them is stored
    with pytest.raises(ValueError, match="Clusters area"):
        service.submit_many(
            [good, JobSpec(name="remote", argv=("true",), target=JobTarget.SLURM, cluster="c")]
        )
    assert [r.id for r in service.list_jobs()] == before

    records = service.submit_many([good, good, good])
    assert [r.state for r in records] == [JobState.QUEUED] * 3
    assert [r.id for r in service._repo.queued()] == [r.id for r in records]  # back to back, in order
    service.cancel(blocker.id)
    for record in records:
        assert wait_final(qtbot, service, record.id).state is JobState.COMPLETED
