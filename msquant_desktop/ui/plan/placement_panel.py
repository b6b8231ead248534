"""Placement of the planned replicas on a connected cluster's free GPUs, and the sbatch scripts they
would be submitted with (a read-only preview: this panel submits nothing).

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

from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.serve_placement import DEFAULT_BASE_PORT, DEFAULT_SERVE_TEMPLATE
from msquant_desktop.slurm.gpus import GpuView

CONNECTED = "connected"


class PlacementPanel(QWidget):
    sig_inputs_changed = Signal()
    """The cluster, its view, the template or the port changed: place again."""

    def __init__(self, clusters: ClusterService | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._clusters = clusters
        self.views: dict[str, GpuView] = {}
        self.cluster_combo = QComboBox()
        self.cluster_combo.setObjectName("plan-cluster")
        self.refresh_button = QPushButton("Refresh free GPUs")
        self.template_edit = QLineEdit(DEFAULT_SERVE_TEMPLATE)
        self.template_edit.setToolTip(
            "{model}, {tp}, {port} and {replica} are filled in; every word is quoted"
        )
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
        self.preview.setPlaceholderText(
            "The sbatch script of each placed replica appears here (preview only)."
        )
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
        self.refresh_button.clicked.connect(self.refresh)
        self.cluster_combo.currentIndexChanged.connect(self._on_cluster_chosen)
        self.template_edit.editingFinished.connect(self.sig_inputs_changed)
        self.model_edit.editingFinished.connect(self.sig_inputs_changed)
        self.port_spin.valueChanged.connect(lambda _v: self.sig_inputs_changed.emit())
        if clusters is not None:
            clusters.sig_gpus.connect(self.set_cluster_view)
            clusters.sig_cluster_status.connect(self._on_status)
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

    def show_problem(self, text: str) -> None:
        self.summary.setText(text)
        self.preview.clear()
