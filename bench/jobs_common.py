"""Shared set-up for the jobs benchmarks: a real JobService in a throw-away data dir."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtWidgets import QApplication

from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.settings import Settings
from msquant_desktop.services.job_service import JobService
from msquant_desktop.services.settings_service import SettingsService
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository


def app() -> QApplication:
    return QApplication.instance() or QApplication([])  # type: ignore[return-value]


def engine(max_jobs: int = 1, grace: float = 10.0, root: str | None = None) -> tuple[JobService, Any]:
    root = root or tempfile.mkdtemp(prefix="msquant-bench-")
    paths = resolve_paths(root).ensure()
    save_settings(paths.settings_file, Settings(max_concurrent_jobs=max_jobs, cancel_grace_seconds=grace))
    service = JobService(
        JobRepository(connect(paths.database)), paths, SettingsService(paths.settings_file), gpu_count=0
    )
    service.start()
    return service, paths


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    v = sorted(x * scale for x in values)
    return f"median {statistics.median(v):.1f} {unit}, min {v[0]:.1f}, max {v[-1]:.1f} (n={len(v)})"
