"""A project launched on the real SLURM testbed through the app's own services, end to end.

A real git repository with a Hydra config tree is added as a project; its newest commit is NOT pushed.
`ProjectLauncher.prepare(..., JobTarget.SLURM, ...)` composes the config and picks the pushed commit,
`launch()` submits it through the ClusterService, and the job runs on the cluster as the test user,
cloning the bare remote.  The job's output (fetched back into its local run folder) proves which commit
ran and that the overrides arrived verbatim.  An invalid override is refused with Hydra's message
before anything is submitted.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from msquant_desktop.app import create_services
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.jobs import JobState, JobTarget
from msquant_desktop.domain.projects import LAUNCH_FACTS_FILE
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.profiles import save_profiles
from tests.projects.conftest import commit_all, git, init_repo

pytestmark = pytest.mark.slurm

# The cluster side has no Hydra: the script reads its overrides by hand and the chosen model's YAML
# from the checked-out tree, and prints what it got.
TRAIN_PY = """\
import json, pathlib, sys
VERSION = "{version}"
values = dict(arg.lstrip("+").split("=", 1) for arg in sys.argv[1:])
model = values.get("model", "small")
print("ARGV " + json.dumps(sys.argv[1:]))
print("VERSION " + VERSION)
print("MODEL " + model + " " + pathlib.Path("conf/model/" + model + ".yaml").read_text().replace("\\n", " "))
print("LR " + values.get("lr", "none"))
"""

CONFIG_YAML = """\
defaults:
  - model: small
  - _self_
seed: 1
"""

OVERRIDES = ["model=large", "+lr=0.5"]
ENTRY_POINT = "python3 train.py"  # the cluster nodes have python3, not python


@dataclass
class ClusterProject:
    work: Path  # the user's clone (one commit ahead of origin)
    remote: Path  # its bare origin, readable by the testbed's SLURM user
    pushed: str
    unpushed: str


@pytest.fixture
def cluster_project(testbed, tmp_path: Path) -> ClusterProject:  # type: ignore[no-untyped-def]
    """A Hydra project whose origin the test user can clone; HEAD is one unpushed commit ahead."""
    (testbed.dir / "repos").mkdir(mode=0o755, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="project-", dir=testbed.dir / "repos"))
    root.chmod(0o755)
    remote = root / "hydra-demo.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    work = tmp_path / "hydra-demo"  # the project name becomes part of the SLURM job name
    init_repo(work)
    conf = work / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "config.yaml").write_text(CONFIG_YAML)
    (conf / "model" / "small.yaml").write_text("hidden: 64\nlayers: 2\n")
    (conf / "model" / "large.yaml").write_text("hidden: 512\nlayers: 12\n")
    (work / "train.py").write_text(TRAIN_PY.format(version="pushed-v1"))
    pushed = commit_all(work, "pushed model")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "-u", "origin", "main")
    subprocess.run(["chown", "-R", testbed.user, str(root)], check=True)  # the job clones as the test user
    (work / "train.py").write_text(TRAIN_PY.format(version="unpushed-v2"))
    unpushed = commit_all(work, "local only")
    return ClusterProject(work=work, remote=remote, pushed=pushed, unpushed=unpushed)


@pytest.fixture
def app(qtbot, profile, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app's real services with the testbed configured as cluster "testbed", connected."""
    paths = resolve_paths(tmp_path / "data").ensure()
    save_profiles(paths.clusters_file, [profile])  # known_hosts already holds the testbed's host key
    services = create_services(paths)
    try:
        qtbot.waitUntil(lambda: services.clusters.status(profile.name) == "connected", timeout=20_000)
        yield services
    finally:
        services.shutdown()


def add_project(qtbot, services, folder: Path) -> int:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(services.projects.sig_layout_ready, timeout=20_000) as ready:
        services.projects.add_project(str(folder))
    project_id = int(ready.args[0])
    layout = services.projects.layout(project_id)
    assert layout is not None and layout.options("model") == ("large", "small")
    return project_id


