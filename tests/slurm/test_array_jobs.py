"""Array jobs are followed task by task: each task's state is shown, the job ends when its last task
does, and its final state comes from the tasks (domain.slurm.ARRAY_PRECEDENCE).

The end-to-end tests run real 3-task arrays on the testbed, through the app's ClusterService and
through `msquant-desktop slurm`; the rest checks the script and the precedence without a cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import ClusterProfile, FinalState, SlurmSubmission, decide_array_final
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.parsers import array_task_ids, split_array_id
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.slurm.script import ScriptError, array_spec_of, render_script, sbatch_directives
from msquant_desktop.store import connect
from tests.conftest import run_cli_argv

# Task 1 fails early, task 0 completes, task 2 is still running long after task 1 failed.
TASKS = 'case "$SLURM_ARRAY_TASK_ID" in 1) sleep 1; echo "task one fails"; exit 3;; 2) sleep 14;; *) sleep 2;; esac'


@pytest.mark.slurm
def test_an_array_with_one_failed_task_ends_when_its_last_task_does(
    qtbot, testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService

    save_profiles(tmp_path / "clusters.yaml", [profile])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"), tmp_path / "runs", tmp_path / "clusters.yaml", Path("/nonexistent")
    )
    try:
        qtbot.waitUntil(lambda: service.status("testbed") == "connected", timeout=15_000)
        repo, first, _ = bare_repo
        job = service.submit(
            SlurmSubmission(
                cluster="testbed",
                job_name="array",
                repo_url=repo,
                commit=first,
                command=("sh", "-c", TASKS),
                array="0-2",
            )
        )
        qtbot.waitUntil(lambda: service.repo.get(job.id).slurm_job_id is not None, timeout=15_000)
        sid = service.repo.get(job.id).slurm_job_id

        def tasks() -> dict[str, str]:
            return dict(cluster_jobs.task_states(service.repo.get(job.id)))

        # Task 1 has failed and task 2 still runs: the job runs on (it used to be marked FAILED here).
        qtbot.waitUntil(lambda: tasks().get(f"{sid}_1") == "FAILED", timeout=40_000)
        seen = tasks()
        assert set(seen) == {f"{sid}_0", f"{sid}_1", f"{sid}_2"}
        assert seen[f"{sid}_2"] == "RUNNING", seen
        assert service.repo.get(job.id).state is JobState.RUNNING
        qtbot.waitUntil(lambda: service.repo.get(job.id).state.is_final, timeout=40_000)
        record = service.repo.get(job.id)
        assert tasks() == {f"{sid}_0": "COMPLETED", f"{sid}_1": "FAILED", f"{sid}_2": "COMPLETED"}
        assert (record.state, record.exit_code) == (JobState.FAILED, 3), record
        assert record.reason.startswith(f"task {sid}_1 FAILED (exit 3)"), record.reason
        assert "; 2 of 3 tasks completed" in record.reason
        assert record.result["decided_by"].startswith(f"tasks: {sid}_1")
        # The job's state never went final before its last task ended.
        steps = [t.new for t in service.repo.transitions(job.id)]
        assert steps == [JobState.STARTING, JobState.QUEUED, JobState.RUNNING, JobState.FAILED]
        log_text = Path(record.run_dir or "").joinpath("slurm.log").read_text()
        assert f"[{sid}_1] task one fails" in log_text and f"[{sid}_0] msquant: at commit {first}" in log_text
        run = Path(testbed.workspace) / record.spec.meta["run_id"]
        assert sorted(p.name for p in run.glob("msquant-exit.*")) == [
            "msquant-exit.0",
            "msquant-exit.1",
            "msquant-exit.2",
        ]
    finally:
        service.shutdown()


@pytest.mark.slurm
def test_a_cancelled_array_ends_cancelled_with_every_task(
    qtbot, testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService

    save_profiles(tmp_path / "clusters.yaml", [profile])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"), tmp_path / "runs", tmp_path / "clusters.yaml", Path("/nonexistent")
    )
    try:
        qtbot.waitUntil(lambda: service.status("testbed") == "connected", timeout=15_000)
        repo, first, _ = bare_repo
        job = service.submit(
            SlurmSubmission(
                cluster="testbed", job_name="stop-array", repo_url=repo, commit=first,
                command=("sleep", "120"), array="0-3%2",
            )
        )  # fmt: skip
        qtbot.waitUntil(lambda: service.repo.get(job.id).state is JobState.RUNNING, timeout=20_000)
        service.cancel(job.id)
        qtbot.waitUntil(lambda: service.repo.get(job.id).state.is_final, timeout=40_000)
        record = service.repo.get(job.id)
        assert record.state is JobState.CANCELLED, record
        sid = record.slurm_job_id
        assert testbed.run_as_root("squeue", "-h", "-j", sid or "", "-o", "%i").strip() == ""
    finally:
        service.shutdown()


@pytest.mark.slurm
def test_slurm_status_lists_an_arrays_tasks(testbed, profile, bare_repo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = run_cli_argv(
            "--data-dir", str(tmp_path / "data"), "slurm", args[0], "--clusters", str(clusters), *args[1:]
        )
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    repo, first, _ = bare_repo
    done = cli(
        "submit",
        "testbed",
        "--repo",
        repo,
        "--commit",
        first,
        "--name",
        "cli-array",
        "--array",
        "0-2%2",
        "--",
        "sleep",
        "1",
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[1].rstrip(":")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (job,) = [j for j in json.loads(cli("status", "--json").stdout)["jobs"] if str(j["id"]) == job_id]
        if job["state"] not in ("STARTING", "QUEUED", "RUNNING"):
            break
        time.sleep(1)
    sid = job["slurm_job_id"]
    assert job["state"] == "COMPLETED" and job["tasks"] == {f"{sid}_{i}": "COMPLETED" for i in range(3)}, job
    lines = [line.split() for line in cli("status").stdout.splitlines()]
    assert [f"{sid}_0", "COMPLETED"] in lines and [f"{sid}_2", "COMPLETED"] in lines


# -- without a cluster -------------------------------------------------------------------------------

PROFILE = ClusterProfile(name="c", host="h", workspace="/w")
BASE = SlurmSubmission(cluster="c", job_name="t", repo_url="r", commit="a" * 40, command=("python", "x.py"))


def test_an_array_script_gives_each_task_its_own_log_marker_and_clone() -> None:
    script = render_script(
        SlurmSubmission(**{**BASE.__dict__, "array": "0-9%2"}), PROFILE, "run1", "t-x", "/w"
    )
    assert "#SBATCH --array=0-9%2" in sbatch_directives(script)
    assert "#SBATCH --output=/w/run1/slurm.%a.log" in sbatch_directives(script)
    assert '/w/run1/msquant-exit."$SLURM_ARRAY_TASK_ID"' in script
    assert 'git clone --quiet --no-checkout r /w/run1/repo."$SLURM_ARRAY_TASK_ID"' in script
    assert array_spec_of(script) == "0-9%2"
    plain = render_script(BASE, PROFILE, "run1", "t-x", "/w")
    assert array_spec_of(plain) is None and "SLURM_ARRAY_TASK_ID" not in plain


def test_a_template_with_its_own_array_directive_gets_per_task_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from importlib import resources

    shipped = resources.files("msquant_desktop").joinpath("assets/templates/sbatch.sh.j2").read_text("utf-8")
    template = tmp_path / "array.sh.j2"
    template.write_text(
        shipped.replace("#SBATCH --chdir={{ run_dir }}\n", "#SBATCH --chdir={{ run_dir }}\n#SBATCH -a 1-3\n")
    )
    profile = ClusterProfile(name="c", host="h", workspace="/w", sbatch_template=str(template))
    script = render_script(BASE, profile, "run1", "t-x", "/w")
    assert array_spec_of(script) == "1-3"
    assert "#SBATCH --output=/w/run1/slurm.%a.log" in sbatch_directives(script)
    assert '/w/run1/msquant-exit."$SLURM_ARRAY_TASK_ID"' in script


@pytest.mark.parametrize("bad", ["0-2\n", "0-2;id", "%2", "0-2 ", "a-b", "0-2%", "$(id)", "0--2", ""])
def test_array_expressions_are_checked_whole(bad: str) -> None:
    with pytest.raises(ScriptError):
        render_script(SlurmSubmission(**{**BASE.__dict__, "array": bad}), PROFILE, "run1", "t-x", "/w")


def test_task_ids_of_expressions_and_records() -> None:
    assert array_task_ids("0-2") == ["0", "1", "2"]
    assert array_task_ids("1,4-8:2%1") == ["1", "4", "6", "8"]
    assert array_task_ids("[3-4]") == ["3", "4"] and array_task_ids("N/A") == []
    assert split_array_id("46") == ("46", None)
    assert split_array_id("46_1") == ("46", ["1"])
    assert split_array_id("46_[1-2,5%2]") == ("46", ["1", "2", "5"])


def _ended(state: JobState, code: int | None = 0, reason: str = "") -> FinalState:
    return FinalState(state, code, None, reason, "sacct", "sacct", (f"sacct: {state.value}",))


def test_an_arrays_final_state_follows_the_documented_precedence() -> None:
    ok = _ended(JobState.COMPLETED)
    assert decide_array_final("7", {"0": ok, "1": ok}).state is JobState.COMPLETED
    failed = decide_array_final(
        "7", {"0": ok, "1": _ended(JobState.FAILED, 3), "2": _ended(JobState.CANCELLED)}
    )
    assert (failed.state, failed.exit_code) == (JobState.FAILED, 3)
    assert failed.reason == "task 7_1 FAILED (exit 3); 1 of 3 tasks completed"
    assert failed.evidence[0] == "tasks: 1 FAILED, 1 CANCELLED, 1 COMPLETED"
    worst = decide_array_final(
        "7",
        {
            "0": _ended(JobState.FAILED, 1),
            "1": _ended(JobState.TIMEOUT, 0),
            "10": _ended(JobState.OUT_OF_MEMORY, 0, "out of memory"),
            "2": _ended(JobState.OUT_OF_MEMORY, 0, "out of memory"),
        },
    )
    assert worst.state is JobState.OUT_OF_MEMORY and worst.reason.startswith(
        "task 7_2 OUT_OF_MEMORY: out of memory"
    )
    assert decide_array_final("7", {"0": ok, "1": _ended(JobState.CANCELLED)}).state is JobState.CANCELLED


def test_a_sweep_array_reads_each_tasks_overrides_from_its_file_never_from_the_script() -> None:
    from msquant_desktop.slurm.script import remote_paths, task_args_files

    members = (("a=1", "+s='x; $(id)'"), ("a=2", "+s='x; $(id)'"))
    sweep = SlurmSubmission(**{**BASE.__dict__, "array": "0-1", "task_overrides": members})
    script = render_script(sweep, PROFILE, "run1", "t-x", "/w")
    assert "$(id)" not in script and "a=1" not in script
    assert 'done < /w/run1/task-args."$SLURM_ARRAY_TASK_ID"; python x.py "${_msq_args[@]}" &' in script
    files = task_args_files(sweep, remote_paths("/w", "run1"))
    assert files == {
        "/w/run1/task-args.0": b"a=1\0+s='x; $(id)'\0",
        "/w/run1/task-args.1": b"a=2\0+s='x; $(id)'\0",
    }
    # The script's own line, run by bash on those files, gives the command each word verbatim.
    line = next(t for t in script.splitlines() if t.startswith("_msq_args=()"))
    with tempfile.TemporaryDirectory() as tmp:
        for path, data in files.items():
            Path(tmp, Path(path).name).write_bytes(data)
        probe = line.replace("/w/run1/", f"{tmp}/").replace("python x.py", "printf '[%s]'")
        out = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {probe[:-2]}"],
            env={"SLURM_ARRAY_TASK_ID": "1", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert out == "[a=2][+s='x; $(id)']"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"array": None}, "need an array"),
        ({"array": "0-2"}, "names task 2, but the sweep has 2 members"),
        ({"overrides": ("b=1",)}, "overrides must be empty"),
        ({"task_overrides": (("a=1",), ())}, "task_overrides[1]: a sweep member has no overrides"),
        ({"task_overrides": (("a=1",), ("a=\0",))}, "task_overrides[1][0]"),
    ],
)
def test_a_sweep_array_is_checked_whole(changes: dict[str, object], words: str) -> None:
    values = {**BASE.__dict__, "array": "0-1", "task_overrides": (("a=1",), ("a=2",)), **changes}
    with pytest.raises(ScriptError, match=re.escape(words)):
        render_script(SlurmSubmission(**values), PROFILE, "run1", "t-x", "/w")  # type: ignore[arg-type]
