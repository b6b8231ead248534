"""Self-test step: a short command job runs through the real supervisor and ends COMPLETED."""

from __future__ import annotations

import time

from PySide6.QtCore import QCoreApplication, QEventLoop

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.services.protocols import LocalJobs

SELF_TEST_TIMEOUT_S = 20.0


def run_job_self_test(jobs: LocalJobs) -> str | None:
    record = jobs.submit(JobSpec(name="self-test", argv=("/bin/sh", "-c", "echo msquant self-test")))
    deadline = time.monotonic() + SELF_TEST_TIMEOUT_S
    while time.monotonic() < deadline:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        state = jobs.get(record.id).state
        if state.is_final:
            if state is JobState.COMPLETED:
                return None
            outcome = jobs.get(record.id).outcome
            return f"the self-test job ended {outcome.describe() if outcome else state.value}"
        time.sleep(0.01)
    return f"the self-test job did not finish within {SELF_TEST_TIMEOUT_S:g} s"
