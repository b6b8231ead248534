"""Fixtures: a real JobService over a real SQLite store in a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def make_engine(app_paths, qapp) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from msquant_desktop.config.settings_store import save_settings
    from msquant_desktop.domain.settings import Settings
    from msquant_desktop.services.job_service import JobService
    from msquant_desktop.services.settings_service import SettingsService
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    made: list[Any] = []

    def make(max_jobs: int = 1, grace: float = 10.0, gpus: int = 0) -> JobService:
        save_settings(
            app_paths.settings_file, Settings(max_concurrent_jobs=max_jobs, cancel_grace_seconds=grace)
        )
        conn = connect(app_paths.database)
        service = JobService(
            JobRepository(conn), app_paths, SettingsService(app_paths.settings_file), gpu_count=gpus
        )
        service.start()
        made.append((service, conn))
        return service

    yield make
    for service, conn in made:
        service.shutdown(cancel_running=True)
        conn.close()


def wait_final(qtbot, service, job_id: int, timeout: int = 20000):  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: service.get(job_id).state.is_final, timeout=timeout)
    return service.get(job_id)
