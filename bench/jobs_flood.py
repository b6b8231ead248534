"""1M-line log flood through supervisor -> JobService -> Jobs tab log view.

Prints the max event-loop lag (a 10 ms probe timer's worst extra delay) and the total time, next to
the time it takes just to read the same raw stream from a pipe and throw it away.
"""

from __future__ import annotations

import subprocess
import sys
import time

from jobs_common import app, engine

from msquant_desktop.domain.jobs import JobSpec
from msquant_desktop.ui.jobs_tab import JobsTab

LINES = 1_000_000
FLOOD = f"import sys\nw = sys.stdout.write\nfor i in range({LINES}):\n    w(f'line {{i}} of the flood, some padding text\\n')"


def raw_read_seconds() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", FLOOD], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    while proc.stdout.read(65536):
        pass
    proc.wait()
    return time.perf_counter() - start


def flood_once() -> tuple[float, float]:
    qapp = app()
    service, _paths = engine()
    tab = JobsTab(service)
    tab.resize(1200, 800)
    tab.show()
    qapp.processEvents()
    worst = [0.0]
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        worst[0] = max(worst[0], now - last[0] - 0.010)
        last[0] = now

    from PySide6.QtCore import QTimer

    probe = QTimer()
    probe.timeout.connect(tick)
    start = time.perf_counter()
    record = service.submit(JobSpec(name="flood", argv=(sys.executable, "-c", FLOOD)))
    last[0] = time.perf_counter()
    probe.start(10)
    marker = f"line {LINES - 1} of"
    while True:
        qapp.processEvents()
        if service.get(record.id).state.is_final and marker in tab.details.log_view.plain_text()[-300:]:
            break
        time.sleep(0.001)
    total = time.perf_counter() - start
    probe.stop()
    service.shutdown()
    tab.close()
    return total, worst[0]


def main() -> None:
    raw = [raw_read_seconds() for _ in range(3)]
    runs = [flood_once() for _ in range(3)]
    best_raw = min(raw)
    for total, lag in runs:
        print(
            f"flood {LINES:,} lines: total {total:.2f} s (raw read {best_raw:.2f} s, ratio {total / best_raw:.2f}), max event-loop lag {lag * 1000:.0f} ms"
        )
    print(f"raw stream read alone: {', '.join(f'{r:.2f}' for r in raw)} s")


if __name__ == "__main__":
    main()
