"""The final-state chain (squeue -> sacct -> scontrol -> exit marker -> log) decides with every source,
in the documented precedence of `decide_final`, on recorded real outputs; the store keeps what
decided it."""

from __future__ import annotations

from pathlib import Path

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import (
    FinalState,
    decide_final,
    final_from_marker,
    final_from_slurm,
)
from tests.slurm.recorded import recorded


def sacct(state: str, exit_code: str) -> FinalState:
    final = final_from_slurm(state, exit_code, "sacct")
    assert final is not None
    return final


def marker(text: str) -> FinalState:
    final = final_from_marker(text)
    assert final is not None
    return final


def test_sacct_completed_is_corrected_by_the_script_exit_status() -> None:
    """desispec#2744: sacct said COMPLETED 0:0 for a script that ran `exit 1` after a step failed."""
    top = recorded("sacct_completed_but_exit1.txt").splitlines()[2].split()
    assert (top[0], top[5], top[6]) == ("52222788", "COMPLETED", "0:0")
    final = decide_final(
        sacct(top[5], top[6]),
        marker("exit=1 signal= stage=command at=2026-04-29T23:36:42Z"),
        recorded("steplog/task_failure_timestamped.log"),
    )
    assert final is not None
    assert (final.state, final.exit_code, final.decided_by) == (JobState.FAILED, 1, "exit marker")
    assert final.evidence[0] == "sacct: COMPLETED 0:0"
    assert final.evidence[1].startswith("exit marker: exit=1")
    assert "DUE TO TASK FAILURE" in final.evidence[2]


def test_a_clone_failure_is_exit_128_not_exit_0() -> None:
    for controller in (sacct("FAILED", "0:0"), sacct("COMPLETED", "0:0"), None):
        final = decide_final(
            controller, marker("exit=128 signal= stage=clone at=x"), "fatal: repository not found\n"
        )
        assert final is not None
        assert (final.state, final.exit_code) == (JobState.FAILED, 128), controller
        assert final.reason == "cloning the repository failed" and final.decided_by == "exit marker"


def test_an_oom_kill_stays_out_of_memory_whatever_the_controller_said() -> None:
    log = recorded("steplog/oom_cgroup_step_then_step_cancelled.log")
    for controller in (sacct("CANCELLED by 1001", "0:9"), sacct("FAILED", "137:0"), None):
        final = decide_final(controller, marker("exit=137 signal= stage=command at=x"), log)
        assert final is not None and final.state is JobState.OUT_OF_MEMORY, controller
        assert final.decided_by == "log: oom_kill"
    # jobacct_gather's kill, then a plain JOB ... CANCELLED: sacct CANCELLED, log knows better
    log = recorded("steplog/oom_jobacct_job_then_job_cancelled.log")
    final = decide_final(sacct("CANCELLED", "0:9"), None, log)
    assert final is not None and final.state is JobState.OUT_OF_MEMORY


def test_the_testbeds_own_endings() -> None:
    """What sacct said on the testbed (Slurm 22.05.8) next to each recorded log tail."""
    oom = decide_final(sacct("FAILED", "0:9"), None, recorded("steplog/testbed_oom_jobacct.log"))
    assert oom is not None and (oom.state, oom.decided_by) == (JobState.OUT_OF_MEMORY, "log: oom_kill")
    task = decide_final(
        sacct("FAILED", "15:0"),
        marker("exit=15 signal= stage=command at=x"),
        recorded("steplog/testbed_task_failure_srun.log"),
    )
    assert task is not None and (task.state, task.exit_code, task.decided_by) == (
        JobState.FAILED,
        15,
        "sacct",
    )
    timeout = decide_final(
        sacct("TIMEOUT", "0:0"),
        marker("exit=143 signal=TERM stage=command at=x"),
        recorded("steplog/testbed_timelimit.log"),
    )
    assert timeout is not None and (timeout.state, timeout.decided_by) == (JobState.TIMEOUT, "sacct")


def test_the_controllers_own_causes_stand() -> None:
    timeout = decide_final(
        sacct("TIMEOUT", "0:0"),
        marker("exit=143 signal=TERM stage=command at=x"),
        recorded("steplog/cancel_step_and_job.log"),
    )
    assert timeout is not None and (timeout.state, timeout.decided_by) == (JobState.TIMEOUT, "sacct")
    assert timeout.exit_code == 143  # the script's own status, since sacct said 0
    oom = decide_final(sacct("OUT_OF_MEMORY", "0:125"), None, "")
    assert oom is not None and oom.state is JobState.OUT_OF_MEMORY


