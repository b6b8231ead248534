"""1M-line log flood through supervisor -> JobService -> the visible Jobs tab log view.

Each run measures, side by side in one process: a raw read of the same stream (the flood's child
writing into a pipe that is read and thrown away) and the flood through the app, with the lag probe
of the tests (a 2 ms precise timer on the GUI thread; its worst lateness is the longest the event
loop was held up) running from the submit until the last line is on screen.  Raw reads and floods
alternate, so both see the same machine load; the app's garbage-collection policy is installed as
in the app.  A short job runs first in each run, so the flood finds the Jobs tab as a user would
(table and log already painted once); the submit itself is timed apart from the flood (the launch
is the subject of the lag tests).  The idle probe at the start is the machine's noise floor.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from jobs_common import app, engine

from msquant_desktop.domain.jobs import JobSpec
from msquant_desktop.services.gc_policy import install_main_thread_gc
from msquant_desktop.ui.jobs_tab import JobsTab
from tests.lagprobe import LagProbe, spin_for, spin_until

LINES = 1_000_000
FLOOD = f"import sys\nw = sys.stdout.write\nfor i in range({LINES}):\n    w(f'line {{i}} of the flood, some padding text\\n')"
LAST_LINE = f"line {LINES - 1} of the flood, some padding text"


def raw_read_seconds() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", FLOOD], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    while proc.stdout.read(65536):
        pass
    proc.wait()
    return time.perf_counter() - start


def idle_probe(seconds: float = 2.0) -> LagProbe:
    """The same probe with nothing to do: the machine's own noise floor."""
    with LagProbe() as probe:
        spin_for(seconds)
    return probe


def flood_once() -> tuple[float, float, LagProbe]:
    qapp = app()
    install_main_thread_gc(qapp)
    service, _paths = engine()
    tab = JobsTab(service)
    tab.resize(1200, 800)
    tab.show()
    qapp.processEvents()
    view = tab.details.log_view
    # Warm up: a first job turns the empty state into the table and log (one full repaint, fonts
    # and glyphs cached) -- a cost of the first job ever, not of a flood.
    warm = service.submit(JobSpec(name="warm-up", argv=(sys.executable, "-c", "print('warm')")))
    spin_until(lambda: view.last_line() == "warm" and service.get(warm.id).state.is_final, timeout_s=30)
    spin_for(0.3)
    probe = LagProbe()
    start = time.perf_counter()
    record = service.submit(JobSpec(name="flood", argv=(sys.executable, "-c", FLOOD)))
    tab.select_job(record.id)  # the user clicks the new job (only the first job is selected by itself)
    submit_s = time.perf_counter() - start  # the launch itself (measured by the tests' lag test b)
    probe.start()
    done = spin_until(
        lambda: view.last_line() == LAST_LINE and service.get(record.id).state.is_final, timeout_s=300
    )
    total = time.perf_counter() - start
    probe.stop()
    assert done, "the flood did not finish"
    service.shutdown()
    tab.close()
    tab.deleteLater()
    qapp.processEvents()
    return total, submit_s, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ratios: list[float] = []
    lags: list[float] = []
    app()
    print(f"idle event loop (noise floor): {idle_probe().summary()}", flush=True)
    for run in range(1, args.runs + 1):
        raw = raw_read_seconds()
        total, submit_s, probe = flood_once()
        ratios.append(total / raw)
        lags.append(probe.max_lag_ms)
        print(
            f"run {run}: flood {LINES:,} lines {total:.2f} s, raw read {raw:.2f} s, ratio {total / raw:.2f} "
            f"(submit {submit_s * 1000:.0f} ms); after the submit: {probe.summary()}",
            flush=True,
        )
    print(
        f"median ratio {statistics.median(ratios):.2f} (target <= 1.5), "
        f"max lag median {statistics.median(lags):.1f} ms, worst {max(lags):.1f} ms (target < 16)"
    )


if __name__ == "__main__":
    main()
