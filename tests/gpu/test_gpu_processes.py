"""Per-process CPU% and RSS, each job's process tree, and "Terminate…" — on real processes read from
/proc by the GPU service's sampler thread (GPUs from the fake NVML: no GPU on this machine)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from msquant_desktop.domain.gpu import GpuReading, ProcessDetails
from msquant_desktop.gpu.fake_nvml import FakeNvml
from msquant_desktop.procs.usage import CpuMeter
from msquant_desktop.ui.gpus.tables import ProcessTableModel
from tests.gpu.procs_helpers import kill_quietly, marker, running, spawn_reparented
from tests.gpu.test_gpus_tab import make_tab  # noqa: F401 - the fixture

BUSY = "import time\nx = bytearray(64 * 2**20)\nwhile True:\n    pass\n"


def _rows_of(model, job_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    """This test's job's rows (other marked processes of this user may be running too)."""
    return [r for r in range(model.rowCount()) if model.job_id(r) == job_id]


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_cpu_meter_says_nothing_before_it_can_compare_then_a_busy_process_is_busy() -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        meter = CpuMeter()
        first = meter.measure([busy.pid, 999_999_999])
        assert list(first) == [busy.pid] and first[busy.pid][0] is None  # first look: unknown, not 0
        time.sleep(1.0)
        percent, rss, _started = meter.measure([busy.pid])[busy.pid]
        assert percent is not None and 5.0 < percent <= 205.0  # a spinning loop on a shared machine
        assert abs(rss / 2**20 - _rss_mib(busy.pid)) < 8 and rss > 64 * 2**20
    finally:
        busy.kill()
        busy.wait()


def test_process_rows_show_cpu_and_rss_and_job_trees(qtbot, make_tab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    worker = spawn_reparented(
        tmp_path, marker(9, tmp_path / "s.sqlite3", tmp_path / "runs" / "9"), with_child=True
    )
    try:
        fake = FakeNvml("two_gpus")
        fake.attach_process(1, busy.pid, 2**30)
        service, tab = make_tab(fake)
        model = tab.process_model
        qtbot.waitUntil(lambda: model.rowCount() == 1 and model.cell(0, 4).endswith("%"), timeout=15_000)
        assert model.HEADERS[4:6] == ("CPU", "RSS")
        assert float(model.cell(0, 4).rstrip("%")) > 5
        assert abs(float(model.cell(0, 5).split()[0].replace(",", "")) - _rss_mib(busy.pid)) < 8
        jobs = tab.job_process_model
        qtbot.waitUntil(lambda: len(_rows_of(jobs, 9)) == 2, timeout=15_000)
        first, second = _rows_of(jobs, 9)
        assert second == first + 1  # a tree: the child right below its parent
        assert [jobs.cell(r, 1) for r in (first, second)] == [str(worker.pid), str(worker.child_pid)]
        assert jobs.cell(first, 0) == "job 9" and jobs.cell(second, 0) == ""  # the job heads its tree
        assert jobs.cell(second, 4).startswith(f"└ {sys.executable}") and jobs.cell(second, 3).endswith("MiB")
    finally:
        kill_quietly([busy.pid, *worker.pids()])
        busy.wait()


def test_terminate_asks_then_ends_the_tree_with_term_grace_kill(qtbot, make_tab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    worker = spawn_reparented(
        tmp_path,
        marker(4, tmp_path / "s.sqlite3", tmp_path / "runs" / "4"),
        ignore_term=True,
        with_child=True,
    )
    try:
        service, tab = make_tab(FakeNvml("two_gpus"))
        tab.grace_s = lambda: 0.5
        tab.details.setCurrentWidget(tab.job_process_table)
        qtbot.waitUntil(lambda: len(_rows_of(tab.job_process_model, 4)) == 2, timeout=15_000)
        assert not tab.terminate_button.isEnabled()  # nothing selected
        tab.job_process_table.selectRow(_rows_of(tab.job_process_model, 4)[0])
        assert tab.terminate_button.isEnabled()
        asked: list[str] = []
        answer = [False]
        tab.confirm = lambda _parent, text: asked.append(text) or answer[0]
        tab.terminate_button.click()
        assert len(asked) == 1 and f"End process {worker.pid} and all its children?" in asked[0]
        assert "SIGKILL after 0.5 s" in asked[0]
        time.sleep(0.3)
        assert running(worker.pid) and running(worker.child_pid)  # answered No: nothing touched
        answer[0] = True
        with qtbot.waitSignal(service.sig_terminated, timeout=15_000) as done:
            tab.terminate_button.click()
        assert done.args[0] == worker.pid
        assert not running(worker.pid) and not running(worker.child_pid)
        # The worker ignores SIGTERM: the grace ran out and SIGKILL ended it, as a job's cancel does.
        assert (
            "needed SIGKILL" in tab.terminate_status.text() and "2 process(es)" in tab.terminate_status.text()
        )
    finally:
        kill_quietly(worker.pids())


def test_terminate_is_offered_only_for_our_own_processes(qapp) -> None:  # type: ignore[no-untyped-def]
    model = ProcessTableModel()
    mine = ProcessDetails(100, 0, None, __import__("getpass").getuser(), "python", 1, None, 0.0, 1, 12.5)
    theirs = ProcessDetails(101, 0, None, "someone-else", "python", 1, None, 0.0, 1, 12.5)
    unknown_start = ProcessDetails(102, 0, None, mine.user, "python", 1, None)
    model.update(GpuReading(0.0, (), None, processes=(mine, theirs, unknown_start)))
    assert model.target(0) is not None and model.target(0).pid == 100  # type: ignore[union-attr]
    assert model.target(1) is None and model.target(2) is None
