"""Render the Jobs tab with a local sweep (4 member jobs) and a cluster sweep (one 3-task array) and
save docs/jobs-sweep.png (offscreen).

Run: PYTHONPATH=. .venv/bin/python scripts/sweep_screenshot.py [OUT.png]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from msquant_desktop.app import create_main_window, create_qapplication, create_services
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobSpec, JobState, JobTarget
from msquant_desktop.domain.settings import Settings
from msquant_desktop.store import JobRepository, connect
from msquant_desktop.store.projects_repo import ProjectRepository

MEMBERS = (("exit 0", "lr=0.1 batch=32"), ("exit 3", "lr=0.1 batch=64"), ("sleep 30", "lr=0.2 batch=32"))


def spin(app, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/jobs-sweep.png")
    with tempfile.TemporaryDirectory() as tmp:
        paths = resolve_paths(tmp).ensure()
        save_settings(paths.settings_file, Settings(max_concurrent_jobs=1))
        conn = connect(paths.database)
        project = ProjectRepository(conn).add("mnist-hydra", "/srv/mnist-hydra")
        clusters = JobRepository(conn)  # the Clusters area's own writes: an array with task states
        array = clusters.create(
            JobSpec(
                name="mnist-hydra @ 9f1c2e7a",
                argv=("python", "train.py"),
                target=JobTarget.SLURM,
                cluster="lab",
                project_id=project.id,
                meta={"project_name": "mnist-hydra", "submission": {"task_overrides": [["a=1"]] * 3}},
            ),
            JobState.STARTING,
        )
        tasks = {"0": {"state": "COMPLETED"}, "1": {"state": "RUNNING"}, "2": {"state": "PENDING"}}
        clusters.transition(array.id, JobState.QUEUED, slurm_job_id="4817")
        clusters.transition(array.id, JobState.RUNNING, result={"array": "0-2", "tasks": tasks})
        app = create_qapplication([sys.argv[0]])
        services = create_services(paths)
        jobs = services.jobs
        jobs.submit_many(
            [
                JobSpec(
                    name=f"mnist-hydra @ 9f1c2e7a [{i + 1}/4]",
                    argv=("sh", "-c", command),
                    project_id=project.id,
                    meta={"project_name": "mnist-hydra", "sweep": {"id": "3be0a1", "index": i, "size": 4}},
                )
                for i, (command, _) in enumerate((*MEMBERS, ("exit 0", "")))
            ]
        )
        window = create_main_window(services)
        window.resize(1280, 800)
        window.show()
        window.show_tab("Jobs")
        spin(app, 4)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        services.jobs.shutdown(cancel_running=True)
        window.hide()
        services.shutdown()
        conn.close()
        time.sleep(0.3)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
