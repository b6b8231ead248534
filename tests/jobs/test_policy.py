"""Pure parts of the job engine: queue policy, run-folder names, log format, exit meanings."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.logformat import LineSplitter, decode_tagged, tag_lines
from msquant_desktop.domain.queue import QueuedJob, RejectJob, StartJob, next_runnable
from msquant_desktop.domain.runs import ExitRecord, build_launch, outcome_from_exit, parse_run_folder_name
from msquant_desktop.store.run_folders import create_run_folder


def test_queue_honours_limit_order_and_gpu_slots() -> None:
    q = [QueuedJob(1, 1), QueuedJob(2, 0)]
    assert next_runnable([], 0, 1, 0, []) is None
    assert next_runnable(q, 1, 1, 2, [0]) is None  # limit reached
    assert next_runnable(q, 0, 2, 2, []) == StartJob(1, (0,))
    assert next_runnable(q, 1, 2, 2, [0]) == StartJob(1, (1,))
    # The head waits for its GPU; the job behind it does not jump the queue.
    assert next_runnable(q, 2, 3, 2, [0, 1]) is None
    assert next_runnable([QueuedJob(3, 4)], 0, 1, 2, []) == RejectJob(
        3, "asks for 4 GPU(s) but this machine has 2 GPUs"
    )
    assert isinstance(next_runnable([QueuedJob(3, 1)], 0, 1, 0, []), RejectJob)


def test_two_jobs_in_the_same_microsecond_get_different_folders(tmp_path: Path) -> None:
    now = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
    a = create_run_folder(tmp_path, "command", now)
    b = create_run_folder(tmp_path, "command", now)
    assert a != b and a.is_dir() and b.is_dir()
    when, kind, short = parse_run_folder_name(a.name)  # type: ignore[misc]
    assert when == now and kind == "command" and len(short) == 6
    assert a.name.startswith("2026-11-23_10-00-00-123456_command_")


def test_tagged_lines_round_trip_with_events_and_partial_lines() -> None:
    splitter = LineSplitter()
    out = splitter.feed(b"one\ntw")
    out += splitter.feed(b'o\n@@MSQUANT-EVENT@@ {"type": "progress", "fraction": 0.5}\nthree')
    block = tag_lines(b"O ", out + splitter.flush()) + tag_lines(b"E ", b"oops\n")
    chunk = decode_tagged(block)
    assert chunk.texts == [("one\ntwo\nthree\n", False), ("oops\n", True)]
    assert chunk.events == [{"type": "progress", "fraction": 0.5}]
    assert decode_tagged(tag_lines(b"O ", b"a\nb\n")).texts == [("a\nb\n", False)]  # fast path


@pytest.mark.parametrize(
    ("record", "state", "words"),
    [
        (ExitRecord(0), JobState.COMPLETED, ""),
        (ExitRecord(3), JobState.FAILED, ""),
        (ExitRecord(-signal.SIGKILL), JobState.KILLED, "OOM killer"),
        (ExitRecord(-signal.SIGSEGV), JobState.KILLED, "SIGSEGV"),
        (ExitRecord(-signal.SIGKILL, cancelled=True), JobState.CANCELLED, "SIGKILL"),
        (ExitRecord(None, spawn_error="nope: No such file"), JobState.FAILED_TO_START, "No such file"),
    ],
)
def test_exit_records_explain_themselves(record: ExitRecord, state: JobState, words: str) -> None:
    outcome = outcome_from_exit(record)
    assert outcome.state is state
    assert words in outcome.reason


def test_launch_resolves_run_dir_and_sets_markers() -> None:
    launch, env = build_launch(
        ("prog", "--out", "{run_dir}/model"),
        "{run_dir}",
        (("A", "1"), ("MY_PRIVATE_THING", "p"), ("HF_TOKEN", "hf_typed")),
        7,
        "/r/x",
        "/s.db",
        (1, 3),
        {"PATH": "/bin", "WANDB_API_KEY": "wb_secret", "HOME": "/home/u"},
        2.0,
        ("MY_PRIVATE*",),
    )
    assert launch["argv"] == ["prog", "--out", "/r/x/model"] and launch["cwd"] == "/r/x"
    assert (
        env["MSQUANT_JOB_ID"] == "7" and env["MSQUANT_RUN_DIR"] == "/r/x" and env["MSQUANT_STORE"] == "/s.db"
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "1,3" and env["A"] == "1" and env["PATH"] == "/bin"
    assert env["WANDB_API_KEY"] == "wb_secret" and env["HF_TOKEN"] == "hf_typed"  # the job gets them all
    recorded = launch["env"]  # what launch.json keeps: only what the job adds, secrets redacted
    assert "PATH" not in recorded and "HOME" not in recorded and "WANDB_API_KEY" not in recorded
    assert recorded["A"] == "1" and recorded["MSQUANT_RUN_DIR"] == "/r/x"
    assert recorded["HF_TOKEN"] != "hf_typed" and recorded["MY_PRIVATE_THING"] != "p"
