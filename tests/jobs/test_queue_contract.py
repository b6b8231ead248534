"""Pure parts of the scripting contract: `--after` dependencies in the queue policy, and the exit
status a waiting command gives for each way a job can end (README.md, "Exit statuses")."""

from __future__ import annotations

import pytest

from msquant_desktop.domain.exit_status import exit_status
from msquant_desktop.domain.jobs import FINAL_STATES, JobState
from msquant_desktop.domain.queue import QueuedJob, RejectJob, StartJob, after_ids, next_runnable

DONE, FAILED, RUNNING = JobState.COMPLETED, JobState.FAILED, JobState.RUNNING


def test_a_job_waits_for_its_dependency_without_holding_up_the_queue() -> None:
    waiting, free = QueuedJob(5, 0, after=(2,)), QueuedJob(6, 0)
    assert next_runnable([waiting, free], 1, 2, 0, [], {2: RUNNING}) == StartJob(6, ())
    assert next_runnable([waiting], 1, 2, 0, [], {2: RUNNING}) is None
    assert next_runnable([waiting, free], 0, 1, 0, [], {2: DONE}) == StartJob(5, ())  # its turn again
    assert next_runnable([QueuedJob(7, 0, after=(2, 3))], 0, 1, 0, [], {2: DONE, 3: RUNNING}) is None


def test_a_dependency_that_did_not_complete_fails_the_job_with_the_reason() -> None:
    decision = next_runnable([QueuedJob(6, 0), QueuedJob(5, 0, after=(2,))], 1, 1, 0, [], {2: FAILED})
    assert decision == RejectJob(
        5, "job 2, which it waits for, ended FAILED (it runs only after a COMPLETED job)"
    )
    missing = next_runnable([QueuedJob(5, 0, after=(9,))], 0, 1, 0, [], {})
    assert isinstance(missing, RejectJob) and "job 9, which does not exist" in missing.reason


def test_after_ids_ignore_what_is_not_a_job_id() -> None:
    assert after_ids({"after": [3, 4]}) == (3, 4)
    assert (
        after_ids({"after": "3"}) == ()
        and after_ids({"after": [True, "x", 2]}) == (2,)
        and after_ids({}) == ()
    )


@pytest.mark.parametrize(
    ("state", "code", "sig", "status"),
    [
        (JobState.COMPLETED, 0, None, 0),
        (JobState.FAILED, 7, None, 7),
        (JobState.FAILED, 256 + 3, None, 3),
        (JobState.FAILED, None, None, 1),
        (JobState.KILLED, None, 9, 137),
        (JobState.KILLED, None, 15, 143),
        (JobState.KILLED, None, None, 137),
        (JobState.CANCELLED, None, 15, 125),
        (JobState.TIMEOUT, None, None, 124),
        (JobState.LOST, None, None, 126),
        (JobState.NODE_FAIL, None, None, 126),
        (JobState.FAILED_TO_START, None, None, 127),
        (JobState.OUT_OF_MEMORY, None, None, 137),
        (JobState.RUNNING, None, None, None),
        (JobState.QUEUED, None, None, None),
    ],
)
def test_exit_status_of_every_ending(
    state: JobState, code: int | None, sig: int | None, status: int | None
) -> None:
    assert exit_status(state, code, sig) == status


def test_every_final_state_has_a_status_a_process_can_return() -> None:
    for state in FINAL_STATES:
        status = exit_status(state, 300, 40)
        assert status is not None and 0 <= status <= 255
        assert (status == 0) == (state is JobState.COMPLETED)