def test_a_plain_cancel_line_never_turns_a_failure_into_a_cancel() -> None:
    """srun prints `*** STEP … CANCELLED AT … ***` after any failed step (HAFS#101, second log)."""
    final = decide_final(
        sacct("FAILED", "1:0"),
        marker("exit=1 signal= stage=command at=x"),
        recorded("steplog/cancel_host_prefix.log"),
    )
    assert final is not None and (final.state, final.exit_code) == (JobState.FAILED, 1)
    # ...and without a controller, a non-zero exit with a cancel line is still a failure
    final = decide_final(
        None, marker("exit=1 signal= stage=command at=x"), recorded("steplog/cancel_host_prefix.log")
    )
    assert final is not None and final.state is JobState.FAILED and final.decided_by == "exit marker"


def test_task_failure_turns_a_cancel_into_a_failure_and_preemption_is_the_reason() -> None:
    final = decide_final(sacct("CANCELLED", "0:15"), None, recorded("steplog/task_failure_bus_error.log"))
    assert final is not None and (final.state, final.decided_by) == (JobState.FAILED, "log: task_failure")
    final = decide_final(sacct("CANCELLED", "0:15"), None, recorded("steplog/preemption.log"))
    assert final is not None and (final.state, final.reason) == (JobState.CANCELLED, "preempted")


def test_completed_without_a_marker_yields_only_to_a_job_wide_line() -> None:
    step_oom = recorded("steplog/oom_kill_event_stepid.log")  # StepId=…0: the script may have gone on
    final = decide_final(sacct("COMPLETED", "0:0"), None, step_oom)
    assert final is not None and final.state is JobState.COMPLETED
    batch_oom = recorded("steplog/oom_cgroup_batch_legacy.log")
    final = decide_final(sacct("COMPLETED", "0:0"), None, batch_oom)
    assert final is not None and final.state is JobState.OUT_OF_MEMORY
    # with a clean marker the script itself finished well: COMPLETED stands
    final = decide_final(sacct("COMPLETED", "0:0"), marker("exit=0 signal= stage=command at=x"), batch_oom)
    assert final is not None and final.state is JobState.COMPLETED


def test_without_accounting_the_marker_and_the_log_decide() -> None:
    signal_only = marker("exit=143 signal=TERM stage=command at=x")
    final = decide_final(None, signal_only, recorded("steplog/timelimit_job_and_step.log"))
    assert final is not None and (final.state, final.decided_by, final.exit_code) == (
        JobState.TIMEOUT,
        "log: time_limit",
        143,
    )
    final = decide_final(None, signal_only, "")
    assert final is not None and (final.state, final.reason) == (JobState.CANCELLED, "terminated by SIGTERM")
    killed = marker("exit=137 signal= stage=command at=x")
    final = decide_final(None, killed, recorded("steplog/oom_kill_events_stepid.log"))
    assert final is not None and final.state is JobState.OUT_OF_MEMORY
    final = decide_final(None, None, recorded("steplog/oom_jobacct_host_prefix.log"))
    assert final is not None and final.state is JobState.OUT_OF_MEMORY and final.source == "log"
    assert decide_final(None, None, recorded("steplog/memory_warning_only.log")) is None
    assert decide_final(None, None, "") is None  # unknown stays unknown, never "completed"
    clean = decide_final(
        None, marker("exit=0 signal= stage=command at=x"), recorded("steplog/memory_warning_only.log")
    )
    assert clean is not None and clean.state is JobState.COMPLETED


def test_squeue_final_state_is_the_last_controller_word() -> None:
    final = decide_final(
        final_from_slurm("COMPLETED", "", "squeue"), marker("exit=2 signal= stage=command at=x")
    )
    assert final is not None and (final.state, final.exit_code, final.decided_by) == (
        JobState.FAILED,
        2,
        "exit marker",
    )


def test_the_store_keeps_what_decided_the_final_state(tmp_path: Path) -> None:
    from msquant_desktop.domain.slurm import SlurmSubmission
    from msquant_desktop.services.cluster_jobs import apply_final, create_job, record_submitted
    from msquant_desktop.slurm.script import remote_paths
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    repo = JobRepository(connect(tmp_path / "jobs.db"))
    job = create_job(
        repo,
        tmp_path / "runs",
        SlurmSubmission(cluster="c", job_name="j", repo_url="/r.git", commit="a" * 40, command=("true",)),
    )
    job = record_submitted(repo, job.id, "52222788", "#!/bin/bash\n", remote_paths("/w", "run"))
    final = decide_final(
        sacct("COMPLETED", "0:0"),
        marker("exit=1 signal= stage=command at=x"),
        recorded("steplog/task_failure_timestamped.log"),
    )
    assert final is not None
    stored = apply_final(repo, job, final)
    assert (stored.state, stored.exit_code) == (JobState.FAILED, 1)
    assert stored.result["decided_by"] == "exit marker"
    assert stored.result["final_evidence"][0] == "sacct: COMPLETED 0:0"
    assert stored.reason == "decided by exit marker"
    assert stored.outcome is not None and stored.outcome.describe() == "exit 1: decided by exit marker"
    notes = [t.note for t in repo.transitions(job.id)]
    assert any(n.startswith("FAILED (decided by exit marker): sacct: COMPLETED 0:0") for n in notes)
