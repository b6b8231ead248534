"""The planner's worker: newest job of a kind wins, results arrive on the GUI thread, bad input is a line."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QThread

from msquant_desktop.plan.checkpoint import PlanInputError
from msquant_desktop.services.plan_runner import PlanRunner


def test_a_superseded_job_is_dropped_and_results_come_back_on_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    runner = PlanRunner()
    ran: list[str] = []
    gate = threading.Event()
    done: list[tuple[int, str, object, bool]] = []
    failed: list[tuple[str, str]] = []
    runner.sig_done.connect(
        lambda t, k, r: done.append((t, k, r, QThread.currentThread() is runner.thread()))
    )
    runner.sig_failed.connect(lambda _t, k, m: failed.append((k, m)))

    def slow() -> str:
        gate.wait(5)
        ran.append("slow")
        return "slow"

    runner.submit("other", slow)  # holds the one pool thread
    time.sleep(0.05)
    first = runner.submit("rows", lambda: ran.append("first") or "first")
    last = runner.submit("rows", lambda: ran.append("last") or "last")
    bad = runner.submit("memory", lambda: (_ for _ in ()).throw(PlanInputError("no config.json in /x\nmore")))
    gate.set()
    assert runner.wait_idle(10_000)
    qtbot.waitUntil(lambda: len(done) == 2 and len(failed) == 1, timeout=5_000)
    assert ran == ["slow", "last"]  # "first" was superseded before it started
    assert [(k, r) for _t, k, r, _main in done] == [("other", "slow"), ("rows", "last")]
    assert all(on_main for *_x, on_main in done)
    assert runner.latest("rows") == last != first and runner.latest("memory") == bad
    assert failed == [("memory", "no config.json in /x")]  # one line
    runner.shutdown()
