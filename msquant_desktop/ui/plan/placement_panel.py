"""Placement of the planned replicas on a connected cluster's free GPUs, the sbatch scripts they are
submitted with, and their submission: "Submit N replicas…" shows each script exactly as it will be sent
(`ReplicaConfirmDialog`, editable), then hands each replica to `ClusterService.submit` as an ordinary
SLURM job (tracked in the Jobs and Clusters tabs); "Cancel replicas" scancels the group's unfinished jobs.

The free-GPU views come from `ClusterService.sig_gpus` (the same data as the Clusters tab); placing
and rendering run on the planner's worker thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.serve_placement import (
    DEFAULT_BASE_PORT,
    DEFAULT_SERVE_TEMPLATE,
    SERVE_KIND,
    PlacedReplicas,
    group_jobs,
    template_for,
)
from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.ui.plan.replica_confirm import ReplicaConfirmDialog

CONNECTED = "connected"


class PlacementPanel(QWidget):
    sig_inputs_changed = Signal()
    """The cluster, its view, the template or the port changed: place again."""
    sig_replicas_submitted = Signal(str, object)
    """A group's replicas were handed to the cluster: (group, job ids)."""

    def __init__(self, clusters: ClusterService | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._clusters = clusters
        self.views: dict[str, GpuView] = {}
        self.cluster_combo = QComboBox()
        self.cluster_combo.setObjectName("plan-cluster")
        self.refresh_button = QPushButton("Refresh free GPUs")
        self.template_edit = QLineEdit(DEFAULT_SERVE_TEMPLATE)
        self.template_edit.setToolTip(
            "{model}, {tp}, {port} and {replica} are filled in; every word is quoted "
            "(the cluster's `serve_template:` in clusters.yaml, or vllm serve)"
        )
        self._template_typed = False
        """The user typed a serve command: a cluster chosen later does not replace it."""
        self.template_edit.textEdited.connect(lambda _text: setattr(self, "_template_typed", True))
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("the model's path on the cluster")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1024, 65535)
        self.port_spin.setValue(DEFAULT_BASE_PORT)
        self.summary = QLabel("No cluster connected: placement needs a connected cluster (Clusters tab).")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("plan-placement-summary")
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setObjectName("plan-sbatch-preview")
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setPlaceholderText("The sbatch script of each placed replica appears here.")
        self.submit_button = QPushButton("Submit replicas…")
        self.submit_button.setObjectName("plan-submit-replicas")
        self.submit_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel replicas")
        self.cancel_button.setObjectName("plan-cancel-replicas")
        self.cancel_button.setEnabled(False)
        self.jobs_label = QLabel()
        self.jobs_label.setObjectName("plan-replica-jobs")
        self.jobs_label.setWordWrap(True)
        self.plan: PlacedReplicas | None = None
        self.confirm_dialog: ReplicaConfirmDialog | None = None
        self.group: str | None = None
        self.group_job_ids: list[int] = []
        top = QHBoxLayout()
        top.addWidget(QLabel("Cluster"))
        top.addWidget(self.cluster_combo, 1)
        top.addWidget(self.refresh_button)
        form = QFormLayout()
        form.addRow("Serve command", self.template_edit)
        form.addRow("Model on the cluster", self.model_edit)
        form.addRow("First port", self.port_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.preview, 1)
        actions = QHBoxLayout()
        actions.addWidget(self.jobs_label, 1)
        actions.addWidget(self.cancel_button)
        actions.addWidget(self.submit_button)
        layout.addLayout(actions)
        self.refresh_button.clicked.connect(self.refresh)
        self.submit_button.clicked.connect(self.confirm_submit)
        self.cancel_button.clicked.connect(self.cancel_group)
        self.cluster_combo.currentIndexChanged.connect(self._on_cluster_chosen)
        self.template_edit.editingFinished.connect(self.sig_inputs_changed)
        self.model_edit.editingFinished.connect(self.sig_inputs_changed)
        self.port_spin.valueChanged.connect(lambda _v: self.sig_inputs_changed.emit())
        if clusters is not None:
            clusters.sig_gpus.connect(self.set_cluster_view)
            clusters.sig_cluster_status.connect(self._on_status)
            clusters.sig_job_changed.connect(self._on_job_changed)
        self.reload_clusters()

    # -- clusters --------------------------------------------------------------------------------------
    def reload_clusters(self) -> None:
        """List the connected clusters (and any whose view arrived), keeping the current choice."""
        current = self.cluster_name()
        names = sorted(self.views)
        if self._clusters is not None:
            for profile in self._clusters.profiles():
                if self._clusters.status(profile.name) == CONNECTED and profile.name not in names:
                    names.append(profile.name)
        self.cluster_combo.blockSignals(True)
        self.cluster_combo.clear()
        self.cluster_combo.addItems(names)
        if current in names:
            self.cluster_combo.setCurrentText(current)
        self.cluster_combo.blockSignals(False)
        self.refresh_button.setEnabled(bool(names) and self._clusters is not None)
        if names and current not in names:
            self._on_cluster_chosen()

    def cluster_name(self) -> str | None:
        return self.cluster_combo.currentText() or None

    def cluster_profile(self, name: str) -> ClusterProfile:
        """The cluster's profile; without the cluster service (a preview on a view alone) a bare one
        with the default workspace, from which nothing can be submitted."""
        if self._clusters is not None:
            try:
                return self._clusters.profile(name)
            except (KeyError, ValueError):
                pass
        return ClusterProfile(name, "", "~/msquant-runs")

    def can_submit(self) -> bool:
        name = self.plan.cluster if self.plan is not None else None
        return (
            self.plan is not None
            and self.plan.fits
            and bool(self.plan.replicas)
            and self._clusters is not None
            and name is not None
            and self._clusters.status(name) == CONNECTED
        )

    def current_view(self) -> GpuView | None:
        name = self.cluster_name()
        return self.views.get(name) if name else None

    def cluster_gpu_types(self) -> list[tuple[str, str]]:
        """(cluster, GRES type) seen: in the views received and in the profiles' allowed types."""
        seen: set[tuple[str, str]] = set()
        for name, view in self.views.items():
            seen.update((name, t) for t in view.by_type if t)
        if self._clusters is not None:
            for profile in self._clusters.profiles():
                seen.update((profile.name, t) for t in profile.allowed_gpu_types)
        return sorted(seen)

    @Slot()
    def refresh(self) -> None:
        name = self.cluster_name()
        if name and self._clusters is not None:
            self.summary.setText(f"Reading the free GPUs of {name}…")
            self._clusters.refresh_gpus(name)

    @Slot()
    def _on_cluster_chosen(self, *_args: Any) -> None:
        name = self.cluster_name()
        if name and not self._template_typed:
            self.template_edit.setText(template_for(self.cluster_profile(name)))
        if name and name not in self.views:
            self.refresh()
        self.sig_inputs_changed.emit()

    @Slot(str, str)
    def _on_status(self, _name: str, _status: str) -> None:
        self.reload_clusters()

    @Slot(str, object)
    def set_cluster_view(self, name: str, view: object) -> None:
        """A cluster's free-GPU view (or an error message) arrived."""
        if isinstance(view, GpuView):
            self.views[name] = view
            self.reload_clusters()
            if self.cluster_name() is None:
                self.cluster_combo.setCurrentText(name)
            if name == self.cluster_name():
                self.sig_inputs_changed.emit()
        elif name == self.cluster_name():
            self.summary.setText(f"Free GPUs of {name} not available: {view}")

    # -- results ---------------------------------------------------------------------------------------
    def show_result(self, result: dict[str, Any]) -> None:
        self.summary.setText(result["summary"])
        self.preview.setPlainText(result["scripts"])
        self.plan = result.get("plan")
        count = len(self.plan.replicas) if self.plan is not None else 0
        self.submit_button.setText(f"Submit {count} replicas…" if count else "Submit replicas…")
        self.submit_button.setEnabled(self.can_submit())

    def show_problem(self, text: str) -> None:
        self.summary.setText(text)
        self.preview.clear()
        self.plan = None
        self.submit_button.setEnabled(False)

    # -- submit and cancel -----------------------------------------------------------------------------
    @Slot()
    def confirm_submit(self) -> None:
        """Show the scripts that will be sent; the replicas go when the dialog is accepted."""
        if not self.can_submit() or self.plan is None:
            return
        dialog = ReplicaConfirmDialog(self.plan, self.cluster_profile(self.plan.cluster), self)
        dialog.accepted.connect(lambda: self.submit_confirmed(dialog.chosen))
        dialog.finished.connect(dialog.deleteLater)
        self.confirm_dialog = dialog
        dialog.open()

    def submit_confirmed(self, submissions: list[SlurmSubmission]) -> list[int]:
        """Hand each confirmed replica to the cluster (stored, then sent by the cluster's worker)."""
        plan = self.plan
        self.confirm_dialog = None
        if plan is None or self._clusters is None or len(submissions) != len(plan.replicas):
            return []
        ids: list[int] = []
        for replica, submission in zip(plan.replicas, submissions, strict=True):
            try:
                ids.append(self._clusters.submit(submission, SERVE_KIND, replica.meta).id)
            except ValueError as exc:
                self.jobs_label.setText(f"Replica {replica.slot.replica} not submitted: {exc}")
                break
        self.group = plan.replicas[0].group
        self.group_job_ids = ids
        self._show_group()
        self.sig_replicas_submitted.emit(self.group, ids)
        self.refresh()  # read the free GPUs again: the next placement (a new group) sees these replicas
        return ids

    @Slot()
    def cancel_group(self) -> None:
        """scancel every unfinished replica of the group submitted last (the state follows the cluster)."""
        if self.group is None or self._clusters is None:
            return
        for job in group_jobs(self._clusters.repo, self.group):
            if not job.state.is_final:
                self._clusters.cancel(job.id)
        self._show_group()

    @Slot(int)
    def _on_job_changed(self, job_id: int) -> None:
        if job_id in self.group_job_ids:
            self._show_group()

    def _show_group(self) -> None:
        if self.group is None or self._clusters is None:
            return
        jobs = group_jobs(self._clusters.repo, self.group)
        parts = [
            f"replica {j.spec.meta['serve']['replica']}: job {j.id} on {j.spec.meta['serve']['node']}:"
            f"{j.spec.meta['serve']['port']} {j.state.value}"
            for j in jobs
        ]
        self.jobs_label.setText(
            f"Group {self.group} ({len(jobs)} jobs; Jobs and Clusters tabs): " + "; ".join(parts)
        )
        self.cancel_button.setEnabled(any(not j.state.is_final for j in jobs))
