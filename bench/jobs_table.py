"""The Jobs table with a long history: open time with 10,000 past jobs, and the cost of adding a
job (store insert + queue decision + table row) as the history grows."""

from __future__ import annotations

import json
import statistics
import time

from jobs_common import app, engine

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.ui.jobs_tab import JobsTab


def seed(service, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` finished jobs written the fast way (one transaction), shaped like real ones."""
    conn = service._repo.connection
    spec = json.dumps(JobSpec(name="past run", argv=("python", "train.py", "--lr", "3e-4")).to_dict())
    rows = [
        (
            "past run",
            "command",
            "local",
            spec,
            "COMPLETED" if i % 7 else "FAILED",
            "2026-11-01T10:00:00+00:00",
            "2026-11-01T10:00:01+00:00",
            "2026-11-01T10:05:00+00:00",
            0 if i % 7 else 1,
        )
        for i in range(count)
    ]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (name, kind, target, spec, state, created_at, started_at, finished_at, exit_code)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")


def open_table_ms(service, qapp) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    tab = JobsTab(service)
    tab.resize(1200, 800)
    tab.show()
    qapp.processEvents()
    elapsed = (time.perf_counter() - t0) * 1000
    tab.close()
    tab.deleteLater()
    qapp.processEvents()
    return elapsed


def add_cost_ms(service, tab, qapp, n: int = 30) -> float:  # type: ignore[no-untyped-def]
    """Median time of submit() while the only slot is busy (so it queues: no process start)."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        service.submit(JobSpec(name="queued", argv=("true",)))
        qapp.processEvents()
        samples.append((time.perf_counter() - t0) * 1000)
    for record in service._repo.queued():
        service.cancel(record.id)
    return statistics.median(samples)


def main() -> None:
    qapp = app()
    service, _ = engine(max_jobs=1)
    blocker = service.submit(JobSpec(name="holds the slot", argv=("sleep", "600")))
    seed(service, 10_000)
    service.sync()  # take in the seeded history once (as at start-up), before timing
    opens = [open_table_ms(service, qapp) for _ in range(5)]
    print(
        f"open the Jobs tab with {service._repo.count():,} jobs: median {statistics.median(opens):.0f} ms (min {min(opens):.0f}, max {max(opens):.0f})"
    )
    tab = JobsTab(service)
    tab.show()
    total = service._repo.count()
    for target in (10_000, 25_000, 50_000):
        if total < target:
            seed(service, target - total)
            total = target
            service.sync()
            tab.model.load()
        print(f"add a job with {total:,} in the history: median {add_cost_ms(service, tab, qapp):.2f} ms")
    service.cancel(blocker.id)
    while not service.get(blocker.id).state.is_final:
        qapp.processEvents()
        time.sleep(0.01)
    assert service.get(blocker.id).state is JobState.CANCELLED
    service.shutdown()


if __name__ == "__main__":
    main()
