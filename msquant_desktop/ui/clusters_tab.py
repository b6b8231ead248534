"""Clusters tab: profiles, connection status, free GPUs, submit with script preview, SLURM job list.

The job list is read in full when the profiles load; after that each changed job reads its own row
(`find` by id) and updates, inserts or removes that row only; GPU refreshes update changed nodes.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobTarget
from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.slurm.profiles import ProfileError, dump_profiles, import_profiles
from msquant_desktop.ui.clusters.dialogs import ProfilesDialog, ask_host_key
from msquant_desktop.ui.clusters.gpu_panel import GpuPanel
from msquant_desktop.ui.clusters.models import JOBS_SHOWN, SlurmJobsModel
from msquant_desktop.ui.clusters.submit_form import SubmitForm
from msquant_desktop.ui.empty_state import EmptyState

GPU_REFRESH_MS = 15_000


class ClustersTab(QWidget):
    def __init__(
        self,
        service: ClusterService | None = None,
        parent: QWidget | None = None,
        jobs: Any = None,
    ) -> None:
        """`jobs` (the JobService) tells of SLURM jobs deleted in the Jobs tab."""
        super().__init__(parent)
        self._service = service
        self.host_key_prompt = ask_host_key  # replaceable in tests
        self.empty = EmptyState(
            "No clusters yet",
            "Add a SLURM cluster you reach over SSH to see its free GPUs, submit jobs at a pinned "
            "commit and follow them to their true final state.",
            [("Add cluster…", self.edit_profiles), ("Import clusters.yaml…", self.import_profiles)]
            if service is not None
            else [],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.main = QWidget()
        self.stack.addWidget(self.main)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        if service is None:
            return

        self.cluster_combo = QComboBox()
        self.status_label = QLabel("")
        # A long route must not widen the window: the label takes the room left, the tooltip has it all.
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.test_label = QLabel("")
        buttons = []
        for text, slot in (
            ("Test connection", self.test_connection),
            ("Refresh GPUs", self.refresh_gpus),
            ("Edit profiles…", self.edit_profiles),
            ("Import…", self.import_profiles),
            ("Export…", self.export_profiles),
        ):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.append(button)
        top = QHBoxLayout()
        top.addWidget(QLabel("Cluster:"))
        top.addWidget(self.cluster_combo)
        top.addWidget(self.status_label, 1)
        for button in buttons:
            top.addWidget(button)

        self.gpus = GpuPanel()
        self.jobs_model = SlurmJobsModel(self)
        self.jobs = QTableView()
        self.jobs.setModel(self.jobs_model)
        self.jobs.verticalHeader().setVisible(False)
        self.jobs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.jobs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.jobs.horizontalHeader().setStretchLastSection(True)
        for signal in (self.jobs_model.rowsInserted, self.jobs_model.modelReset):
            signal.connect(self.jobs.resizeColumnsToContents)
        self.cancel_button = QPushButton("Cancel selected job")
        self.cancel_button.clicked.connect(self.cancel_selected)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>Free GPUs</b>"))
        left_layout.addWidget(self.gpus, 1)
        left_layout.addWidget(QLabel("<b>SLURM jobs</b>"))
        left_layout.addWidget(self.jobs, 1)
        left_layout.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignRight)
        self.form = SubmitForm()
        splitter = QSplitter()
        splitter.addWidget(left)
        form_scroll = QScrollArea()  # keeps the window's minimum height small
        form_scroll.setWidgetResizable(True)
        form_scroll.setWidget(self.form)
        splitter.addWidget(form_scroll)
        splitter.setSizes([700, 450])
        main_layout = QVBoxLayout(self.main)
        main_layout.addLayout(top)
        main_layout.addWidget(self.test_label)
        main_layout.addWidget(splitter, 1)

        self._gpu_timer = QTimer(self)
        self._gpu_timer.setObjectName("clusters-gpu-refresh")
        self._gpu_timer.setInterval(GPU_REFRESH_MS)
        self._gpu_timer.timeout.connect(self.refresh_gpus)

        self.cluster_combo.currentTextChanged.connect(self._on_cluster_selected)
        self.form.sig_preview.connect(self._on_preview)
        self.form.sig_submit.connect(self._on_submit)
        service.sig_cluster_status.connect(self._on_status)
        service.sig_gpus.connect(self._on_gpus)
        service.sig_tested.connect(self._on_tested)
        service.sig_unknown_host_key.connect(self._on_unknown_host_key)
        service.sig_passphrase_needed.connect(self._on_passphrase_needed)
        service.sig_job_changed.connect(self._on_job_changed)
        if jobs is not None:
            jobs.sig_job_removed.connect(self._on_job_removed)
        service.sig_profiles_changed.connect(self.reload_profiles)
        service.sig_error.connect(self.test_label.setText)
        self.reload_profiles()

    # -- profiles -----------------------------------------------------------------------------------
    @property
    def current_cluster(self) -> str:
        return self.cluster_combo.currentText() if self._service is not None else ""

    @Slot()
    def reload_profiles(self) -> None:
        assert self._service is not None
        names = [p.name for p in self._service.profiles()]
        current = self.current_cluster
        self.cluster_combo.blockSignals(True)
        self.cluster_combo.clear()
        self.cluster_combo.addItems(names)
        if current in names:
            self.cluster_combo.setCurrentText(current)
        self.cluster_combo.blockSignals(False)
        self.stack.setCurrentWidget(self.main if names else self.empty)
        if self._service.profile_error:
            self.empty.set_message(f"The clusters file could not be read: {self._service.profile_error}")
        self._on_cluster_selected(self.current_cluster)
        self.reload_jobs()

    def edit_profiles(self) -> None:
        if self._service is not None:
            ProfilesDialog(self._service, self).exec()

    def import_profiles(self) -> None:
        if self._service is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import clusters", "", "YAML (*.yaml *.yml)")
        if path:
            from pathlib import Path

            try:
                self._service.set_profiles(import_profiles(self._service.profiles(), Path(path)))
            except (ProfileError, OSError) as exc:
                self.test_label.setText(f"Import failed: {exc}")

    def export_profiles(self) -> None:
        if self._service is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export clusters", "clusters.yaml", "YAML (*.yaml)")
        if path:
            from pathlib import Path

            Path(path).write_text(dump_profiles(self._service.profiles()), encoding="utf-8")

    # -- cluster state --------------------------------------------------------------------------------
    @Slot(str)
    def _on_cluster_selected(self, name: str) -> None:
        if self._service is None or not name:
            return
        self.form.set_profile(self._service.profile(name))
        self._on_status(name, self._service.status(name))
        self.refresh_gpus()

    @Slot(str, str)
    def _on_status(self, name: str, status: str) -> None:
        if name == self.current_cluster:
            route = self._service.route(name) if self._service is not None else ""
            # Which parser read the ssh config (OpenSSH's ssh -G or paramiko's) is part of the answer.
            shown = f"{status} — {route}" if status == "connected" and route else status
            self.status_label.setText(f"<b>{name}</b>: {html.escape(shown)}")
            self.status_label.setToolTip(route)
            if status == "connected":
                self.refresh_gpus()

    @Slot()
    def test_connection(self) -> None:
        if self._service is not None and self.current_cluster:
            self.test_label.setText("testing…")
            self._service.test_connection(self.current_cluster)

    @Slot(str, str)
    def _on_tested(self, name: str, text: str) -> None:
        self.test_label.setText(f"{name}: {text}")

    @Slot()
    def refresh_gpus(self) -> None:
        if (
            self._service is not None
            and self.current_cluster
            and self._service.status(self.current_cluster) == "connected"
        ):
            self._service.refresh_gpus(self.current_cluster)

    @Slot(str, object)
    def _on_gpus(self, name: str, view: object) -> None:
        if name != self.current_cluster:
            return
        if isinstance(view, str):
            self.gpus.show_error(view)
        elif isinstance(view, GpuView):
            self.gpus.show_view(view)

    @Slot(str, str, str, str, str)
    def _on_unknown_host_key(
        self, name: str, host: str, fingerprint: str, key_type: str, key_b64: str
    ) -> None:
        if self._service is not None and self.host_key_prompt(self, name, host, fingerprint, key_type):
            self._service.accept_host_key(name, host, key_type, key_b64)

    @Slot(str, str)
    def _on_passphrase_needed(self, name: str, why: str) -> None:
        text, ok = QInputDialog.getText(self, f"Passphrase for {name}", why, QLineEdit.EchoMode.Password)
        if ok and self._service is not None:
            self._service.provide_passphrase(name, text)

    def showEvent(self, event: QShowEvent) -> None:  # Qt override: refresh only while visible
        super().showEvent(event)
        if self._service is not None:
            self._gpu_timer.start()
            self.refresh_gpus()

    def hideEvent(self, event: QHideEvent) -> None:  # Qt override
        super().hideEvent(event)
        if self._service is not None:
            self._gpu_timer.stop()

    # -- submit and jobs -----------------------------------------------------------------------------
    @Slot(object)
    def _on_preview(self, submission: SlurmSubmission) -> None:
        assert self._service is not None
        try:
            self.form.show_preview(submission, self._service.preview(submission))
        except (ValueError, OSError) as exc:
            self.form.show_problem(str(exc))

    @Slot(object)
    def _on_submit(self, submission: SlurmSubmission) -> None:
        assert self._service is not None
        try:
            job = self._service.submit(submission)
        except (ValueError, OSError) as exc:
            self.form.show_problem(str(exc))
            return
        self.test_label.setText(f"job {job.id} submitting to {submission.cluster}…")

    @Slot()
    def reload_jobs(self) -> None:
        """Every shown SLURM job read again (profiles loaded); still row-level changes in the table."""
        assert self._service is not None
        self.jobs_model.load(self._service.repo.list_jobs(target=JobTarget.SLURM, limit=JOBS_SHOWN))

    @Slot(int)
    def _on_job_changed(self, job_id: int) -> None:
        assert self._service is not None
        self.jobs_model.apply(job_id, self._service.repo.find(job_id))

    @Slot(int)
    def _on_job_removed(self, job_id: int) -> None:
        self.jobs_model.apply(job_id, None)

    @Slot()
    def cancel_selected(self) -> None:
        assert self._service is not None
        for job_id in [self.jobs_model.job_id_at(i.row()) for i in self.jobs.selectionModel().selectedRows()]:
            self._service.cancel(job_id)
