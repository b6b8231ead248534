"""The Projects tab with real widgets, a real store, real git repositories and real child processes."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobRecord, JobSpec, JobState
from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.services.project_launch import ProjectLauncher
from msquant_desktop.services.project_service import ProjectService
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.ui.projects_tab import ProjectsTab
from tests.projects.conftest import TRAIN_PY, SampleRepo, commit_all


class QueueingEngine:
    """Until the job engine is on this branch: the same `submit(spec) -> JobRecord` interface, storing
    the job QUEUED in the real store; `run(job_id)` runs its argv later, with {run_dir} replaced as the
    engine does."""

    def __init__(self, conn, runs: Path) -> None:  # type: ignore[no-untyped-def]
        self.repo = JobRepository(conn)
        self.runs = runs
        self.outputs: dict[int, subprocess.CompletedProcess[str]] = {}

    def submit(self, spec: JobSpec) -> JobRecord:
        return self.repo.create(spec)

    def run(self, job_id: int) -> None:
        record = self.repo.get(job_id)
        spec = record.spec
        run_dir = self.runs / f"job-{record.id}"
        run_dir.mkdir(parents=True)
        argv = [a.replace(RUN_DIR_PLACEHOLDER, str(run_dir)) for a in spec.argv]
        cwd = (spec.cwd or ".").replace(RUN_DIR_PLACEHOLDER, str(run_dir))
        self.repo.transition(record.id, JobState.RUNNING, run_dir=str(run_dir))
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
        self.outputs[record.id] = proc
        final = JobState.COMPLETED if proc.returncode == 0 else JobState.FAILED
        self.repo.transition(record.id, final, exit_code=proc.returncode)


@pytest.fixture
def tab(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    conn = connect(tmp_path / "store.sqlite3")
    engine = QueueingEngine(conn, tmp_path / "runs")
    service = ProjectService(conn)
    launcher = ProjectLauncher(service, tmp_path / "snapshots", jobs=engine)
    widget = ProjectsTab(service, launcher)
    widget.engine = engine  # type: ignore[attr-defined]
    widget.ask = lambda title, text: True
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    launcher.close()
    service.close()
    conn.close()


def add_and_wait(qtbot, tab: ProjectsTab, folder: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(tab.service.sig_layout_ready, timeout=20000):
        tab.service.add_project(str(folder))


def test_refuses_a_folder_that_is_not_a_git_work_tree(qtbot, tab: ProjectsTab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "just-a-folder"
    plain.mkdir()
    with qtbot.waitSignal(tab.service.sig_add_refused, timeout=10000):
        tab.service.add_project(str(plain))
    assert tab.message_box is not None and "is not a git work tree" in tab.message_box.text()
    assert tab.service.projects() == []
    assert tab.stack.currentIndex() == 0  # still the empty state
    tab.message_box.close()


def test_shows_git_facts_and_hydra_pickers_and_composes(
    qtbot, tab: ProjectsTab, sample_repo: SampleRepo
) -> None:  # type: ignore[no-untyped-def]
    add_and_wait(qtbot, tab, sample_repo.work)
    d = tab.details
    assert tab.project_list.currentItem().text() == "mnist-demo"
    assert d.branch.text() == "main"
    assert d.head.text() == f"{sample_repo.unpushed[:8]} bigger batch"
    assert d.ahead_behind.text() == "1 ahead, 0 behind origin/main"
    assert d.dirty.text() == "clean"
    assert str(sample_repo.remote) in d.remotes.text()
    assert set(tab.form.pickers) == {"model", "trainer"}

    # Edits made outside the app show up when the window is focused again.
    (sample_repo.work / "scratch.txt").write_text("x\n")
    with qtbot.waitSignal(tab.service.sig_status_ready, timeout=10000):
        tab._on_application_state(qtbot_active())
    assert d.dirty.text() == "1 file(s)"

    tab.form.entry_point.setText("python train.py")
    tab.form.set_group_choices({"model": "large"})
    tab.form.free_lines.setPlainText("trainer.opt.lr=0.5")
    assert tab.form.command_view.text() == "python train.py model=large trainer.opt.lr=0.5"
    with qtbot.waitSignal(tab.service.sig_compose_finished, timeout=30000):
        tab.preview_config()
    assert "hidden: 512" in tab.form.preview.toPlainText() and "lr: 0.5" in tab.form.preview.toPlainText()

    tab.form.free_lines.setPlainText("nokey=3")
    with qtbot.waitSignal(tab.service.sig_compose_finished, timeout=30000):
        tab.preview_config()
    assert "Could not override 'nokey'" in tab.form.preview.toPlainText()
    # Launch refuses it with Hydra's message before anything runs.
    with qtbot.waitSignal(tab.launcher.sig_plan_failed, timeout=30000):
        tab.launch()
    assert "Could not override 'nokey'" in tab.form.notice.text()
    assert tab.engine.outputs == {}  # type: ignore[attr-defined]

    tab.form.free_lines.setPlainText("lr")  # malformed: refused at once, naming the line
    assert "line 1" in tab.form.form_error.text() and not tab.form.launch_button.isEnabled()

    tab.remove_current()
    assert tab.service.projects() == [] and tab.stack.currentIndex() == 0
    assert (sample_repo.work / "train.py").exists()  # the repository itself is untouched


def qtbot_active():  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    return Qt.ApplicationState.ApplicationActive


def test_local_launch_runs_the_pinned_commit_and_exactly_the_form_command(  # type: ignore[no-untyped-def]
    qtbot, tab: ProjectsTab, sample_repo: SampleRepo
) -> None:
    add_and_wait(qtbot, tab, sample_repo.work)
    (sample_repo.work / "train.py").write_text(TRAIN_PY.format(version="dirty-at-click"))
    tab.form.entry_point.setText(sample_repo.entry_point())
    tab.form.set_group_choices({"model": "large", "trainer": "fast"})
    tab.form.free_lines.setPlainText("data.path='/tmp/a b;$(echo hi)'\n+tag=run1")
    tab.form.snapshot_check.setChecked(True)
    form_command = tab.form.command()
    assert tab.form.command_view.text() == shlex.join(form_command)

    asked: list[str] = []
    tab.ask = lambda title, text: asked.append(text) or True
    with qtbot.waitSignal(tab.launcher.sig_launched, timeout=30000) as launched:
        tab.launch()
    job_id = launched.args[0]
    assert asked and "uncommitted" in asked[0]
    # The job is queued; the user edits and commits before it starts.  Neither the change nor the new
    # commit reaches the job: it runs HEAD-at-click plus the snapshot taken at click.
    (sample_repo.work / "train.py").write_text(TRAIN_PY.format(version="v3"))
    commit_all(sample_repo.work, "later work")
    tab.engine.run(job_id)  # type: ignore[attr-defined]
    tab._on_history_changed(job.spec.project_id if (job := tab.service.job(job_id)) else 0)

    job = tab.service.job(job_id)
    assert job is not None and job.state is JobState.COMPLETED, tab.engine.outputs[job_id].stderr  # type: ignore[attr-defined]
    assert tuple(job.spec.meta["command"]) == form_command
    assert job.spec.argv[-len(form_command) :] == form_command
    assert job.spec.meta["commit"] == sample_repo.unpushed
    assert (
        "hidden: 512" in job.spec.meta["composed_config"] and "tag: run1" in job.spec.meta["composed_config"]
    )
    out = tab.engine.outputs[job_id].stdout.splitlines()  # type: ignore[attr-defined]
    assert json.loads(out[0].removeprefix("ARGV ")) == list(form_command[2:])
    assert out[1] == "VERSION dirty-at-click"
    src = Path(job.run_dir or "") / "src"
    assert (
        subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        == sample_repo.unpushed
    )

    # History lists it; "Re-run with changes" pre-fills the form from it.
    assert tab.history.table.rowCount() == 1 and tab.history.table.item(0, 3).text() == "COMPLETED"
    tab.form.free_lines.setPlainText("")
    tab.form.set_group_choices({"model": "small", "trainer": "default"})
    tab.history.table.selectRow(0)
    assert sample_repo.unpushed in tab.history.details.toPlainText()
    tab.history.rerun_button.click()
    assert tab.form.command() == form_command
    assert tab.form.group_choices() == {"model": "large", "trainer": "fast"}
    assert tab.details.last_job.text().startswith(f"#{job_id} completed")


def test_cluster_launch_plan_uses_the_pushed_commit(qtbot, tab: ProjectsTab, sample_repo: SampleRepo) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.domain.jobs import JobTarget
    from msquant_desktop.domain.projects import slurm_submission

    add_and_wait(qtbot, tab, sample_repo.work)
    project_id = tab.current_project_id()
    assert project_id is not None
    # Without a cluster service the target is disabled and says why.
    assert not tab.form.cluster_radio.isEnabled() and "Clusters" in tab.form.cluster_radio.toolTip()
    with qtbot.waitSignal(tab.launcher.sig_plan_ready, timeout=30000) as ready:
        tab.launcher.prepare(project_id, "python train.py", ["model=large"], JobTarget.SLURM, "gpu-cluster")
    plan = ready.args[0]
    assert plan.commit == sample_repo.pushed and plan.commit_subject == "first model"
    assert any("not on any remote" in w for w in plan.warnings)
    submission = slurm_submission(plan)
    assert (submission.cluster, submission.commit, submission.repo_url) == (
        "gpu-cluster",
        sample_repo.pushed,
        str(sample_repo.remote),
    )
    assert submission.command == ("python", "train.py") and submission.overrides == ("model=large",)
    # Submitting without a cluster service is refused with a message, nothing is stored.
    with qtbot.waitSignal(tab.launcher.sig_launch_failed, timeout=10000) as failed:
        tab.launcher.launch(plan)
    assert "cluster launches are not available" in failed.args[0]
    assert tab.service.history(project_id) == []
