"""SQLite persistence (Qt-free)."""

from msquant_desktop.store.db import NewerSchemaError, StoreError, connect
from msquant_desktop.store.jobs_repo import IllegalTransition, JobRepository
from msquant_desktop.store.kv_repo import KeyValueRepository
from msquant_desktop.store.projects_repo import ProjectRepository

__all__ = [
    "IllegalTransition",
    "JobRepository",
    "KeyValueRepository",
    "NewerSchemaError",
    "ProjectRepository",
    "StoreError",
    "connect",
]
