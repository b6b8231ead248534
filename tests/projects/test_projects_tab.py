"""The Projects tab with real widgets, a real store, real git repositories and real child processes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from msquant_desktop.app import create_services
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.ui.projects_tab import ProjectsTab
from tests.projects.conftest import SampleRepo


@pytest.fixture
def tab(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The tab on the app's real services (store, job engine, project service, launcher)."""
    services = create_services(resolve_paths(tmp_path / "data").ensure())
    widget = ProjectsTab(services.projects, services.project_launcher)
    widget.ask = lambda title, text: True
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    services.shutdown()


def add_and_wait(qtbot, tab: ProjectsTab, folder: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(tab.service.sig_layout_ready, timeout=120000):
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
    # No .venv: a bare `python` is this app's own interpreter, and the form says so plainly.
    assert "this app's own Python" in tab.form.python_label.text()
    assert tab.form.command_view.text() == shlex.join(
        [sys.executable, "train.py", "model=large", "trainer.opt.lr=0.5"]
    )
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
    assert tab.service.history(tab.current_project_id()) == []  # nothing was submitted

    tab.form.free_lines.setPlainText("lr")  # malformed: refused at once, naming the line
    assert "line 1" in tab.form.form_error.text() and not tab.form.launch_button.isEnabled()

    tab.remove_current()
    assert tab.service.projects() == [] and tab.stack.currentIndex() == 0
    assert (sample_repo.work / "train.py").exists()  # the repository itself is untouched


def qtbot_active():  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    return Qt.ApplicationState.ApplicationActive


def test_cluster_launch_plan_uses_the_pushed_commit(qtbot, tab: ProjectsTab, sample_repo: SampleRepo) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.domain.jobs import JobTarget
    from msquant_desktop.domain.projects import slurm_submission

    add_and_wait(qtbot, tab, sample_repo.work)
    project_id = tab.current_project_id()
    assert project_id is not None
    # With no cluster configured the target is disabled and says why.
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
    # Submitting with no cluster configured is refused with a message, nothing is stored.
    with qtbot.waitSignal(tab.launcher.sig_launch_failed, timeout=10000) as failed:
        tab.launcher.launch(plan)
    assert "cluster launches are not available" in failed.args[0]
    assert tab.service.history(project_id) == []


def test_reopening_and_rerun_keep_a_null_default_choice_as_it_ran(
    qtbot, tab: ProjectsTab, lightning_project: Path
) -> None:  # type: ignore[no-untyped-def]
    add_and_wait(qtbot, tab, lightning_project)
    project_id = tab.current_project_id()
    assert project_id is not None
    layout = tab.service.layout(project_id)
    # A new project runs its discovered Hydra entry point, not the default command.
    assert tab.service.project(project_id).entry_point == "python src/train.py"
    assert tab.form.entry_point.text() == "python src/train.py"
    ran = ["experiment=example", "logger=csv", "trainer.max_epochs=1"]
    # Reopening: the last launch is filled in before Hydra's layout arrives, then split into pickers.
    tab.form.set_layout(None)
    tab.form.prefill("python src/train.py", ran)
    assert tab.form.free_overrides() == ran
    tab.form.set_layout(layout)
    assert tab.form.group_choices()["experiment"] == "example"
    assert tab.form.group_choices()["logger"] == "csv"
    assert tab.form.free_overrides() == ["trainer.max_epochs=1"]
    assert sorted(tab.form.overrides()) == sorted(ran)  # never `+experiment=example`
    tab.service.remember_launch(project_id, "python src/train.py", ran)
    tab.reload()
    tab._on_current_changed()
    assert sorted(tab.form.overrides()) == sorted(ran)
    venv_python = str(lightning_project / ".venv" / "bin" / "python")
    assert tab.form.python_label.text().startswith(venv_python)
    assert tab.form.command()[0] == venv_python
    assert tab.form.entry_combo.isVisible() and tab.form.entry_combo.count() == 2  # train.py, eval.py


def test_preview_shows_no_overrides_the_hydra_section_and_is_cleared(
    qtbot, tab: ProjectsTab, lightning_project: Path
) -> None:  # type: ignore[no-untyped-def]
    add_and_wait(qtbot, tab, lightning_project)
    with qtbot.waitSignal(tab.service.sig_compose_finished, timeout=60000):
        tab.preview_config()
    text = tab.form.preview.toPlainText()
    assert text.startswith("# no overrides") and "task_name: train" in text and "refused" not in text
    tab.form.preview_hydra_check.setChecked(True)
    tab.form.preview_resolved_check.setChecked(True)
    tab.form.free_lines.setPlainText("hydra.run.dir=somewhere/else")
    with qtbot.waitSignal(tab.service.sig_compose_finished, timeout=60000):
        tab.preview_config()
    text = tab.form.preview.toPlainText()
    assert "Hydra's own config (hydra:)" in text and "dir: somewhere/else" in text
    assert "resolved values" in text and "log_dir: ./logs/" in text
    # A failed launch leaves nothing of the last preview on screen.
    tab.form.free_lines.setPlainText("nokey=3")
    with qtbot.waitSignal(tab.launcher.sig_plan_failed, timeout=60000):
        tab.launch()
    assert tab.form.preview.toPlainText() == ""
    assert "Could not override 'nokey'" in tab.form.notice.text()
    assert "no shell quoting" in tab.form.overrides_hint.text() and "a=1,2 sweeps" in tab.form.overrides_hint.text()
