"""An app that stops reading (a long GC, a hung dialog) never stalls its jobs: the supervisor keeps
every line in the run folder's log, leaves lines out of the app's stream, and says how many; the
Jobs tab shows that count where the gap is."""

from __future__ import annotations

import sys
import time

from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.ui.jobs_tab import JobsTab
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import log_lines

LINES = 300_000
FLOOD = f"import sys\nfor i in range({LINES}):\n    sys.stdout.write(f'line {{i:07d}} ' + 'x' * 60 + '\\n')\nprint('last line', flush=True)\n"


def test_a_frozen_app_does_not_stall_the_job_and_is_told_what_it_missed(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.show()
    skipped: list[tuple[int, int]] = []
    service.sig_log_skipped.connect(lambda job_id, n: skipped.append((job_id, n)))
    record = service.submit(JobSpec(name="flood", argv=(sys.executable, "-c", FLOOD)))
    qtbot.waitUntil(lambda: service.get(record.id).state is JobState.RUNNING, timeout=15000)
    tab.select_job(record.id)
    run_dir = service.run_dir(record.id)
    assert run_dir is not None
    started = time.monotonic()
    time.sleep(4.0)  # the GUI thread is frozen: nothing reads the supervisor's pipe meanwhile
    # The job did not wait for us: its ~21 MB were written while we were frozen.
    assert (run_dir / "exit.json").exists(), "the job was stalled by an app that stopped reading"
    frozen_for = time.monotonic() - started
    final = wait_final(qtbot, service, record.id)
    assert final.state is JobState.COMPLETED
    lines = log_lines(run_dir)
    assert len([ln for ln in lines if ln.startswith("O line ")]) == LINES  # every line kept on disk
    assert "O last line" in lines
    qtbot.waitUntil(lambda: bool(skipped), timeout=10000)
    assert skipped[0][0] == record.id and 0 < skipped[0][1] < LINES
    qtbot.waitUntil(lambda: f"{skipped[0][1]:,} lines not shown" in tab.details.log_view.plain_text(), timeout=5000)
    assert frozen_for >= 4.0
