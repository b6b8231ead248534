"""Launching a project: resolve everything first (commit, command, composed config), then submit.

`prepare()` checks the form synchronously (override shapes, entry point), then, on a worker, reads git
status, picks the commit (HEAD for Local, the newest pushed commit for Cluster) and composes the Hydra
config, so an invalid override is refused with Hydra's message before anything runs.  `launch()` takes
the dirty-tree snapshot (Local, when asked) and submits to the job engine or the cluster service.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.projects import (
    LAUNCH_FACTS_FILE,
    ClusterResources,
    LaunchPlan,
    build_command,
    launch_warnings,
    local_job_spec,
    preferred_remote_url,
    slurm_submission,
)
from msquant_desktop.projects import git
from msquant_desktop.projects.hydra_config import compose_in_child, discover
from msquant_desktop.runtime import self_command
from msquant_desktop.services.project_service import ProjectService
from msquant_desktop.services.project_tasks import BackgroundTasks
from msquant_desktop.services.protocols import ClusterSubmitter, JobSubmitter

log = logging.getLogger(__name__)

_Service = TypeVar("_Service")


class LaunchRefused(ValueError):
    """The launch cannot go ahead; the message says why."""


class ProjectLauncher(QObject):
    sig_plan_ready = Signal(object)
    """LaunchPlan: resolved and composed; show it (with its warnings) and ask to confirm."""
    sig_plan_failed = Signal(str)
    """Why the launch cannot be prepared (Hydra's message for an invalid override, git's, ...)."""
    sig_launched = Signal(int)
    """The job id of a submitted launch."""
    sig_launch_failed = Signal(str)
    sig_targets_changed = Signal()
    """The clusters one can launch on changed (re-read `cluster_names()`)."""

    def __init__(
        self,
        projects: ProjectService,
        snapshots_dir: Path,
        jobs: JobSubmitter | None = None,
        clusters: ClusterSubmitter | None = None,
        cluster_names: Callable[[], list[str]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._projects = projects
        self._snapshots_dir = snapshots_dir
        self._jobs = jobs
        self._clusters = clusters
        self._cluster_names = cluster_names
        self._tasks = BackgroundTasks("project-launch", workers=1, parent=self)
        if clusters is not None:
            clusters.sig_profiles_changed.connect(self.sig_targets_changed)

    @property
    def local_available(self) -> bool:
        return self._jobs is not None

    @property
    def cluster_available(self) -> bool:
        """A cluster service exists and at least one cluster is configured."""
        return self._clusters is not None and bool(self.cluster_names())

    def cluster_names(self) -> list[str]:
        return list(self._cluster_names()) if self._cluster_names else []

    def prepare(
        self,
        project_id: int,
        entry_point: str,
        overrides: Sequence[str],
        target: JobTarget,
        cluster: str | None = None,
        resources: ClusterResources | None = None,
    ) -> None:
        """Resolve a launch; raises OverrideError at once for a malformed form, else answers by signal."""
        command = build_command(entry_point, overrides)
        if target is JobTarget.SLURM and not cluster:
            raise LaunchRefused("choose a cluster to launch on")
        project = self._projects.project(project_id)

        def work() -> LaunchPlan:
            status = git.status(project.path)
            if not status.head_sha:
                raise LaunchRefused(f"{project.name} has no commit yet: commit your code first")
            if target is JobTarget.SLURM:
                pushed = git.newest_pushed_commit(status.root)
                if pushed is None:
                    raise LaunchRefused(
                        f"no commit of {project.name}'s HEAD is on a remote; push it (and Fetch) first"
                    )
                commit = pushed
            else:
                pushed = None
                commit = status.head_sha
            layout = discover(project.path, project.config_dir, project.config_name)
            composed = (
                compose_in_child(layout.config_dir, layout.primary, list(overrides)) if layout else None
            )
            return LaunchPlan(
                project_id=project.id,
                project_name=project.name,
                repo=status.root,
                entry_point=entry_point,
                overrides=tuple(overrides),
                command=command,
                commit=commit,
                commit_subject=git.commit_subject(status.root, commit),
                target=target,
                composed_config=composed,
                cluster=cluster,
                repo_url=preferred_remote_url(status),
                dirty_count=status.dirty_count,
                warnings=tuple(launch_warnings(status, target is JobTarget.SLURM, pushed)),
                resources=resources if target is JobTarget.SLURM else None,
            )

        def done(ok: bool, value: Any) -> None:
            if ok:
                self.sig_plan_ready.emit(value)
            else:
                self.sig_plan_failed.emit(str(value))

        self._tasks.run(work, done)

    def launch(self, plan: LaunchPlan, include_snapshot: bool = False) -> None:
        """Submit a prepared plan; answers with sig_launched(job id) or sig_launch_failed."""
        if plan.target is JobTarget.SLURM:
            self._submit(lambda: self._submit_to_cluster(plan), plan)
            return
        snapshot = include_snapshot and plan.dirty_count > 0

        def work() -> str | None:
            head = git.resolve_commit(plan.repo)
            if head != plan.commit:
                raise LaunchRefused(
                    f"HEAD moved to {head[:8]} since the launch was prepared; prepare it again"
                )
            if not snapshot:
                return None
            self._snapshots_dir.mkdir(parents=True, exist_ok=True)
            path = self._snapshots_dir / f"project{plan.project_id}-{plan.commit[:8]}-{time.time_ns()}.patch"
            path.write_bytes(git.snapshot_patch(plan.repo))
            return str(path)

        def done(ok: bool, value: Any) -> None:
            if not ok:
                self.sig_launch_failed.emit(str(value))
                return
            spec = local_job_spec(plan, self_command("project-run"), value)
            self._submit(lambda: self._require(self._jobs, "local").submit(spec), plan)

        self._tasks.run(work, done)

    def _submit_to_cluster(self, plan: LaunchPlan) -> JobRecord:
        clusters = self._require(self._clusters, "cluster")
        if not self.cluster_names():
            raise LaunchRefused("cluster launches are not available: no cluster is configured (Clusters tab)")
        record = clusters.submit(slurm_submission(plan))
        if record.run_dir:
            # The cluster service keeps only the submission; keep the composed config next to it.
            try:
                Path(record.run_dir, LAUNCH_FACTS_FILE).write_text(json.dumps(plan.meta(), indent=2))
            except OSError as exc:
                log.warning("could not save the launch facts of job %s: %s", record.id, exc)
        return record

    def _require(self, service: _Service | None, what: str) -> _Service:
        if service is None:
            raise LaunchRefused(f"{what} launches are not available in this build")
        return service

    def _submit(self, submit: Callable[[], JobRecord], plan: LaunchPlan) -> None:
        try:
            record = submit()
        except Exception as exc:
            log.warning("launch of %s failed: %s", plan.project_name, exc)
            self.sig_launch_failed.emit(str(exc))
            return
        self._projects.remember_launch(plan.project_id, plan.entry_point, plan.overrides)
        self.sig_launched.emit(record.id)

    def close(self) -> None:
        self._tasks.close()
