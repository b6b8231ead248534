"""Projects tab: local git repositories, their Hydra configs, pinned launches and their history."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.projects import (
    DEFAULT_ENTRY_POINT,
    HydraLayout,
    LaunchPlan,
    OverrideError,
    RepoStatus,
)
from msquant_desktop.services.project_launch import LaunchRefused, ProjectLauncher
from msquant_desktop.services.project_service import ProjectService
from msquant_desktop.ui.colors import ERROR, text_style
from msquant_desktop.ui.empty_state import EmptyState
from msquant_desktop.ui.projects.details import ProjectDetails
from msquant_desktop.ui.projects.history import ProjectHistory
from msquant_desktop.ui.projects.launch_form import LaunchForm

Ask = Callable[[str, str], bool]


def ask_with_dialog(parent: QWidget) -> Ask:
    def ask(title: str, text: str) -> bool:
        answer = QMessageBox.question(parent, title, text)
        return answer == QMessageBox.StandardButton.Yes

    return ask


class ProjectsTab(QWidget):
    sig_show_job = Signal(int)
    """Job id: the user wants to see this job in the Jobs tab (wired by the composition root)."""

    def __init__(
        self,
        service: ProjectService,
        launcher: ProjectLauncher,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.launcher = launcher
        self.ask: Ask = ask_with_dialog(self)
        """Asks the user a yes/no question (replaced in tests)."""
        self.message_box: QMessageBox | None = None
        self._compose_request = 0

        self.empty = EmptyState(
            "No projects yet",
            "A project is a local git repository you train or evaluate with. "
            "Add one to see its commit, branch and Hydra configs, and launch pinned runs from it.",
            [("Add project…", self.choose_folder)],
        )
        self.project_list = QListWidget()
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.refresh_button = QPushButton("Refresh")
        self.add_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_current)
        self.refresh_button.clicked.connect(lambda: self.service.refresh_all(force=True))
        list_buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.refresh_button):
            list_buttons.addWidget(button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.project_list, 1)
        left_layout.addLayout(list_buttons)

        self.details = ProjectDetails()
        self.form = LaunchForm()
        self.history = ProjectHistory(service.launch_facts)
        self.pages = QTabWidget()
        # Scrollable so the tab never forces a tall minimum size on the window.
        form_scroll = QScrollArea()
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        form_scroll.setWidget(self.form)
        self.pages.addTab(form_scroll, "Launch")
        self.pages.addTab(self.history, "History")
        details_scroll = QScrollArea()
        details_scroll.setWidgetResizable(True)
        details_scroll.setFrameShape(QFrame.Shape.NoFrame)
        details_scroll.setWidget(self.details)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(details_scroll)
        right.addWidget(self.pages)
        right.setStretchFactor(1, 1)
        right.setSizes([250, 550])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 900])

        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.project_list.currentItemChanged.connect(self._on_current_changed)
        self.details.sig_fetch_requested.connect(self.fetch_current)
        self.form.sig_preview_requested.connect(self.preview_config)
        self.form.sig_launch_requested.connect(self.launch)
        self.form.sig_config_dir_requested.connect(self.choose_config_dir)
        self.form.sig_primary_chosen.connect(self.choose_primary)
        self.form.sig_entry_chosen.connect(self.choose_entry)
        self.form.sig_python_requested.connect(self.choose_python)
        self.form.sig_python_reset.connect(self.reset_python)
        self.history.sig_rerun_requested.connect(self.rerun_with_changes)
        self.history.sig_show_job_requested.connect(self.sig_show_job)
        service.sig_projects_changed.connect(self.reload)
        service.sig_project_added.connect(self.select_project)
        service.sig_add_refused.connect(self._on_add_refused)
        service.sig_status_ready.connect(self._on_status)
        service.sig_status_failed.connect(self._on_status_failed)
        service.sig_layout_ready.connect(self._on_layout)
        service.sig_layout_failed.connect(self._on_layout_failed)
        service.sig_fetch_finished.connect(self._on_fetch_finished)
        service.sig_compose_finished.connect(self._on_compose_finished)
        service.sig_history_changed.connect(self._on_history_changed)
        launcher.sig_plan_ready.connect(self._on_plan_ready)
        launcher.sig_plan_failed.connect(self._on_launch_problem)
        launcher.sig_launch_failed.connect(self._on_launch_problem)
        launcher.sig_launched_jobs.connect(self._on_launched_jobs)
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.applicationStateChanged.connect(self._on_application_state)
        launcher.sig_targets_changed.connect(self._update_targets)
        self._update_targets()
        self.reload()
        self.service.refresh_all()

    def _update_targets(self) -> None:
        self.form.set_targets(
            self.launcher.local_available, self.launcher.cluster_available, self.launcher.cluster_names()
        )

    # -- list --------------------------------------------------------------------------------------
    def current_project_id(self) -> int | None:
        item = self.project_list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def reload(self) -> None:
        current = self.current_project_id()
        projects = self.service.projects()
        self.project_list.blockSignals(True)
        self.project_list.clear()
        for project in projects:
            item = QListWidgetItem(project.name)
            item.setToolTip(project.path)
            item.setData(Qt.ItemDataRole.UserRole, project.id)
            self.project_list.addItem(item)
        self.project_list.blockSignals(False)
        self.stack.setCurrentIndex(1 if projects else 0)
        ids = [p.id for p in projects]
        if projects:
            self.select_project(current if current in ids else ids[0])

    def select_project(self, project_id: int) -> None:
        for row in range(self.project_list.count()):
            if self.project_list.item(row).data(Qt.ItemDataRole.UserRole) == project_id:
                if self.project_list.currentRow() == row:
                    self._on_current_changed()
                else:
                    self.project_list.setCurrentRow(row)
                return

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a git repository")
        if folder:
            self.service.add_project(folder)

    def remove_current(self) -> None:
        project_id = self.current_project_id()
        if project_id is None:
            return
        project = self.service.project(project_id)
        if self.ask(
            "Remove project",
            f"Forget {project.name}? Its folder and its jobs' history stay as they are.",
        ):
            self.service.remove_project(project_id)

    def fetch_current(self) -> None:
        project_id = self.current_project_id()
        if project_id is not None:
            self.details.fetch_button.setEnabled(False)
            self.details.fetch_button.setText("Fetching…")
            self.service.fetch(project_id)

    def choose_config_dir(self) -> None:
        project_id = self.current_project_id()
        if project_id is None:
            return
        project = self.service.project(project_id)
        folder = QFileDialog.getExistingDirectory(self, "Choose the Hydra config folder", project.path)
        if folder:
            self.service.set_config(project_id, folder, None)

    def choose_entry(self, script: str) -> None:
        project_id = self.current_project_id()
        if project_id is not None and script:
            self.service.set_entry(project_id, script)

    def choose_python(self) -> None:
        project_id = self.current_project_id()
        if project_id is None:
            return
        project = self.service.project(project_id)
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose the project's Python interpreter", project.path
        )
        if path:
            self.service.set_python(project_id, path)

    def reset_python(self) -> None:
        project_id = self.current_project_id()
        if project_id is not None:
            self.service.set_python(project_id, None)

    def choose_primary(self, name: str) -> None:
        project_id = self.current_project_id()
        if project_id is not None:
            self.service.set_config(project_id, self.service.project(project_id).config_dir, name)

    # -- showing a project -------------------------------------------------------------------------
    def _on_current_changed(self, *_args: object) -> None:
        project_id = self.current_project_id()
        if project_id is None:
            return
        project = self.service.project(project_id)
        self.details.show_project(project)
        self.details.show_status(self.service.status(project_id))
        self._show_last_job(project_id)
        self.form.set_layout(self.service.layout(project_id))
        self.form.set_environment(self.service.environment(project_id))
        self.form.prefill(project.entry_point, project.extra.get("last_overrides", []))
        self.form.preview.clear()
        self.form.notice.clear()
        self.history.set_jobs(self.service.history(project_id))

    def _show_last_job(self, project_id: int) -> None:
        job = self.service.last_job(project_id)
        self.details.show_last_job(job, self.service.launch_facts(job) if job else None)

    def _on_status(self, project_id: int, status: RepoStatus) -> None:
        if project_id == self.current_project_id():
            self.details.show_status(status)

    def _on_status_failed(self, project_id: int, message: str) -> None:
        if project_id == self.current_project_id():
            self.details.show_problem(message)

    def _on_layout(self, project_id: int, layout: HydraLayout | None) -> None:
        if project_id == self.current_project_id():
            self.form.set_environment(self.service.environment(project_id))
            if self.form.entry_point.text() == DEFAULT_ENTRY_POINT:
                self.form.entry_point.setText(self.service.project(project_id).entry_point)
            self.form.set_layout(layout)

    def _on_layout_failed(self, project_id: int, message: str) -> None:
        if project_id == self.current_project_id():
            self.form.set_environment(self.service.environment(project_id))
            self.form.set_layout(None, problem=message)

    def _on_fetch_finished(self, project_id: int, error: str) -> None:
        self.details.fetch_button.setEnabled(True)
        self.details.fetch_button.setText("Fetch")
        if error and project_id == self.current_project_id():
            self.details.show_problem(error)

    def _on_history_changed(self, project_id: int) -> None:
        if project_id == self.current_project_id():
            self.history.set_jobs(self.service.history(project_id))
            self._show_last_job(project_id)

    def _on_application_state(self, state: Qt.ApplicationState) -> None:
        # The user may have committed or edited in another window: re-read git when we come back.
        if state == Qt.ApplicationState.ApplicationActive and self.isVisible():
            self.service.refresh_all()

    def _on_add_refused(self, folder: str, message: str) -> None:
        self._show_message(QMessageBox.Icon.Warning, "Cannot add project", message)

    def _show_message(self, icon: QMessageBox.Icon, title: str, text: str) -> None:
        # open(), not exec(): the answer of a refusal needs no reply, and the event loop keeps running.
        self.message_box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        self.message_box.open()

    # -- preview and launch ------------------------------------------------------------------------
    def preview_config(self) -> None:
        project_id = self.current_project_id()
        layout = self.service.layout(project_id) if project_id is not None else None
        self.form.preview.clear()
        if layout is None:
            self.form.preview.setPlainText("This project has no Hydra config; the command runs as shown.")
            return
        try:
            overrides = self.form.overrides()
        except OverrideError as exc:
            self.form.form_error.setText(str(exc))
            return
        self.form.preview.setPlainText("Composing…")
        self._preview_overrides = overrides
        self._compose_request = self.service.compose(
            layout,
            overrides,
            hydra=self.form.preview_hydra_check.isChecked(),
            resolve=self.form.preview_resolved_check.isChecked(),
        )

    def _on_compose_finished(self, request: int, composed: object, error: str) -> None:
        if request != self._compose_request:
            return
        overrides = getattr(self, "_preview_overrides", [])
        self.form.preview.setPlainText(preview_text(composed, error, overrides))

    def launch(self) -> None:
        project_id = self.current_project_id()
        if project_id is None:
            return
        self.form.preview.clear()  # a new attempt: nothing from the last one stays on screen
        try:
            self.launcher.prepare(
                project_id,
                self.form.entry_point.text(),
                self.form.overrides(),
                self.form.target(),
                self.form.cluster(),
                self.form.resources(),
                include_snapshot=self.form.snapshot_check.isChecked()
                and self.form.snapshot_check.isEnabled(),
                multirun=self.form.multirun(),
            )
        except (OverrideError, LaunchRefused) as exc:
            self._on_launch_problem(str(exc))
            return
        self.form.launch_button.setEnabled(False)
        self._set_notice("Preparing: reading git and composing the config of the commit that will run…")

    def _on_plan_ready(self, plan: LaunchPlan) -> None:
        if plan.project_id != self.current_project_id():
            self.form.launch_button.setEnabled(True)
            self.launcher.discard(plan)
            return
        members = plan.member_plans()
        if plan.sweep_mode == "members":
            lines = [f"[{m.sweep['index'] + 1}] {shlex.join(m.overrides)}" for m in members if m.sweep]
            self.form.preview.setPlainText(
                f"# sweep of {len(members)} jobs (Hydra's basic sweeper), each with its own config\n"
                + "\n".join(f"# {line}" for line in lines)
                + "\n\n# config of job 1:\n"
                + (members[0].composed_config or "")
            )
        elif plan.composed_config is not None:
            self.form.preview.setPlainText(plan.composed_config)
        questions = list(plan.warnings)
        if plan.sweep_mode == "members" and plan.target is JobTarget.SLURM:
            questions.append(
                f"This sweep runs on {plan.cluster} as one SLURM job array of {len(members)} tasks "
                "(task i runs member i's overrides)."
            )
        elif plan.sweep_mode == "members":
            questions.append(f"This sweep runs as {len(members)} jobs through the local queue.")
        elif plan.sweep_mode == "multirun":
            questions.append(
                f"This config's sweeper ({(plan.sweeper or '').rsplit('.', 1)[-1]}) chooses its own "
                "trials: it runs as one --multirun job."
            )
        if questions and not self.ask(
            "Launch?", "\n\n".join(questions) + f"\n\nCommand: {shlex.join(plan.command)}"
        ):
            self.form.launch_button.setEnabled(True)
            self.launcher.discard(plan)
            self._set_notice("Launch cancelled.")
            return
        self._set_notice(f"Submitting {plan.commit[:8]}: {shlex.join(plan.command)}")
        self.launcher.launch(plan)

    def _on_launched_jobs(self, job_ids: list[int]) -> None:
        self.form.launch_button.setEnabled(True)
        if len(job_ids) == 1:
            text = f"Job #{job_ids[0]} submitted."
        else:
            text = f"Sweep of {len(job_ids)} jobs submitted (#{job_ids[0]}–#{job_ids[-1]})."
        self._set_notice(text + " It is listed under History and in the Jobs tab.")
        project_id = self.current_project_id()
        if project_id is not None:
            self._on_history_changed(project_id)

    def _on_launch_problem(self, message: str) -> None:
        self.form.launch_button.setEnabled(True)
        self.form.update_command()
        self._set_notice(message, error=True)

    def _set_notice(self, text: str, error: bool = False) -> None:
        self.form.notice.setStyleSheet(text_style(ERROR, self.palette()) if error else "")
        self.form.notice.setText(text)

    def rerun_with_changes(self, job: JobRecord) -> None:
        meta = self.service.launch_facts(job)
        self.form.prefill(
            str(meta.get("entry_point", self.form.entry_point.text())), meta.get("overrides", [])
        )
        self.form.multirun_check.setChecked(bool((meta.get("sweep") or {}).get("mode") == "multirun"))
        self.form.preview.setPlainText(str(meta.get("composed_config") or ""))
        self._set_notice(
            f"Filled from job #{job.id} (commit {str(meta.get('commit', ''))[:8]}); change and launch."
        )
        self.pages.setCurrentIndex(0)


def preview_text(composed: object, error: str, overrides: list[str]) -> str:
    """The preview pane: the job config, then the hydra: section and resolved values when asked."""
    if error:
        if overrides:
            return f"Hydra refused the overrides {shlex.join(overrides)}:\n\n{error}"
        return f"Hydra could not compose the config (no overrides):\n\n{error}"
    yaml_text = str(getattr(composed, "yaml", ""))
    head = (
        "# no overrides: the primary config as it is\n"
        if not overrides
        else (f"# overrides: {shlex.join(overrides)}\n")
    )
    parts = [head + yaml_text]
    hydra_yaml = getattr(composed, "hydra_yaml", None)
    if hydra_yaml:
        parts.append("# --- Hydra's own config (hydra:) ---\n" + hydra_yaml)
    resolved = getattr(composed, "resolved_yaml", None)
    resolve_error = getattr(composed, "resolve_error", None)
    if resolved:
        parts.append("# --- resolved values (as resolved here; run-time paths may differ) ---\n" + resolved)
    elif resolve_error:
        parts.append(f"# --- resolved values: cannot resolve ---\n# {resolve_error}")
    return "\n".join(parts)
