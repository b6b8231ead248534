"""What one service needs of another, as structural types.

A service that talks to another names the few members it uses here instead of taking the concrete
class (or `Any` probed with `hasattr`): the type checker then holds the real services to these
shapes, and a test can hand in a small stand-in.  Signals are `SignalInstance`s, which is what a
`Signal` declared on a QObject class gives on an instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import SignalInstance

from msquant_desktop.domain.jobs import JobRecord, JobSpec, JobSummary
from msquant_desktop.domain.settings import Settings
from msquant_desktop.domain.slurm import SlurmSubmission


class SettingsSource(Protocol):
    """The user's settings and when they change (`SettingsService`)."""

    sig_settings_changed: SignalInstance
    """Emitted with the new `Settings` after they were saved."""

    @property
    def settings(self) -> Settings: ...


class JobChanges(Protocol):
    """Says when one of its jobs changed (`JobService` for local jobs, `ClusterService` for SLURM)."""

    sig_job_changed: SignalInstance
    """(job id): a job's state or fields changed."""


class JobFeed(JobChanges, Protocol):
    """Every change to the jobs table, additions and deletions included (`JobService`)."""

    sig_job_added: SignalInstance
    """(job id): a job appeared in the store."""
    sig_job_removed: SignalInstance
    """(job id): a job was deleted."""


class JobSubmitter(Protocol):
    """Queues a local job (`JobService`)."""

    def submit(self, spec: JobSpec) -> JobRecord: ...

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobRecord]:
        """All of `specs` queued in one transaction, or none."""
        ...


class LocalJobs(JobFeed, JobSubmitter, Protocol):
    """The local job engine as the quantization service and the self-test use it (`JobService`)."""

    def get(self, job_id: int) -> JobRecord: ...

    def list_jobs(self) -> list[JobRecord]: ...

    def summary(self, job_id: int) -> JobSummary: ...

    def delete(self, job_id: int, also_remove: tuple[Path, ...] = ()) -> None: ...


class ClusterSubmitter(Protocol):
    """Submits to a SLURM cluster and says when the list of clusters changed (`ClusterService`)."""

    sig_profiles_changed: SignalInstance
    """The cluster profiles were edited."""

    def submit(self, request: SlurmSubmission) -> JobRecord: ...
