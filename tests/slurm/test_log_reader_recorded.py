"""Job output tails recorded on real clusters (fixtures/steplog, sources in fixtures/SOURCES.md): the
log reader recognises every message generation and weighs the whole tail, not the last match."""

from __future__ import annotations

import pytest

from msquant_desktop.domain import slurm_log
from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import final_from_log
from tests.slurm.recorded import FIXTURES, recorded

STEPLOG = FIXTURES / "steplog"


# -- the log reader, one recorded sample per message generation ----------------------------------------

LOGS = [
    ("timelimit_legacy_on_host.log", JobState.TIMEOUT, slurm_log.TIME_LIMIT),
    ("timelimit_job_and_step.log", JobState.TIMEOUT, slurm_log.TIME_LIMIT),
    ("timelimit_srun_label.log", JobState.TIMEOUT, slurm_log.TIME_LIMIT),
    ("timelimit_step_tasks_terminated.log", JobState.TIMEOUT, slurm_log.TIME_LIMIT),
    ("oom_cgroup_step_then_step_cancelled.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_cgroup_batch_legacy.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_cgroup_stepid_batch.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_kill_events_stepid.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_kill_event_stepid.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_jobacct_job_then_job_cancelled.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_jobacct_host_prefix.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_jobacct_step_srun.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("oom_srun_task_with_warning.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
    ("task_failure_timestamped.log", JobState.FAILED, slurm_log.TASK_FAILURE),
    ("task_failure_bus_error.log", JobState.FAILED, slurm_log.TASK_FAILURE),
    ("preemption.log", JobState.CANCELLED, slurm_log.PREEMPTION),
    ("cancel_step_and_job.log", JobState.CANCELLED, slurm_log.CANCEL),
    ("cancel_legacy_on_host.log", JobState.CANCELLED, slurm_log.CANCEL),
    ("cancel_host_prefix.log", JobState.CANCELLED, slurm_log.CANCEL),
    ("cancel_then_task_killed.log", JobState.CANCELLED, slurm_log.CANCEL),
    ("testbed_timelimit.log", JobState.TIMEOUT, slurm_log.TIME_LIMIT),
    ("testbed_task_failure_srun.log", JobState.FAILED, slurm_log.TASK_FAILURE),
    ("testbed_oom_jobacct.log", JobState.OUT_OF_MEMORY, slurm_log.OOM),
]


@pytest.mark.parametrize(("name", "state", "cause"), LOGS, ids=[n for n, _, _ in LOGS])
def test_recorded_log_tail_gives_the_real_cause(name: str, state: JobState, cause: str) -> None:
    final = final_from_log(recorded(f"steplog/{name}"))
    assert final is not None
    assert (final.state, final.decided_by, final.source) == (state, f"log: {cause}", "log")
    assert final.evidence and final.evidence[0].startswith("log: ")


def test_a_memory_warning_alone_is_no_evidence() -> None:
    """Slurm says itself "this may or may not result in some failure": the job completed."""
    assert final_from_log(recorded("steplog/memory_warning_only.log")) is None


def test_every_slurm_message_format_is_read_as_its_cause() -> None:
    expected: str | None = None
    checked = 0
    for line in (STEPLOG / "slurm_source_messages.log").read_text(encoding="utf-8").splitlines():
        if line.startswith("## expect:"):
            expected = line.split(":", 1)[1].strip()
            continue
        if line.startswith("##") or expected is None:
            continue
        evidence = slurm_log.evidence_in_line(line)
        assert (evidence.cause if evidence else "none") == expected, line
        expected = None
        checked += 1
    assert checked == 23


def test_precedence_weighs_the_whole_tail_not_the_last_line() -> None:
    """OOM > time limit > preemption > node failure > task failure > cancel, whatever the order."""
    oom = recorded("steplog/oom_cgroup_step_then_step_cancelled.log")
    timeout = recorded("steplog/timelimit_job_and_step.log")
    preempted = recorded("steplog/preemption.log")
    task = recorded("steplog/task_failure_bus_error.log")
    cancel = recorded("steplog/cancel_step_and_job.log")
    node = "srun: error: Node failure on node2\n"
    assert final_from_log(timeout + oom).state is JobState.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert final_from_log(oom + timeout).state is JobState.OUT_OF_MEMORY  # type: ignore[union-attr]
    assert final_from_log(cancel + timeout).state is JobState.TIMEOUT  # type: ignore[union-attr]
    assert final_from_log(preempted + node).decided_by == "log: preemption"  # type: ignore[union-attr]
    assert final_from_log(task + node).state is JobState.NODE_FAIL  # type: ignore[union-attr]
    assert final_from_log(cancel + task).state is JobState.FAILED  # type: ignore[union-attr]
    # the deciding line is the job-wide one among equals
    best = slurm_log.strongest(slurm_log.read_evidence(timeout))
    assert best is not None and best.scope == "job" and "*** JOB 1809655" in best.line


def test_application_text_is_not_mistaken_for_slurm() -> None:
    text = (
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "print('*** JOB done ***')\nslurmstepd: error: Unable to create TMPDIR\n"
    )
    assert final_from_log(text) is None
