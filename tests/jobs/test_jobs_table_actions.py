"""The job table as people use it: the row menu, keyboard shortcuts, a progress cell that shows its
whole text, and the job just started selected — on real jobs, a real store and real Qt offscreen."""

from __future__ import annotations

import shlex
import sys

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QStyleOptionViewItem

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.ui.jobs.table_model import JOB_ID_ROLE, Column, progress_cell_text
from msquant_desktop.ui.jobs_tab import JobsTab
from tests.jobs.conftest import wait_final


def _tab(qtbot, service) -> JobsTab:  # type: ignore[no-untyped-def]
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.resize(1100, 700)
    tab.show()
    tab.activateWindow()
    qtbot.waitExposed(tab)
    return tab


def test_row_menu_offers_the_toolbar_actions_and_copies(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    tab = _tab(qtbot, service)
    argv = (sys.executable, "-c", "print('it has spaces and a \\'quote\\'')")
    record = service.submit(JobSpec(name="copyme", argv=argv))
    wait_final(qtbot, service, record.id)
    qtbot.waitUntil(tab.delete_action.isEnabled, timeout=5000)
    menu = tab.context_menu()
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Cancel", "Re-run", "Open run folder", "Copy command", "Copy path", "Delete"]
    # The same QAction objects as the toolbar: one enablement rule, one service call.
    assert menu.actions()[0] is tab.cancel_action and not tab.cancel_action.isEnabled()
    tab.copy_command_action.trigger()
    assert QGuiApplication.clipboard().text() == shlex.join(argv)
    assert shlex.split(QGuiApplication.clipboard().text()) == list(argv)
    tab.copy_path_action.trigger()
    assert QGuiApplication.clipboard().text() == str(service.run_dir(record.id))
    # Re-run from the menu: a new job, and it is the one selected.
    tab.rerun_action.trigger()
    qtbot.waitUntil(lambda: tab.selected_job_id() not in (None, record.id), timeout=5000)
    assert service.get(tab.selected_job_id()).spec.argv == argv  # type: ignore[arg-type]


# A popup menu asks the offscreen platform for things it does not have (not ours).
@pytest.mark.qt_log_ignore("This plugin does not support raise", "This plugin does not support grabbing")
def test_right_click_selects_the_row_under_the_pointer(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMenu

    service = make_engine()
    tab = _tab(qtbot, service)
    first = service.submit(JobSpec(name="first", argv=(sys.executable, "-c", "pass")))
    second = service.submit(JobSpec(name="second", argv=(sys.executable, "-c", "pass")))
    wait_final(qtbot, service, first.id)
    wait_final(qtbot, service, second.id)
    assert tab.selected_job_id() == second.id
    shown = tab.table.model()  # the table's own model (sweep grouping over the filter)
    row_of_first = next(r for r in range(shown.rowCount()) if shown.index(r, 0).data(JOB_ID_ROLE) == first.id)
    pos = tab.table.visualRect(shown.index(row_of_first, Column.NAME)).center()
    tab.table.customContextMenuRequested.emit(pos)
    menus = [m for m in tab.findChildren(QMenu) if m.isVisible()]
    assert tab.selected_job_id() == first.id and len(menus) == 1
    assert [a.text() for a in menus[0].actions() if a.text()][-1] == "Delete"
    menus[0].close()
    tab.table.customContextMenuRequested.emit(QPoint(5, tab.table.viewport().height() - 2))  # below rows
    assert not [m for m in tab.findChildren(QMenu) if m.isVisible()]


def test_delete_f5_and_ctrl_f_shortcuts(make_engine, qtbot, monkeypatch, app_paths) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    service = make_engine()
    tab = _tab(qtbot, service)
    record = service.submit(JobSpec(name="gone", argv=(sys.executable, "-c", "pass")))
    wait_final(qtbot, service, record.id)
    qtbot.waitUntil(tab.delete_action.isEnabled, timeout=5000)
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        staticmethod(lambda *_a: asked.append(_a[2]) or QMessageBox.StandardButton.No),
    )
    # Delete in the filter box edits the text; it never deletes a job.
    tab.search.setFocus()
    qtbot.keyClicks(tab.search, "gone")
    qtbot.keyClick(tab.search, Qt.Key.Key_Home)
    qtbot.keyClick(tab.search, Qt.Key.Key_Delete)
    assert tab.search.text() == "one" and asked == []
    tab.search.clear()
    tab.table.setFocus()
    qtbot.keyClick(tab.table, Qt.Key.Key_Delete)
    assert asked == [tab.delete_question(record.id)]
    assert service.get(record.id).state is JobState.COMPLETED  # answered No
    # F5: a job written by another process shows at once, without waiting for the next sync.
    other = connect(app_paths.database)
    try:
        written = JobRepository(other).create(
            JobSpec(name="from-cli", argv=("true",)), JobState.QUEUED, "submitted by jobs run"
        )
    finally:
        other.close()
    qtbot.keyClick(tab.table, Qt.Key.Key_F5)
    assert written.id in [tab.model.record_at(r).id for r in range(tab.model.rowCount())]
    assert tab.selected_job_id() == record.id  # the selection survives the reload
    qtbot.keyClick(tab.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert tab.search.hasFocus()
    # In the log pane Ctrl+F stays the log's own search (no ambiguous shortcut).
    tab.details.log_view.text.setFocus()
    qtbot.keyClick(tab.details.log_view.text, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert tab.details.log_view.find_edit.hasFocus()


def test_progress_cell_has_its_whole_text_as_tooltip_and_cuts_on_the_right(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    tab = _tab(qtbot, service)
    event = {
        "type": "progress",
        "stage": "Calibrating layer model.layers.27.mlp",
        "fraction": 0.42,
        "eta_s": 3725,
    }
    script = (
        "import json, time\n"
        f"print('@@MSQUANT-EVENT@@ ' + json.dumps({event!r}), flush=True)\n"
        "time.sleep(30)\n"
    )
    record = service.submit(JobSpec(name="slow", argv=(sys.executable, "-c", script)))
    cell = tab.proxy.index(0, Column.PROGRESS)
    whole = "Calibrating layer model.layers.27.mlp · 42% · ETA 1 h 02 min"
    qtbot.waitUntil(lambda: cell.data(Qt.ItemDataRole.ToolTipRole) == whole, timeout=10000)
    assert tab.table.columnWidth(Column.PROGRESS) >= 300
    option = QStyleOptionViewItem()
    option.initFrom(tab.table)
    shown = progress_cell_text(option, whole, 160)
    assert shown.startswith("Calibrating") and shown.endswith("…") and len(shown) < len(whole)
    assert progress_cell_text(option, whole, 2000) == whole
    service.cancel(record.id)
    wait_final(qtbot, service, record.id)


def test_the_job_just_started_is_selected(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=2)
    tab = _tab(qtbot, service)
    old = service.submit(JobSpec(name="old", argv=(sys.executable, "-c", "pass")))
    wait_final(qtbot, service, old.id)
    tab.select_job(old.id)
    assert tab.selected_job_id() == old.id
    # Started from another area (a quantization, a project launch): still the one the user wants to see.
    new = service.submit(JobSpec(name="new", argv=(sys.executable, "-c", "pass")))
    assert tab.selected_job_id() == new.id
    wait_final(qtbot, service, new.id)