def test_cluster_launch_runs_the_pushed_commit_with_the_overrides(
    qtbot, app, profile, cluster_project: ClusterProject
) -> None:  # type: ignore[no-untyped-def]
    launcher, projects, jobs = app.project_launcher, app.projects, app.jobs
    project_id = add_project(qtbot, app, cluster_project.work)
    assert launcher.cluster_available and launcher.cluster_names() == [profile.name]

    with qtbot.waitSignal(launcher.sig_plan_ready, timeout=30_000) as ready:
        launcher.prepare(project_id, ENTRY_POINT, OVERRIDES, JobTarget.SLURM, profile.name)
    plan = ready.args[0]
    assert plan.commit == cluster_project.pushed and plan.commit_subject == "pushed model"
    assert plan.repo_url == str(cluster_project.remote)
    assert any("not on any remote" in w for w in plan.warnings)
    assert (
        plan.composed_config and "hidden: 512" in plan.composed_config and "lr: 0.5" in plan.composed_config
    )

    with qtbot.waitSignal(launcher.sig_launched, timeout=30_000) as launched:
        launcher.launch(plan)
    job_id = int(launched.args[0])
    qtbot.waitUntil(lambda: jobs.get(job_id).state.is_final, timeout=120_000)

    job = jobs.get(job_id)
    run_dir = Path(job.run_dir or "")
    log_text = run_dir.joinpath("slurm.log").read_text()
    assert job.state is JobState.COMPLETED, (job, log_text)
    assert job.spec.target is JobTarget.SLURM and job.spec.project_id == project_id
    assert job.slurm_job_id and job.exit_code == 0
    # The pushed commit ran, not the newer local one.
    assert f"at commit {cluster_project.pushed}" in log_text
    assert "VERSION pushed-v1" in log_text and "unpushed-v2" not in log_text
    argv_line = next(line for line in log_text.splitlines() if line.startswith("ARGV "))
    assert json.loads(argv_line[5:]) == OVERRIDES  # verbatim, each its own argument
    assert "MODEL large hidden: 512 layers: 12" in log_text and "LR 0.5" in log_text
    assert "O VERSION pushed-v1" in run_dir.joinpath("output.log").read_text().splitlines()

    facts = json.loads(run_dir.joinpath(LAUNCH_FACTS_FILE).read_text())
    assert facts["commit"] == cluster_project.pushed
    assert facts["overrides"] == OVERRIDES
    assert facts["command"] == ["python3", "train.py", *OVERRIDES]
    assert "hidden: 512" in facts["composed_config"] and "lr: 0.5" in facts["composed_config"]
    assert projects.launch_facts(job)["composed_config"] == facts["composed_config"]

    assert [j.id for j in projects.history(project_id)] == [job_id]
    remembered = projects.project(project_id)
    assert remembered.entry_point == ENTRY_POINT


def test_an_invalid_override_is_refused_before_anything_is_submitted(
    qtbot, app, profile, cluster_project: ClusterProject
) -> None:  # type: ignore[no-untyped-def]
    launcher = app.project_launcher
    project_id = add_project(qtbot, app, cluster_project.work)
    before = [j.id for j in app.jobs.list_jobs()]
    launched: list[int] = []
    launcher.sig_launched.connect(launched.append)

    with qtbot.waitSignal(launcher.sig_plan_failed, timeout=30_000) as failed:
        launcher.prepare(project_id, ENTRY_POINT, ["model=nonexistent"], JobTarget.SLURM, profile.name)
    assert "Could not find 'model/nonexistent'" in failed.args[0]
    qtbot.wait(500)  # nothing else arrives
    assert launched == []
    assert [j.id for j in app.jobs.list_jobs()] == before
    assert app.projects.history(project_id) == []


# -- a sweep as one job array ---------------------------------------------------------------------

SWEEP_TRAIN_PY = """\
import json, sys
import hydra
from omegaconf import OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    print("ARGV " + json.dumps(sys.argv[1:]))
    print("CFG " + json.dumps(OmegaConf.to_container(cfg), sort_keys=True))


if __name__ == "__main__":
    main()
"""
SWEEP = ["model=small,large", "lr=0.1,0.2", "+note='two words; $(id) `id`'"]


@pytest.fixture(scope="session")
def cluster_hydra_python(testbed) -> str:  # type: ignore[no-untyped-def]
    """A real venv with hydra-core that the testbed's job user can run (the system Python's)."""
    from tests.projects.hydra_fixtures import make_venv

    (testbed.dir / "venvs").mkdir(mode=0o755, exist_ok=True)
    dest = testbed.dir / "venvs" / "hydra13"
    python = dest / "bin" / "python"
    if not python.exists():
        make_venv(dest, "/usr/bin/python3", ["hydra-core==1.3.2"])
        subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return str(python)


