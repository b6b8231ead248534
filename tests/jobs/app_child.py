"""A headless app process for the crash test: starts three jobs through JobService, then idles.

Run: python tests/jobs/app_child.py DATA_DIR  -> prints "READY id1 id2 id3" once all three run.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QTimer

from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobSpec, JobState
from msquant_desktop.domain.settings import Settings
from msquant_desktop.services.job_service import JobService
from msquant_desktop.services.settings_service import SettingsService
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository

TICKER = "import time\nfor i in range(3000):\n    print('tick', i, flush=True)\n    time.sleep(0.05)"
FINISHER = (
    "import time\nfor i in range(200):\n    print('row', i, flush=True)\ntime.sleep(1.5)\nraise SystemExit(7)"
)
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(300)"


def main() -> int:
    app = QCoreApplication(sys.argv[:1])
    paths = resolve_paths(sys.argv[1]).ensure()
    save_settings(paths.settings_file, Settings(max_concurrent_jobs=3, cancel_grace_seconds=1.0))
    service = JobService(JobRepository(connect(paths.database)), paths, SettingsService(paths.settings_file))
    service.start()
    ids = [
        service.submit(JobSpec(name=name, argv=(sys.executable, "-c", code))).id
        for name, code in (("ticker", TICKER), ("finisher", FINISHER), ("sleeper", SLEEPER))
    ]

    def check() -> None:
        if all(service.get(i).state is JobState.RUNNING for i in ids):
            print("READY", *ids, flush=True)
            timer.stop()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(20)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
