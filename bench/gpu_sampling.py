"""GPU tab cost with 8 fake GPUs at 1 s and one hour of history.

Prints:
  * one plot refresh (setData of all curves + the repaint of the three plot views), median and p95;
  * sampling + plotting CPU time per tick, as % of one core at a 1 s interval;
  * the same measured end to end: the real GpuService thread + a visible GpusTab for DURATION s;
  * memory growth (RSS and Python heap) over 600 more ticks once the buffers are full.

Run: QT_QPA_PLATFORM=offscreen PYTHONPATH=. .venv/bin/python bench/gpu_sampling.py [DURATION]
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
import tracemalloc

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import psutil
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from msquant_desktop.gpu.fake_nvml import FakeNvml
from msquant_desktop.gpu.history import GpuHistory
from msquant_desktop.gpu.monitor import GpuMonitor
from msquant_desktop.services.gpu_service import GpuService
from msquant_desktop.ui.gpus.plots import GpuPlots
from msquant_desktop.ui.gpus_tab import GpusTab

HOUR = 3600
GPUS = 8


def fake_with_processes() -> FakeNvml:
    fake = FakeNvml("eight_gpus")
    for i in range(GPUS):  # a process per GPU, so the per-tick process lookup is paid too
        fake.attach_process(i, os.getpid(), 4 * 2**30)
    return fake


def fill(history: GpuHistory, monitor: GpuMonitor, clock: list[float]) -> None:
    for _ in range(HOUR):
        clock[0] += 1.0
        history.append(monitor.sample())


def bench_synchronous(app: QApplication) -> None:
    clock = [time.time() - HOUR]
    fake = fake_with_processes()
    fake._clock = lambda: clock[0]
    monitor = GpuMonitor(fake, clock=lambda: clock[0])
    history = GpuHistory(HOUR)
    plots = GpuPlots()
    plots.resize(1280, 520)
    plots.set_has_gpus(True)
    plots.show()
    fill(history, monitor, clock)
    for _ in range(20):  # warm up (first paints, font caches)
        plots.refresh(history, 0, HOUR, 1.0, 700.0)
        app.processEvents()

    print(f"history: {GPUS} GPUs x {HOUR} samples, {history.nbytes / 2**20:.2f} MiB of ring buffers")
    for window_s, label in ((HOUR, "1 h"), (60, "1 min")):
        refresh_ms, refresh_cpu_ms, tick_cpu = [], [], []
        for i in range(300):
            cpu0 = time.process_time()
            clock[0] += 1.0
            history.append(monitor.sample())
            t0, c0 = time.perf_counter(), time.process_time()
            plots.refresh(history, i % GPUS, window_s, 1.0, 700.0)
            for view in (plots.gpu_view, plots.overview_view, plots.host_view):
                view.viewport().repaint()  # paint now, all of it, so the figure includes the drawing
            refresh_ms.append((time.perf_counter() - t0) * 1000)
            refresh_cpu_ms.append((time.process_time() - c0) * 1000)
            tick_cpu.append(time.process_time() - cpu0)
        refresh_ms.sort()
        print(
            f"[{label} window] one refresh of all 6 charts / 14 curves (setData + full repaint): "
            f"wall median {statistics.median(refresh_ms):.2f} ms, p95 {refresh_ms[int(0.95 * len(refresh_ms))]:.2f} ms; "
            f"CPU median {statistics.median(refresh_cpu_ms):.2f} ms = {statistics.median(refresh_cpu_ms) / 6:.2f} ms per chart"
        )
        per_tick = statistics.mean(tick_cpu)
        print(
            f"[{label} window] sampling + history + plotting per tick: {per_tick * 1000:.2f} ms CPU "
            f"= {per_tick * 100:.2f}% of one core at 1 s"
        )

    # Memory once the buffers are full.  tracemalloc only sees allocations made after it starts, so
    # the first 600 ticks (with tracing on) let every curve swap its views for its own arrays; the
    # growth is measured over the next 600, in steady state.
    def ticks(n: int) -> None:
        for i in range(n):
            clock[0] += 1.0
            history.append(monitor.sample())
            plots.refresh(history, i % GPUS, HOUR, 1.0, 700.0)
            app.processEvents()
        gc.collect()

    tracemalloc.start()
    ticks(600)
    rss0 = psutil.Process().memory_info().rss
    heap0 = tracemalloc.get_traced_memory()[0]
    ticks(600)
    heap1 = tracemalloc.get_traced_memory()[0]
    rss1 = psutil.Process().memory_info().rss
    tracemalloc.stop()
    print(
        f"memory growth over 600 ticks in steady state (buffers full): Python heap {(heap1 - heap0) / 1024:+.1f} KiB, "
        f"RSS {(rss1 - rss0) / 1024:+.0f} KiB"
    )
    plots.close()


def bench_end_to_end(app: QApplication, duration_s: float, window_index: int) -> None:
    service = GpuService(interval_s=1.0, history_seconds=HOUR, nvml=fake_with_processes())
    # Pre-fill an hour so the plots draw full buffers from the first tick.
    clock = [time.time() - HOUR]
    filler_fake = fake_with_processes()
    filler_fake._clock = lambda: clock[0]
    fill(service.history, GpuMonitor(filler_fake, clock=lambda: clock[0]), clock)
    tab = GpusTab(service)
    tab.resize(1280, 800)
    tab.window_choice.setCurrentIndex(window_index)
    tab.show()
    service.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # settle
        app.processEvents()
        time.sleep(0.01)
    start_samples, start_refreshes = service.samples_taken, tab.plots.refreshes
    cpu0, wall0 = time.process_time(), time.monotonic()
    QTimer.singleShot(round(duration_s * 1000), app.quit)
    app.exec()  # the real event loop, idle between ticks
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    samples, refreshes = service.samples_taken - start_samples, tab.plots.refreshes - start_refreshes
    service.shutdown()
    tab.close()
    print(
        f"end to end ({wall:.0f} s, {samples} samples, {refreshes} refreshes, visible tab, "
        f"{tab.window_choice.currentText()} window): "
        f"process CPU {cpu:.2f} s = {100 * cpu / wall:.2f}% of one core"
    )


def main() -> int:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    bench_synchronous(app)
    bench_end_to_end(app, duration, 2)  # 1 h: the worst case
    bench_end_to_end(app, duration, 0)  # 1 min: the default
    return 0


if __name__ == "__main__":
    sys.exit(main())
