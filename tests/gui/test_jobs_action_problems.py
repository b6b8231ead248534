"""A Jobs-tab action the store refuses (Delete of a running job, Re-run without its typed secret)
is told in the window's problem bar, in the store's own words, and opens no dialog."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from msquant_desktop.domain.jobs import JobSpec, JobState


def _watch_for_dialogs(opened: list[str]) -> QTimer:
    """Any modal dialog is noted and closed (a QMessageBox.warning would otherwise block the test)."""

    def look() -> None:
        modal = QApplication.activeModalWidget()
        if isinstance(modal, QMessageBox):
            opened.append(modal.text())
            modal.close()

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(look)
    timer.start()
    return timer


def test_store_errors_of_jobs_actions_go_to_the_problem_bar(
    main_window, services, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    tab = main_window.jobs_tab
    main_window.show_tab("Jobs")
    running = services.jobs.submit(
        JobSpec(name="sleeper", argv=(sys.executable, "-c", "import time; time.sleep(30)"))
    )
    qtbot.waitUntil(lambda: services.jobs.get(running.id).state is JobState.RUNNING, timeout=15000)
    opened: list[str] = []
    timer = _watch_for_dialogs(opened)
    try:
        tab.select_job(running.id)
        tab.delete_selected(confirm=False)  # the store refuses to delete an active job
        banner = main_window.problem_banner
        qtbot.waitUntil(banner.isVisible, timeout=2000)
        assert (
            banner.label.text() == f"job {running.id} is running; cancel it before deleting"
            and "\n" not in banner.label.text()
        )

        # A job whose secret was typed in another session: Re-run refuses, in the bar too.
        old = services.jobs._repo.create(
            JobSpec(
                name="token",
                argv=("true",),
                env=(("HF_TOKEN", "<secret: typed for this job, held in memory until it starts>"),),
            ),
            JobState.CANCELLED,
            "from an earlier session",
        )
        qtbot.waitUntil(lambda: tab.model.rowCount() >= 2, timeout=5000)
        tab.select_job(old.id)
        tab.rerun_selected()
        assert "HF_TOKEN" in banner.label.text()
        qtbot.wait(200)
    finally:
        timer.stop()
        services.jobs.cancel(running.id)
        qtbot.waitUntil(lambda: services.jobs.get(running.id).state.is_final, timeout=20000)
    assert opened == []
