"""End to end through the real job engine: the launch form's command is exactly what runs, at the
pinned commit, even when the work tree changes (and a new commit lands) before the job starts."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobSpec, JobState
from tests.projects.conftest import TRAIN_PY, SampleRepo, commit_all, git


@pytest.fixture
def services(app_paths, qapp):  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_services

    s = create_services(app_paths)
    yield s
    s.shutdown()


def wait_final(qtbot, jobs, job_id: int, timeout_ms: int = 60000) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: jobs.get(job_id).state.is_final, timeout=timeout_ms)


def test_local_launch_through_the_job_engine(qtbot, services, sample_repo: SampleRepo) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_main_window

    # The app's real services (job engine, project service, launcher) and main window.
    window = create_main_window(services)
    qtbot.addWidget(window)
    tab = window.projects_tab
    tab.ask = lambda title, text: True
    jobs = services.jobs
    try:
        with qtbot.waitSignal(services.projects.sig_layout_ready, timeout=20000):
            services.projects.add_project(str(sample_repo.work))
        assert tab.form.local_radio.isEnabled()

        # Hold the single job slot so the project job stays queued while the user keeps working.
        blocker = jobs.submit(
            JobSpec(name="blocker", argv=(sys.executable, "-c", "import time; time.sleep(60)"))
        )
        qtbot.waitUntil(lambda: jobs.get(blocker.id).state is JobState.RUNNING, timeout=30000)

        (sample_repo.work / "train.py").write_text(TRAIN_PY.format(version="dirty-at-click"))
        tab.form.entry_point.setText(f"{shlex.quote(sys.executable)} train.py")
        tab.form.set_group_choices({"model": "large"})
        tab.form.free_lines.setPlainText("trainer.opt.lr=0.5\n+run_name='x y;$HOME'")
        tab.form.snapshot_check.setChecked(True)
        form_command = tab.form.command()
        with qtbot.waitSignal(tab.launcher.sig_launched, timeout=30000) as launched:
            tab.launch()
        job_id = launched.args[0]
        assert "submitted" in tab.form.notice.text()
        assert jobs.get(job_id).state is JobState.QUEUED

        # After the click: the tree changes and a new commit lands.  The job must not see either.
        (sample_repo.work / "train.py").write_text(TRAIN_PY.format(version="v3"))
        commit_all(sample_repo.work, "later work")
        jobs.cancel(blocker.id)
        wait_final(qtbot, jobs, job_id)

        record = jobs.get(job_id)
        log_text = "\n".join(text for text, _err in jobs.log_tail(job_id, 200)[0])
        assert record.state is JobState.COMPLETED, log_text
        assert tuple(record.spec.meta["command"]) == form_command
        assert record.spec.argv[-len(form_command) :] == form_command
        assert record.spec.meta["commit"] == sample_repo.unpushed
        assert "hidden: 512" in record.spec.meta["composed_config"]
        assert "ARGV " + json.dumps(list(form_command[2:])) in log_text
        assert "VERSION dirty-at-click" in log_text
        src = Path(record.run_dir or "") / "src"
        assert git(src, "rev-parse", "HEAD") == sample_repo.unpushed

        qtbot.waitUntil(lambda: tab.history.table.rowCount() == 1, timeout=10000)
        qtbot.waitUntil(lambda: tab.history.table.item(0, 3).text() == "COMPLETED", timeout=10000)
        # The overrides as a list, shown quoted: argument boundaries stay visible.
        assert tab.history.table.item(0, 5).text() == shlex.join(record.spec.meta["overrides"])
        assert record.spec.meta["overrides"][-1] == "+run_name='x y;$HOME'"
        assert tab.details.last_job.text().startswith(f"#{job_id} completed")

        # "Re-run with changes" fills the form from the job: the same command again.
        tab.form.free_lines.setPlainText("")
        tab.form.set_group_choices({"model": "small"})
        tab.history.table.selectRow(0)
        assert sample_repo.unpushed in tab.history.details.toPlainText()
        assert tab.history.open_run_button.isEnabled()
        tab.history.rerun_button.click()
        assert tab.form.command() == form_command
        assert tab.form.group_choices() == {"model": "large", "trainer": "default"}

        # The history links to the job in the Jobs tab (live log, full stored spec).
        tab.history.show_job_button.click()
        assert window.current_tab_title() == "Jobs" and window.jobs_tab.selected_job_id() == job_id
    finally:
        for job_id in jobs.local_active_ids():
            jobs.cancel(job_id)
        for job_id in jobs.local_active_ids():
            wait_final(qtbot, jobs, job_id)
