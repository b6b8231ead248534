"""Projects: the list in the store, git status and Hydra layout per project, fetch, compose, history.

All git and Hydra work runs on worker threads (git commands, the Hydra probe child process in the
project's own Python); results come back as signals on the main thread.  Refreshes are coalesced:
asking again while one is running for the same project only schedules one more.  Hydra is asked again
only when the project's config files, entry points, interpreter or settings changed (or on Refresh).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.project_configs import EntryPoint, PythonEnv
from msquant_desktop.domain.projects import (
    DEFAULT_ENTRY_POINT,
    EXTRA_CONFIG_NAME,
    EXTRA_ENTRY_SCRIPT,
    EXTRA_PYTHON,
    LAUNCH_FACTS_FILE,
    HydraLayout,
    Project,
    RepoStatus,
    job_launch_facts,
)
from msquant_desktop.projects import git
from msquant_desktop.projects.hydra_config import Discovery, compose, discover, layout_signature
from msquant_desktop.services.project_tasks import BackgroundTasks
from msquant_desktop.services.protocols import JobChanges, JobFeed
from msquant_desktop.store.jobs_repo import JobRepository
from msquant_desktop.store.projects_repo import ProjectRepository

log = logging.getLogger(__name__)


class ProjectService(QObject):
    sig_projects_changed = Signal()
    """A project was added, removed or changed; re-read `projects()`."""
    sig_project_added = Signal(int)
    """A folder was accepted as a project (its id)."""
    sig_add_refused = Signal(str, str)
    """(folder, why): the folder cannot be added (not a git work tree, already added, ...)."""
    sig_status_ready = Signal(int, object)
    """(project id, RepoStatus): fresh git status."""
    sig_status_failed = Signal(int, str)
    """(project id, git's message): the repository could not be read (moved, deleted, ...)."""
    sig_layout_ready = Signal(int, object)
    """(project id, HydraLayout | None): the Hydra config tree (None: plain commands only)."""
    sig_layout_failed = Signal(int, str)
    sig_fetch_finished = Signal(int, str)
    """(project id, error or ""): a Fetch ended; a status refresh follows."""
    sig_compose_finished = Signal(int, object, str)
    """(request id, hydra_config.Composed or None, Hydra's error or ""): a composition preview ended."""
    sig_history_changed = Signal(int)
    """(project id): one of the project's jobs was added or changed."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        jobs: JobFeed | None = None,
        clusters: JobChanges | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._repo = ProjectRepository(conn)
        self._jobs_repo = JobRepository(conn)
        self._tasks = BackgroundTasks("projects", workers=2, parent=self)
        self._status: dict[int, RepoStatus] = {}
        self._layouts: dict[int, HydraLayout | None] = {}
        self._discoveries: dict[int, tuple[str, Discovery]] = {}  # (signature, what Hydra said)
        self._refreshing: set[int] = set()
        self._refresh_again: set[int] = set()
        self._compose_counter = 0
        # Local jobs change through the job engine, SLURM jobs through the cluster service.
        if jobs is not None:
            jobs.sig_job_added.connect(self._on_job_touched)
            jobs.sig_job_changed.connect(self._on_job_touched)
        if clusters is not None:
            clusters.sig_job_changed.connect(self._on_job_touched)

    # -- the list ----------------------------------------------------------------------------------
    def projects(self) -> list[Project]:
        return self._repo.list_projects()

    def project(self, project_id: int) -> Project:
        return self._repo.get(project_id)

    def status(self, project_id: int) -> RepoStatus | None:
        """The last status read (None before the first refresh ends)."""
        return self._status.get(project_id)

    def layout(self, project_id: int) -> HydraLayout | None:
        return self._layouts.get(project_id)

    def environment(self, project_id: int) -> PythonEnv | None:
        """The project's Python as last detected (None before the first refresh ends)."""
        known = self._discoveries.get(project_id)
        return known[1].env if known else None

    def entry_points(self, project_id: int) -> tuple[EntryPoint, ...]:
        known = self._discoveries.get(project_id)
        return known[1].scan.entry_points if known else ()

    def add_project(self, folder: str) -> None:
        """Check the folder in a worker; answers with sig_project_added or sig_add_refused."""

        def done(ok: bool, value: Any) -> None:
            if not ok:
                self.sig_add_refused.emit(folder, str(value))
                return
            root = str(value)
            if self._repo.find_by_path(root) is not None:
                self.sig_add_refused.emit(folder, f"{root} is already a project")
                return
            project = self._repo.add(Path(root).name, root)
            self.sig_projects_changed.emit()
            self.sig_project_added.emit(project.id)
            self.refresh(project.id)

        self._tasks.run(lambda: git.work_tree_root(folder), done)

    def remove_project(self, project_id: int) -> None:
        """Forget a project; its jobs stay in history.  The repository itself is not touched."""
        self._repo.remove(project_id)
        self._status.pop(project_id, None)
        self._layouts.pop(project_id, None)
        self.sig_projects_changed.emit()

    def set_config(self, project_id: int, config_dir: str | None, config_name: str | None) -> None:
        """Use another Hydra config folder / primary config (None: discover)."""
        self._repo.update(project_id, config_dir=config_dir or None)
        self._repo.set_extra(project_id, EXTRA_CONFIG_NAME, config_name or None)
        self.sig_projects_changed.emit()
        self.refresh(project_id)

    def set_python(self, project_id: int, python: str | None) -> None:
        """Use this interpreter for the project's Hydra and local jobs (None: detect it again)."""
        self._repo.set_extra(project_id, EXTRA_PYTHON, python or None)
        self.sig_projects_changed.emit()
        self.refresh(project_id)

    def set_entry(self, project_id: int, script: str | None) -> None:
        """Use this entry point (relative path of a discovered script); the command becomes
        `python SCRIPT` unless it already runs that script."""
        project = self._repo.get(project_id)
        self._repo.set_extra(project_id, EXTRA_ENTRY_SCRIPT, script or None)
        entry = next((e for e in self.entry_points(project_id) if e.script == script), None)
        if entry is not None and entry.script not in project.entry_point:
            self._repo.update(project_id, entry_point=entry.command())
        self.sig_projects_changed.emit()
        self.refresh(project_id)

    def remember_launch(self, project_id: int, entry_point: str, overrides: Sequence[str]) -> None:
        self._repo.remember_launch(project_id, entry_point, list(overrides))

    # -- git and Hydra, off the main thread --------------------------------------------------------
    def refresh_all(self, force: bool = False) -> None:
        for project in self._repo.list_projects():
            self.refresh(project.id, force)

    def refresh(self, project_id: int, force: bool = False) -> None:
        """Re-read git status, and the Hydra layout when anything it depends on changed (`force`:
        ask Hydra again anyway)."""
        if project_id in self._refreshing:
            self._refresh_again.add(project_id)
            return
        try:
            project = self._repo.get(project_id)
        except KeyError:
            return
        self._refreshing.add(project_id)
        known = None if force else self._discoveries.get(project_id)

        def work() -> tuple[RepoStatus, str, Discovery]:
            status = git.status(project.path)
            settings = _discovery_settings(project)
            signature = layout_signature(project.path, settings)
            if known is not None and known[0] == signature:
                return status, signature, known[1]
            return status, signature, discover(project.path, **settings)

        def done(ok: bool, value: Any) -> None:
            self._refreshing.discard(project_id)
            if ok:
                status, signature, found = value
                self._status[project_id] = status
                self._discoveries[project_id] = (signature, found)
                self._layouts[project_id] = found.layout
                self._adopt_entry_point(project_id, found)
                self.sig_status_ready.emit(project_id, status)
                if found.problem:
                    self.sig_layout_failed.emit(project_id, found.problem)
                else:
                    self.sig_layout_ready.emit(project_id, found.layout)
            else:
                self._status.pop(project_id, None)
                self.sig_status_failed.emit(project_id, str(value))
            if project_id in self._refresh_again:
                self._refresh_again.discard(project_id)
                self.refresh(project_id)

        self._tasks.run(work, done)

    def _adopt_entry_point(self, project_id: int, found: Discovery) -> None:
        """A project still on the default command runs its discovered Hydra entry point instead."""
        entry = found.layout.entry if found.layout else None
        try:
            project = self._repo.get(project_id)
        except KeyError:
            return
        if (
            entry is not None
            and project.entry_point == DEFAULT_ENTRY_POINT
            and entry.command() != project.entry_point
        ):
            self._repo.update(project_id, entry_point=entry.command())

    def fetch(self, project_id: int) -> None:
        """`git fetch --all` (network), then a refresh so ahead/behind and 'pushed' are current."""
        path = self._repo.get(project_id).path

        def done(ok: bool, value: Any) -> None:
            self.sig_fetch_finished.emit(project_id, "" if ok else str(value))
            self.refresh(project_id)

        self._tasks.run(lambda: git.fetch(path), done)

    def compose(
        self, layout: HydraLayout, overrides: Sequence[str], hydra: bool = False, resolve: bool = False
    ) -> int:
        """Compose in the project's Python (a child process); returns the request id named by
        sig_compose_finished.  `hydra` adds the hydra: section, `resolve` the resolved values."""
        self._compose_counter += 1
        request = self._compose_counter
        args = (layout, list(overrides))

        def done(ok: bool, value: Any) -> None:
            self.sig_compose_finished.emit(request, value if ok else None, "" if ok else str(value))

        self._tasks.run(lambda: compose(*args, hydra=hydra, resolve=resolve), done)
        return request

    # -- history -----------------------------------------------------------------------------------
    def history(self, project_id: int, limit: int = 200) -> list[JobRecord]:
        """The project's jobs, local and SLURM, newest first."""
        return self._jobs_repo.list_jobs(project_id=project_id, limit=limit)

    def last_job(self, project_id: int) -> JobRecord | None:
        jobs = self._jobs_repo.list_jobs(project_id=project_id, limit=1)
        return jobs[0] if jobs else None

    def job(self, job_id: int) -> JobRecord | None:
        return self._jobs_repo.find(job_id)

    def launch_facts(self, job: JobRecord) -> dict[str, Any]:
        """Command, commit, overrides and composed config of a project job, local or SLURM."""
        saved: dict[str, Any] | None = None
        if job.spec.target is JobTarget.SLURM and job.run_dir:
            try:
                saved = json.loads(Path(job.run_dir, LAUNCH_FACTS_FILE).read_text())
            except (OSError, ValueError):
                saved = None  # submitted from elsewhere (CLI): the submission alone
        return job_launch_facts(job.spec.meta, saved)

    def _on_job_touched(self, job_id: int) -> None:
        try:  # the light row: its spec is not parsed for every job change
            project_id = self._jobs_repo.summary(job_id).project_id
        except KeyError:
            return
        if project_id is not None:
            self.sig_history_changed.emit(project_id)

    @property
    def busy(self) -> bool:
        return self._tasks.pending > 0

    def close(self) -> None:
        self._tasks.close()


def _discovery_settings(project: Project) -> dict[str, Any]:
    """The project's own settings that decide what Hydra is asked (see hydra_config.discover)."""
    return {
        "python": project.extra.get(EXTRA_PYTHON),
        "entry_script": project.extra.get(EXTRA_ENTRY_SCRIPT),
        "config_dir": project.config_dir,
        "config_name": project.config_name,
        "command": project.entry_point,
    }
