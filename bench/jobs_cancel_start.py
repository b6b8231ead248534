"""Click -> job process running, and cancel -> every process of the job gone.

Cooperative tree: a job with three sleeping children (one of them escaped with setsid).
TERM-ignoring tree: the same with every process ignoring SIGTERM; reported as time minus the grace.
"""

from __future__ import annotations

import sys
import time

from jobs_common import app, engine, summary

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.procs.identity import alive
from msquant_desktop.procs.tree import descendants

RUNS = 15
GRACE = 0.5
TREE = (
    "import signal, subprocess, sys, time\n"
    "IGNORE = {ignore}\n"
    "if IGNORE: signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = [sys.executable, '-c', 'import signal, time\\nif %r: signal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(300)' % IGNORE]\n"
    "subprocess.Popen(child); subprocess.Popen(child); subprocess.Popen(['setsid'] + child)\n"
    "time.sleep(0.3)\n"
    "print('tree up', flush=True)\n"
    "time.sleep(300)\n"
)


def wait(qapp, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        qapp.processEvents()
        time.sleep(0.0005)


def start_latency(service, qapp) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        record = service.submit(JobSpec(name="start", argv=("sleep", "30")))
        wait(qapp, lambda r=record: service.get(r.id).state is JobState.RUNNING)
        out.append(time.perf_counter() - t0)
        service.cancel(record.id)
        wait(qapp, lambda r=record: service.get(r.id).state.is_final)
    return out


def cancel_latency(service, qapp, ignore: bool) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(RUNS if not ignore else 5):
        seen: list[str] = []
        service.sig_log_text.connect(lambda j, t, e, seen=seen: seen.append(t))
        record = service.submit(JobSpec(name="tree", argv=(sys.executable, "-c", TREE.format(ignore=ignore))))
        wait(qapp, lambda seen=seen: any("tree up" in t for t in seen))
        service.sig_log_text.disconnect()
        sup = service.get(record.id).pid
        tree = descendants(sup)
        assert len(tree) >= 4, tree
        t0 = time.perf_counter()
        service.cancel(record.id)
        while any(alive(p) for p in tree):
            time.sleep(0.0002)
        out.append(time.perf_counter() - t0 - (GRACE if ignore else 0.0))
        wait(qapp, lambda r=record: service.get(r.id).state.is_final)
    return out


def main() -> None:
    qapp = app()
    service, _ = engine(max_jobs=1, grace=GRACE)
    print(f"click -> job process running: {summary(start_latency(service, qapp))}")
    print(
        f"cancel -> all descendants gone (cooperative, 4 processes incl. a setsid escapee): {summary(cancel_latency(service, qapp, False))}"
    )
    print(
        f"cancel -> all gone (TERM-ignoring), time beyond the {GRACE} s grace: {summary(cancel_latency(service, qapp, True))}"
    )
    service.shutdown()


if __name__ == "__main__":
    main()