def test_a_2x2_sweep_runs_as_one_4_task_array_each_task_with_its_config(
    qtbot, app, profile, testbed, cluster_project: ClusterProject, cluster_hydra_python: str
) -> None:  # type: ignore[no-untyped-def]
    work = cluster_project.work
    (work / "train.py").write_text(SWEEP_TRAIN_PY)
    (work / "conf" / "config.yaml").write_text("defaults:\n  - model: small\n  - _self_\nlr: 0.05\n")
    (work / ".gitignore").write_text(".venv/\n")
    pushed = commit_all(work, "hydra sweep")
    subprocess.run(["chown", "-R", "root", str(cluster_project.remote)], check=True)  # git's ownership check
    git(work, "push", "-q", "origin", "main")
    subprocess.run(["chown", "-R", testbed.user, str(cluster_project.remote)], check=True)
    (work / ".venv").symlink_to(Path(cluster_hydra_python).parent.parent, target_is_directory=True)
    launcher, jobs = app.project_launcher, app.jobs
    project_id = add_project(qtbot, app, work)
    entry = f"{cluster_hydra_python} train.py"

    with qtbot.waitSignal(launcher.sig_plan_ready, timeout=60_000) as ready:
        launcher.prepare(project_id, entry, SWEEP, JobTarget.SLURM, profile.name)
    plan = ready.args[0]
    assert plan.commit == pushed and plan.sweep_mode == "members" and len(plan.members) == 4
    with qtbot.waitSignal(launcher.sig_launched_jobs, timeout=30_000) as launched:
        launcher.launch(plan)
    (job_id,) = launched.args[0]  # ONE job: the array
    qtbot.waitUntil(lambda: jobs.get(job_id).state.is_final, timeout=180_000)

    job = jobs.get(job_id)
    run_dir = Path(job.run_dir or "")
    log_text = run_dir.joinpath("slurm.log").read_text()
    assert job.state is JobState.COMPLETED, (job, log_text)
    sid = job.slurm_job_id
    assert job.result["array"] == "0-3"
    assert dict(cluster_jobs.task_states(job)) == {f"{sid}_{i}": "COMPLETED" for i in range(4)}
    assert "#SBATCH --array=0-3" in run_dir.joinpath("job.sbatch").read_text()
    assert "$(id)" not in run_dir.joinpath("job.sbatch").read_text()  # overrides live in the task files

    facts = json.loads(run_dir.joinpath(LAUNCH_FACTS_FILE).read_text())
    assert facts["overrides"] == SWEEP and facts["sweep"]["mode"] == "array" and facts["sweep"]["size"] == 4
    note = "+note='two words; $(id) `id`'"
    expected = [
        ["model=small", "lr=0.1", note],
        ["model=small", "lr=0.2", note],
        ["model=large", "lr=0.1", note],
        ["model=large", "lr=0.2", note],
    ]
    assert [m["overrides"] for m in facts["members"]] == expected
    remote_run = Path(job.result["remote_run_dir"])
    for index, member in enumerate(facts["members"]):
        # Each task got exactly its member's overrides, verbatim, and its Hydra wrote the recorded config.
        assert f"[{sid}_{index}] ARGV {json.dumps(expected[index])}" in log_text, log_text
        (written,) = sorted((remote_run / f"repo.{index}").rglob(".hydra/config.yaml"))
        assert member["composed_config"] == written.read_text()
        assert f"lr: {expected[index][1][3:]}" in member["composed_config"]
    assert "note: two words; $(id) `id`" in facts["members"][0]["composed_config"]
    assert app.projects.launch_facts(job)["members"] == facts["members"]
    from msquant_desktop.ui.projects.history import describe_job

    text = describe_job(job, app.projects.launch_facts(job))
    assert "one SLURM job array of 4 tasks" in text
    assert "task 3: model=large lr=0.2 '+note='\"'\"'two words; $(id) `id`'\"'\"''" in text, text

    # The Jobs tab shows the array as one sweep, a row per task with that task's state.
    from msquant_desktop.ui.jobs.table_model import Column
    from msquant_desktop.ui.jobs_tab import JobsTab

    tab = JobsTab(jobs)
    qtbot.addWidget(tab)
    model = tab.table.model()
    rows = [(model.index(r, Column.STATUS).data(), model.index(r, Column.NAME).data()) for r in range(5)]
    assert rows[0][1].endswith(f" · sweep {sid}: 4 members, 4 done, 0 failed"), rows
    assert [r[0] for r in rows[1:]] == ["Completed"] * 4
    assert [r[1].strip() for r in rows[1:]] == [f"task {sid}_{i}" for i in range(4)]
