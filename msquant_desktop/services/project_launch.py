"""Launching a project: resolve everything first (commit, command, composed config), then submit.

`prepare()` checks the form synchronously (override shapes, entry point), then, on a worker, reads git
status, picks the commit (HEAD for Local, the newest pushed commit for Cluster), takes the dirty-tree
snapshot (Local, when asked) and composes the Hydra config *from that commit* (a temporary worktree of
it, with the snapshot applied) in the project's own Python: the config stored with the job is the one
the job's Hydra composes, and an invalid override is refused with Hydra's message before anything
runs.  A sweep (`a=1,2 b=x,y`, or `hydra.sweeper.params` under --multirun) is split by Hydra into its
members, each composed.  `launch()` submits one job per member to the job engine (its queue and
concurrency limit apply, all members queued in one transaction), or the single job to the engine, or
the launch to the cluster service — a sweep there as one SLURM job array whose task i runs member i.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.project_configs import SweepMember
from msquant_desktop.domain.projects import (
    LAUNCH_FACTS_FILE,
    ClusterResources,
    LaunchPlan,
    build_command,
    cluster_sweep_refusal,
    launch_warnings,
    local_job_spec,
    preferred_remote_url,
    slurm_submission,
    wants_multirun,
)
from msquant_desktop.projects import git
from msquant_desktop.projects.hydra_config import plan as hydra_plan
from msquant_desktop.projects.runner import temporary_pinned_tree
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
    """The job id of a submitted launch (of a sweep: its first member's)."""
    sig_launched_jobs = Signal(object)
    """list[int]: every job a launch submitted (one, or each member of a sweep)."""
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
        include_snapshot: bool = False,
        multirun: bool = False,
    ) -> None:
        """Resolve a launch; raises OverrideError at once for a malformed form, else answers by signal.

        `include_snapshot` (Local): the uncommitted changes are saved as a patch now and the config is
        composed with them, as the job will run them.  `multirun`: run as a Hydra multirun (also
        implied by sweep values such as `a=1,2` and by -m in the entry point).
        """
        local = target is JobTarget.LOCAL
        layout = self._projects.layout(project_id)
        env = layout.env if layout is not None else self._projects.environment(project_id)
        multirun = multirun or wants_multirun(entry_point)
        command = build_command(entry_point, overrides, env if local else None)
        if target is JobTarget.SLURM and not cluster:
            raise LaunchRefused("choose a cluster to launch on")
        project = self._projects.project(project_id)
        snapshots = self._snapshots_dir

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
            patch = None
            if local and include_snapshot and status.dirty_count:
                snapshots.mkdir(parents=True, exist_ok=True)
                path = snapshots / f"project{project.id}-{commit[:8]}-{time.time_ns()}.patch"
                path.write_bytes(git.snapshot_patch(status.root))
                patch = str(path)
            composed = None
            members: tuple[SweepMember, ...] = ()
            sweep_mode = sweeper = None
            warnings = list(launch_warnings(status, target is JobTarget.SLURM, pushed))
            if layout is not None:
                try:
                    # The config comes from the exact tree the job runs: the commit (+ the snapshot).
                    with temporary_pinned_tree(status.root, commit, patch, snapshots / "compose") as tree:
                        composed_plan = hydra_plan(layout, overrides, multirun=multirun, root=str(tree))
                except Exception:
                    if patch:
                        Path(patch).unlink(missing_ok=True)
                    raise
                sweep_mode, sweeper = composed_plan.mode, composed_plan.sweeper
                if composed_plan.mode == "members":
                    members = composed_plan.members
                elif composed_plan.members:
                    composed = composed_plan.members[0].composed_config
                warnings += composed_plan.warnings
                if sweep_mode and not layout.supports_multirun:
                    raise LaunchRefused(
                        f"{layout.entry.script if layout.entry else 'the entry point'} composes its own "
                        "config (Hydra's compose API): it cannot run a sweep; remove the sweep values"
                    )
            elif multirun:
                raise LaunchRefused("a sweep needs a Hydra project: no Hydra config was found")
            if sweep_mode == "multirun" and not local:
                raise LaunchRefused(cluster_sweep_refusal(sweeper))
            if sweep_mode == "multirun" and not any(w in ("-m", "--multirun") for w in command):
                final_command = build_command(entry_point, overrides, env if local else None, multirun=True)
            else:
                final_command = command
            return LaunchPlan(
                project_id=project.id,
                project_name=project.name,
                repo=status.root,
                entry_point=entry_point,
                overrides=tuple(overrides),
                command=final_command,
                commit=commit,
                commit_subject=git.commit_subject(status.root, commit),
                target=target,
                composed_config=composed,
                cluster=cluster,
                repo_url=preferred_remote_url(status),
                dirty_count=status.dirty_count,
                warnings=tuple(warnings),
                resources=resources if target is JobTarget.SLURM else None,
                python=env.python if (local and env is not None) else None,
                env=env.job_env(os.environ.get("PATH", "")) if (local and env is not None) else (),
                patch=patch,
                members=members,
                sweep_mode=sweep_mode,
                sweeper=sweeper,
                sweep_id=uuid.uuid4().hex[:12] if sweep_mode else None,
            )

        def done(ok: bool, value: Any) -> None:
            if ok:
                self.sig_plan_ready.emit(value)
            else:
                self.sig_plan_failed.emit(str(value))

        self._tasks.run(work, done)

    def discard(self, plan: LaunchPlan) -> None:
        """The user did not launch a prepared plan: remove its snapshot patch."""
        if plan.patch:
            Path(plan.patch).unlink(missing_ok=True)

    def launch(self, plan: LaunchPlan) -> None:
        """Submit a prepared plan; answers with sig_launched(job id) or sig_launch_failed."""
        if plan.target is JobTarget.SLURM:
            self._submit(lambda: [self._submit_to_cluster(plan)], plan)
            return

        def work() -> None:
            head = git.resolve_commit(plan.repo)
            if head != plan.commit:
                raise LaunchRefused(
                    f"HEAD moved to {head[:8]} since the launch was prepared; prepare it again"
                )

        def done(ok: bool, value: Any) -> None:
            if not ok:
                self.sig_launch_failed.emit(str(value))
                return
            wrapper = self_command("project-run")
            specs = [local_job_spec(member, wrapper) for member in plan.member_plans()]
            jobs = self._require(self._jobs, "local")
            self._submit(lambda: jobs.submit_many(specs), plan)

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

    def _submit(self, submit: Callable[[], list[JobRecord]], plan: LaunchPlan) -> None:
        try:
            records = submit()
        except Exception as exc:
            log.warning("launch of %s failed: %s", plan.project_name, exc)
            self.sig_launch_failed.emit(str(exc))
            return
        self._projects.remember_launch(plan.project_id, plan.entry_point, plan.overrides)
        self.sig_launched_jobs.emit([r.id for r in records])
        self.sig_launched.emit(records[0].id)

    def close(self) -> None:
        self._tasks.close()
