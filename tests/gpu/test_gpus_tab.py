"""The GPUs tab on real widgets (offscreen), fed by the GPU service's thread and the fake NVML."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from msquant_desktop.domain.gpu import DoctorReport
from msquant_desktop.gpu.fake_nvml import FAKE_ENV, FakeNvml
from msquant_desktop.services.gpu_service import GpuService
from msquant_desktop.ui.gpus_tab import GpusTab
from tests.gpu.procs_helpers import Spawned, kill_quietly, marker, running, spawn_reparented

NO_LIBRARY = "No NVIDIA GPU found: NVML library not found"


@pytest.fixture
def make_tab(qtbot) -> Iterator:  # type: ignore[no-untyped-def]
    services: list[GpuService] = []

    def make(fake: FakeNvml, interval_s: float = 0.25) -> tuple[GpuService, GpusTab]:
        service = GpuService(interval_s=interval_s, history_seconds=600, nvml=fake)
        services.append(service)
        tab = GpusTab(service)
        qtbot.addWidget(tab)
        tab.resize(1200, 800)
        tab.show()
        qtbot.waitExposed(tab)
        service.start()
        return service, tab

    yield make
    for service in services:
        service.shutdown()


def _wait_samples(qtbot, service: GpuService, n: int) -> None:  # type: ignore[no-untyped-def]
    target = service.samples_taken + n
    qtbot.waitUntil(lambda: service.samples_taken >= target, timeout=15_000)


def test_two_gpus_fill_plots_and_tables_off_the_gui_thread(qtbot, make_tab) -> None:  # type: ignore[no-untyped-def]
    fake = FakeNvml("two_gpus")
    sampler_threads: set[int] = set()
    original = fake.nvmlDeviceGetUtilizationRates

    def recording(gpu):  # type: ignore[no-untyped-def]
        sampler_threads.add(threading.get_ident())
        return original(gpu)

    fake.nvmlDeviceGetUtilizationRates = recording  # type: ignore[method-assign]
    service, tab = make_tab(fake)
    _wait_samples(qtbot, service, 3)
    assert (
        sampler_threads and threading.get_ident() not in sampler_threads
    )  # NVML never runs on the GUI thread

    assert "2 NVIDIA GPU(s), driver 550.54.15 (fake)" in tab.status.text()
    assert tab.selector.count() == 2 and tab.selector.isVisibleTo(tab)
    assert tab.gpu_model.rowCount() == 2
    assert tab.gpu_model.cell(1, 8) == "power cap, thermal (software)" and tab.gpu_model.cell(0, 8) == "none"
    assert tab.gpu_model.cell(0, 3) == "0.4 / 80 GiB (0%)" and "/ 700 W" in tab.gpu_model.cell(0, 5)

    plots = tab.plots
    tab.window_choice.setCurrentIndex(0)  # 1 min: every sample moves the curves by pixels, so each redraws
    _wait_samples(qtbot, service, 3)
    assert plots.gpu_view.isVisibleTo(tab) and len(plots.overview_curves) == 2
    x, y = plots.gpu_curves[0].getData()
    assert len(x) >= 3 and x[-1] == 0.0 and (x[:-1] < 0).all()  # newest at 0, seconds ago to the left
    assert len(plots.host_curves[0].getData()[0]) >= 3
    assert plots.power_limit_line.isVisible() and plots.power_limit_line.value() == 700.0
    assert service.summary.startswith("GPU: 2 · ") and service.summary.endswith("throttled")

    tab.selector.setCurrentIndex(1)
    tab.window_choice.setCurrentIndex(2)  # 1 h
    assert plots.gpu_plots[0].viewRange()[0] == pytest.approx([-3600, 0])
    # Hidden: samples keep coming, redraws stop; shown again: it catches up at once.
    tab.hide()
    refreshes = plots.refreshes
    _wait_samples(qtbot, service, 2)
    assert tab.redraws_paused and plots.refreshes == refreshes
    tab.show()
    assert plots.refreshes == refreshes + 1
    # 1 h in a chart of a few hundred pixels: a redraw only when a pixel's worth of time has passed.
    assert 3600 / plots.chart_width_px() > 2 * service.interval_s
    before = plots.refreshes
    _wait_samples(qtbot, service, 2)
    assert plots.refreshes == before


def test_without_nvml_the_tab_says_so_and_plots_the_host(qtbot, make_tab) -> None:  # type: ignore[no-untyped-def]
    service, tab = make_tab(FakeNvml("no_library"))
    _wait_samples(qtbot, service, 2)
    assert NO_LIBRARY in tab.status.text()
    assert not tab.plots.gpu_view.isVisibleTo(tab) and not tab.selector.isVisibleTo(tab)
    assert tab.plots.host_view.isVisibleTo(tab)
    # RAM %: a redraw waits for a pixel's worth of time, so two samples closer than that draw once.
    qtbot.waitUntil(lambda: len(tab.plots.host_curves[1].getData()[1]) >= 2, timeout=5_000)
    assert tab.gpu_model.rowCount() == 0 and service.summary == "GPU: none found"


def test_a_gpu_lost_mid_run_shows_as_not_answering(qtbot, make_tab) -> None:  # type: ignore[no-untyped-def]
    service, tab = make_tab(FakeNvml("failing_gpu"))
    qtbot.waitUntil(
        lambda: tab.gpu_model.rowCount() == 2 and "GPU is lost" in tab.gpu_model.cell(1, 8), timeout=15_000
    )
    assert tab.gpu_model.cell(1, 2) == "—" and tab.gpu_model.cell(0, 2) != "—"
    assert "1 not answering" in tab.status.text() and "1 lost" in service.summary


def test_processes_show_their_job_and_link_to_it(qtbot, make_tab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker = spawn_reparented(tmp_path, marker(7, tmp_path / "store.sqlite3", tmp_path / "runs" / "7"))
    try:
        fake = FakeNvml("two_gpus")
        fake.attach_process(0, worker.pid, 3 * 2**30)
        service, tab = make_tab(fake)
        qtbot.waitUntil(lambda: tab.process_model.rowCount() == 1, timeout=15_000)
        model = tab.process_model
        assert model.cell(0, 0) == str(worker.pid) and model.cell(0, 2) == "0"
        assert model.cell(0, 3) == "3,072 MiB" and model.cell(0, 6) == "job 7"
        assert "python" in model.cell(0, 7) and model.cell(0, 1) not in ("", "?")
        with qtbot.waitSignal(tab.sig_job_activated) as activated:
            tab.process_table.doubleClicked.emit(model.index(0, 6))
        assert activated.args == [7]
    finally:
        kill_quietly(worker.pids())


def test_doctor_panel_asks_before_cleaning_and_cleans_only_what_it_listed(  # type: ignore[no-untyped-def]
    qtbot, make_tab, tmp_path: Path
) -> None:
    orphan: Spawned = spawn_reparented(tmp_path, marker(1, tmp_path / "gone.sqlite3", tmp_path / "r"))
    bystander = spawn_reparented(tmp_path, None)
    try:
        service, tab = make_tab(FakeNvml("two_gpus"))
        _wait_samples(qtbot, service, 1)
        questions: list[str] = []
        answer = {"yes": False}
        tab.doctor.confirm = lambda parent, text: questions.append(text) or answer["yes"]
        tab.doctor.grace_s = 1.0
        with qtbot.waitSignal(service.sig_doctor_report, timeout=15_000):
            tab.doctor.run_button.click()
        report = tab.doctor.report
        assert report is not None
        texts = [tab.doctor.findings.item(i).text() for i in range(tab.doctor.findings.count())]
        assert any(f"pid {orphan.pid}" in t and "store of job 1 no longer exists" in t for t in texts)
        assert any(t.startswith("Throttling: GPU 1") for t in texts)
        assert any(t.startswith("Memory: GPU 1 has") for t in texts)
        assert all(f"pid {bystander.pid}" not in t for t in texts)
        # Only this test's orphan may be cleaned: other marked processes on this machine are not ours.
        mine = tuple(f for f in report.findings if f.pid == orphan.pid or f.pid is None)
        tab.doctor.report = DoctorReport(mine, report.gpu_status)
        tab.doctor.clean_button.setEnabled(True)

        tab.doctor.clean_button.click()  # the user says Cancel
        assert (
            len(questions) == 1
            and f"pid {orphan.pid}" in questions[0]
            and "SIGKILL after 1 s" in questions[0]
        )
        assert "nothing was touched" in tab.doctor.status.text() and running(orphan.pid)

        answer["yes"] = True
        with qtbot.waitSignal(service.sig_cleanup_finished, timeout=15_000) as done:
            tab.doctor.clean_button.click()
        assert [o.pid for o in done.args[0]] == [orphan.pid]
        assert not running(orphan.pid) and running(bystander.pid)
        assert f"pid {orphan.pid}: ended 1 process(es)" in tab.doctor.status.text()
    finally:
        kill_quietly([*orphan.pids(), *bystander.pids()])


def test_interval_has_a_floor_and_settings_apply(qapp) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="at least 0.25 s"):
        GpuService(interval_s=0.1, nvml=FakeNvml("two_gpus"))
    service = GpuService(interval_s=1.0, history_seconds=3600, nvml=FakeNvml("two_gpus"))
    assert service.history.capacity == 3600
    service.set_interval(0.5)
    assert service.history.capacity == 7200


def test_main_window_shows_the_gpu_summary(monkeypatch, app_paths, qtbot) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(FAKE_ENV, "eight_gpus")
    from msquant_desktop.app import create_main_window, create_services

    services = create_services(app_paths)
    try:
        window = create_main_window(services)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.gpu_status.text().startswith("GPU: 8 · "), timeout=15_000)
        window.show_tab("GPUs")
        tab = window.tab_widget.currentWidget()
        qtbot.waitUntil(lambda: tab.gpu_model.rowCount() == 8, timeout=15_000)
        window.close()
    finally:
        services.shutdown()
