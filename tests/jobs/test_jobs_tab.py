"""The Jobs tab with real jobs: empty state, table, live log, actions, extension points, close guard,
and a 1M-line flood that must not freeze the window."""

from __future__ import annotations

import json
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.ui.jobs.close_guard import CANCEL, LEAVE, STAY, make_close_guard
from msquant_desktop.ui.jobs.table_model import Column
from msquant_desktop.ui.jobs_tab import JobsTab
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import marked, wait_for


def _tab(qtbot, service) -> JobsTab:  # type: ignore[no-untyped-def]
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.resize(1100, 700)
    tab.show()
    return tab


def test_empty_state_then_a_live_job_in_table_and_log(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    tab = _tab(qtbot, service)
    assert tab.stack.currentWidget() is tab.empty
    assert [b.text() for b in tab.empty.buttons] == ["New command job…"]
    script = "import sys\nprint('first line')\nprint('an error', file=sys.stderr)\nprint('last line')"
    record = service.submit(JobSpec(name="demo", argv=(sys.executable, "-c", script)))
    assert tab.stack.currentIndex() == 1
    assert tab.selected_job_id() == record.id  # the new job is selected
    wait_final(qtbot, service, record.id)
    qtbot.waitUntil(lambda: "last line" in tab.details.log_view.plain_text(), timeout=5000)
    text = tab.details.log_view.plain_text()
    assert "first line" in text and "an error" in text
    row = tab.proxy.index(0, Column.STATUS)
    qtbot.waitUntil(lambda: row.data() == "Completed", timeout=5000)
    assert tab.proxy.index(0, Column.EXIT).data() == "exit 0"
    assert (
        not tab.cancel_action.isEnabled() and tab.delete_action.isEnabled() and tab.rerun_action.isEnabled()
    )
    tab.search.setText("no-such-job")
    assert tab.proxy.rowCount() == 0
    tab.search.setText("demo")
    assert tab.proxy.rowCount() == 1


def test_queued_jobs_show_their_place_in_the_queue(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The Status cell says where a job stands in the local queue (1 = next), not the raw position
    it was given when queued: it moves up as the jobs before it start or are cancelled."""
    service = make_engine(max_jobs=1, grace=0.2)
    tab = _tab(qtbot, service)
    first = service.submit(JobSpec(name="first", argv=("sleep", "300")))
    qtbot.waitUntil(lambda: service.get(first.id).state is JobState.RUNNING, timeout=15000)
    waiting = [service.submit(JobSpec(name=f"w{i}", argv=("sleep", "300"))) for i in range(3)]

    def status(job_id: int) -> str:
        row = tab.model.row_of(job_id)
        assert row is not None
        return str(tab.model.index(row, Column.STATUS).data())

    assert [status(r.id) for r in waiting] == ["Queued (#1)", "Queued (#2)", "Queued (#3)"]
    service.cancel(waiting[0].id)
    qtbot.waitUntil(lambda: status(waiting[1].id) == "Queued (#1)", timeout=5000)
    assert status(waiting[2].id) == "Queued (#2)"
    service.cancel(first.id)  # the next one starts: the last moves to the front
    qtbot.waitUntil(lambda: service.get(waiting[1].id).state is JobState.RUNNING, timeout=15000)
    qtbot.waitUntil(lambda: status(waiting[2].id) == "Queued (#1)", timeout=5000)
    for record in (waiting[1], waiting[2]):
        service.cancel(record.id)
    wait_final(qtbot, service, waiting[2].id)


def test_cancel_button_shows_cancelling_and_delete_waits(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(grace=1.0)
    tab = _tab(qtbot, service)
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    record = service.submit(JobSpec(name="stubborn", argv=(sys.executable, "-c", script)))
    qtbot.waitUntil(lambda: "up" in tab.details.log_view.plain_text(), timeout=10000)
    assert tab.cancel_action.isEnabled() and not tab.delete_action.isEnabled()
    tab.cancel_selected()
    assert tab.cancel_action.text() == "Cancelling…" and not tab.cancel_action.isEnabled()
    assert wait_final(qtbot, service, record.id).state is JobState.CANCELLED
    qtbot.waitUntil(tab.delete_action.isEnabled, timeout=5000)
    run_dir = service.run_dir(record.id)
    assert run_dir is not None
    for i in range(2000):  # enough files that removing them is seen as work in progress
        (run_dir / f"f{i}").write_bytes(b"x" * 1024)
    shown: list[tuple[int, bool, str]] = []
    service.sig_deletes_pending.connect(
        lambda n: shown.append((n, tab.deleting_action.isVisible(), tab.deleting.format()))
    )
    tab.delete_selected(confirm=False)  # returns at once; the folder goes on a thread
    assert record.id not in [tab.model.record_at(i).id for i in range(tab.model.rowCount())]
    qtbot.waitUntil(lambda: not run_dir.exists(), timeout=10000)
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=5000)
    assert shown == [
        (1, True, "Removing 1 deleted job folder…"),
        (0, False, "Removing 0 deleted job folders…"),
    ]


def test_delete_asks_before_it_deletes(make_engine, qtbot, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    service = make_engine()
    tab = _tab(qtbot, service)
    model = tmp_path / "models" / "kept-model"
    result = "@@MSQUANT-EVENT@@ " + json.dumps({"type": "result", "output": str(model)})
    record = service.submit(JobSpec(name="done", argv=(sys.executable, "-c", f"print({result!r})")))
    wait_final(qtbot, service, record.id)
    run_dir = service.run_dir(record.id)
    assert run_dir is not None and run_dir.is_dir()
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]

    def question(_parent, _title: str, text: str, *_args):  # type: ignore[no-untyped-def]
        asked.append(text)
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    tab.select_job(record.id)
    qtbot.waitUntil(tab.delete_action.isEnabled, timeout=5000)
    tab.delete_action.trigger()  # what the toolbar button and the menu do
    assert asked == [
        f"Delete job #{record.id}?\n\nThis removes its run folder {run_dir} (output log, events, launch"
        f" facts).\n\nThe model it made is kept: {model}"
    ]
    assert service.get(record.id).state is JobState.COMPLETED and run_dir.is_dir()
    answer[0] = QMessageBox.StandardButton.Yes
    tab.delete_action.trigger()
    assert len(asked) == 2
    qtbot.waitUntil(lambda: not run_dir.exists(), timeout=5000)  # removed on a thread
    assert service.summaries() == []


def test_other_areas_can_add_actions_and_views(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    tab = _tab(qtbot, make_engine())
    triggered: list[bool] = []
    action = QAction("New quantization…", tab)
    action.triggered.connect(lambda: triggered.append(True))
    tab.add_toolbar_action(action)
    tab.add_view("Results", QLabel("results"))
    assert tab.views.tabText(0) == "All jobs" and tab.views.tabText(1) == "Results"
    assert action in tab.toolbar.actions()
    tab.empty.buttons[-1].click()
    assert triggered == [True]


def test_close_guard_leaves_cancels_or_stays(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=2, grace=0.5)
    record = service.submit(JobSpec(name="long", argv=("sleep", "60")))
    qtbot.waitUntil(lambda: service.get(record.id).state is JobState.RUNNING, timeout=10000)
    asked: list[int] = []

    def answer(choice: str):  # type: ignore[no-untyped-def]
        return lambda running: asked.append(running) or choice

    # Asked once, with the number of running jobs; "Don't quit" keeps the window and the job.
    assert make_close_guard(service, answer(STAY))() is False
    assert asked == [1]
    run_dir = service.run_dir(record.id)
    assert run_dir is not None
    assert service.get(record.id).state is JobState.RUNNING and marked(run_dir)
    assert make_close_guard(service, answer(LEAVE))() is True
    assert asked == [1, 1]
    time.sleep(0.3)
    assert marked(run_dir), "left running: the job outlives the app's engine"
    # A later engine (the next start) picks it up; "cancel them" then stops it.
    again = service.__class__(service._repo, service._paths, service._settings, gpu_count=0)
    again.start()
    assert make_close_guard(again, answer(CANCEL))() is True
    assert asked == [1, 1, 1]
    assert wait_for(lambda: service.get(record.id).state is JobState.CANCELLED, timeout=10)
    assert wait_for(lambda: marked(run_dir) == [], timeout=5)
    # Nothing runs any more: the window closes without a question.
    assert make_close_guard(again, answer(STAY))() is True
    assert asked == [1, 1, 1]
    again.shutdown()


def test_a_million_line_flood_keeps_the_window_responsive(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    tab = _tab(qtbot, service)
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    probe = QTimer()
    probe.timeout.connect(tick)
    probe.start(10)
    flood = "import sys\nw = sys.stdout.write\nfor i in range(1_000_000):\n    w(f'line {i}\\n')"
    record = service.submit(JobSpec(name="flood", argv=(sys.executable, "-c", flood)))
    wait_final(qtbot, service, record.id, timeout=120000)
    qtbot.waitUntil(lambda: "line 999999" in tab.details.log_view.plain_text()[-200:], timeout=20000)
    probe.stop()
    view = tab.details.log_view
    assert view.line_count() <= view.text.maximumBlockCount()
    assert view.total_hidden > 0 and "lines not shown" in view.plain_text()
    assert len(gaps) > 50
    # Responsiveness, not speed: the loop kept turning (the benchmark measures the real lag).
    assert max(gaps) < 1.0, f"event loop stalled for {max(gaps):.2f} s"
    run_dir = service.run_dir(record.id)
    assert run_dir is not None
    with (run_dir / "output.log").open("rb") as fh:
        assert sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) >= 1_000_000


def test_a_thousand_progress_events_read_nothing_from_the_store_and_repaint_one_cell(
    make_engine, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.ui.jobs.table_model import PROGRESS_ROLE, progress_text

    service = make_engine()
    in_slots: list[str] = []  # statements run by the progress slots themselves
    during_flood: list[str] = []  # everything from the first event to the last (500 ms syncs too)
    in_progress_slots = [False]
    events: list[dict] = []

    def trace(sql: str) -> None:
        if in_progress_slots[0]:
            in_slots.append(sql)
        if events and len(events) < 1000:
            during_flood.append(sql)

    # Slots run in the order they were connected: these two bracket every view's progress slot.
    service.sig_job_progress.connect(lambda _id, event: in_progress_slots.__setitem__(0, True))
    tab = _tab(qtbot, service)
    service.sig_job_progress.connect(
        lambda _id, event: (events.append(event), in_progress_slots.__setitem__(0, False))
    )
    changed_cells: list[tuple[int, int, int, int]] = []
    tab.model.dataChanged.connect(
        lambda a, b, _roles: changed_cells.append((a.row(), a.column(), b.row(), b.column()))
    )
    service._repo.connection.set_trace_callback(trace)
    script = (
        "import json, time\n"
        "for i in range(1, 1001):\n"
        "    event = {'type': 'progress', 'stage': 'Calibrating', 'fraction': i / 1000, 'eta_s': 1000 - i}\n"
        "    print('@@MSQUANT-EVENT@@ ' + json.dumps(event), flush=True)\n"
        "print('all sent', flush=True)\n"
        "time.sleep(60)\n"
    )
    record = service.submit(JobSpec(name="progress", argv=(sys.executable, "-c", script)))
    try:
        qtbot.waitUntil(lambda: len(events) == 1000, timeout=30_000)
    finally:
        service._repo.connection.set_trace_callback(None)
    assert in_slots == [], f"{len(in_slots)} store statements in progress slots: {in_slots[:5]}"
    # Nothing else reads per event either (a job-changed signal per event would read ≥ 1,000 times).
    assert len(during_flood) < 100, f"{len(during_flood)} statements during the flood: {during_flood[:5]}"
    assert service.get(record.id).state is JobState.RUNNING
    last = events[-1]
    assert last["fraction"] == 1.0
    cell = tab.proxy.index(0, Column.PROGRESS)
    assert cell.data(PROGRESS_ROLE) == (1.0, progress_text(last)) == (1.0, "Calibrating · 100% · ETA 0.0 s")
    progress_cells = [c for c in changed_cells if c == (0, Column.PROGRESS, 0, Column.PROGRESS)]
    assert len(progress_cells) >= 999  # one per distinct event (the first may come with the row)
    assert tab.details.progress.isVisible() and tab.details.progress.value() == 1000
    assert tab.details.progress.format() == "Calibrating · 100% · ETA 0.0 s"
    service.cancel(record.id)
    assert wait_final(qtbot, service, record.id).state is JobState.CANCELLED
    qtbot.waitUntil(lambda: cell.data(PROGRESS_ROLE) is None and not tab.details.progress.isVisible())
