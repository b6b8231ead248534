"""Where a quantization runs: this computer, or a cluster with what the job asks of SLURM.

On a cluster the paths are the cluster's; partition, GPU type, count and time limit are offered from
the cluster's free-GPU view; the Python is the cluster's (its profile's `python:` by default).  The
model is a folder there or a Hugging Face repo id found in the cluster's HF cache.  Every edit asks
the cluster again (debounced) whether the job can run there — its Python and llmcompressor, the
model, the output — through `ClusterService.check_quantize`; Start is allowed only for the
inputs of the last check that passed.  The memory line compares the model's weights with the chosen
GPU type's memory (`domain/gpu_catalog.py`) and the node's free RAM.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.quantize import QuantizeRequest
from msquant_desktop.services.cluster_quantize import ClusterResources, PreparedJob, gpu_memory_check
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.ui.colors import ERROR, WARNING, text_style

LOCAL = "This computer"
CHECK_DELAY_MS = 600


class ClusterTarget(QWidget):
    sig_changed = Signal()
    """The target or a check result changed: the form re-evaluates its Start button."""

    def __init__(self, clusters: ClusterService | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quantize-target")
        self._clusters = clusters
        self._token = 0
        self._checked_for: tuple[object, ...] | None = None
        self._pending_key: tuple[object, ...] | None = None
        self._view: GpuView | None = None
        self.prepared: PreparedJob | None = None
        self._request: object | None = None  # the form's request (a QuantizeRequest here)

        self.target_combo = QComboBox()
        self.target_combo.addItem(LOCAL, None)
        for profile in clusters.profiles() if clusters is not None else []:
            self.target_combo.addItem(profile.name, profile.name)
        self.target_combo.setEnabled(self.target_combo.count() > 1)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText(
            "the model's folder on the cluster, or a repo id in its HF cache (org/name[@revision])"
        )
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("a new folder on the cluster")
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("calibration data on the cluster (schemes that need it)")
        self.python_edit = QLineEdit()
        self.partition_combo = QComboBox()
        self.partition_combo.setEditable(True)
        self.gpu_type_combo = QComboBox()
        self.gpu_type_combo.setEditable(True)
        self.gpus_spin = QSpinBox()
        self.gpus_spin.setRange(0, 64)
        self.gpus_spin.setValue(1)
        self.time_edit = QLineEdit("01:00:00")
        self.memory_edit = QLineEdit()
        self.memory_edit.setPlaceholderText("node RAM for the job, e.g. 64G (empty: the partition's default)")
        self.free_label = QLabel()
        self.free_label.setWordWrap(True)
        self.memory_label = QLabel()
        self.memory_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        self.fields = QWidget()
        form = self.form = QFormLayout(self.fields)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Model on the cluster", self.model_edit)
        form.addRow("Output on the cluster", self.out_edit)
        form.addRow("Calibration data", self.dataset_edit)
        form.addRow("Cluster's Python", self.python_edit)
        form.addRow("Partition", self.partition_combo)
        form.addRow("GPU type", self.gpu_type_combo)
        form.addRow("GPUs", self.gpus_spin)
        form.addRow("Time limit", self.time_edit)
        form.addRow("Memory", self.memory_edit)
        form.addRow("", self.free_label)
        form.addRow("", self.memory_label)
        form.addRow("", self.status_label)
        top = QFormLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addRow("Run on", self.target_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.fields)
        self.fields.hide()

        self._timer = QTimer(self)
        self._timer.setObjectName("quantize-cluster-check")
        self._timer.setSingleShot(True)
        self._timer.setInterval(CHECK_DELAY_MS)
        self._timer.timeout.connect(self._check_now)
        self.target_combo.currentIndexChanged.connect(self._on_target_changed)
        edits = (
            self.model_edit,
            self.out_edit,
            self.dataset_edit,
            self.python_edit,
            self.time_edit,
            self.memory_edit,
        )
        for edit in edits:
            edit.textChanged.connect(self.schedule_check)
        for combo in (self.partition_combo, self.gpu_type_combo):
            combo.currentTextChanged.connect(self.schedule_check)
        self.gpus_spin.valueChanged.connect(self.schedule_check)
        if clusters is not None:
            clusters.sig_job_checked.connect(self._on_checked)
            clusters.sig_gpus.connect(self._on_gpus)

    # -- what the form asks ---------------------------------------------------------------------------
    def cluster(self) -> str | None:
        value = self.target_combo.currentData()
        return str(value) if value else None

    def resources(self) -> ClusterResources:
        return ClusterResources(
            partition=self.partition_combo.currentText().strip() or None,
            gpu_type=self.gpu_type_combo.currentText().strip() or None,
            gpus=self.gpus_spin.value(),
            time_limit=self.time_edit.text().strip() or None,
            memory=self.memory_edit.text().strip() or None,
        )

    def remote_request(self, local: QuantizeRequest) -> QuantizeRequest:
        """The form's request with the cluster's paths in place of the local ones."""
        return QuantizeRequest(
            model=self.model_edit.text().strip(),
            scheme=local.scheme,
            out=self.out_edit.text().strip(),
            dataset=self.dataset_edit.text().strip() or None,
            samples=local.samples,
            seq_len=local.seq_len,
            ignore=local.ignore,
            recipe=local.recipe,
        )

    def ready_for(self, local: object) -> bool:
        """The last check passed for exactly these inputs."""
        return self.prepared is not None and self._checked_for == self._key(local)

    def _key(self, local: object) -> tuple[object, ...]:
        return (self.cluster(), self._remote(local), self.python_edit.text().strip(), self.resources())

    # -- what a kind of job checks (the Evaluate form's target overrides these three) ------------------
    def _remote(self, local: object) -> object:
        """The request the cluster is asked about."""
        assert isinstance(local, QuantizeRequest)
        return self.remote_request(local)

    def _missing(self, remote: object) -> str:
        """What to fill in before the cluster is asked ("" when nothing)."""
        assert isinstance(remote, QuantizeRequest)
        return (
            ""
            if remote.model and remote.out
            else "Give the model (its folder on the cluster or a cached repo id) and a new output folder."
        )

    def _ask(self, clusters: ClusterService, cluster: str, remote: object) -> int:
        assert isinstance(remote, QuantizeRequest)
        return clusters.check_quantize(cluster, remote, self.python_edit.text().strip(), self.resources())

    # -- checking -------------------------------------------------------------------------------------
    def set_request(self, local: object) -> None:
        """The form's request changed (scheme, samples, ...): check again on the cluster."""
        if local != self._request:
            self._request = local
            self.schedule_check()

    @Slot()
    def schedule_check(self) -> None:
        self.prepared = None
        if self.cluster() is not None:
            self._timer.start()
        self.sig_changed.emit()

    @Slot()
    def _check_now(self) -> None:
        cluster = self.cluster()
        if cluster is None or self._clusters is None or self._request is None:
            return
        request = self._remote(self._request)
        missing = self._missing(request)
        if missing:
            self._show_status(missing, "")
            return
        try:
            self._token = self._ask(self._clusters, cluster, request)
        except ValueError as exc:  # no Python set, unknown cluster
            self._show_status(str(exc), text_style(ERROR, self.palette()))
            return
        self._pending_key = self._key(self._request)
        self._show_status(f"Asking {cluster} about its Python and the paths…", "")

    @Slot(int, object)
    def _on_checked(self, token: int, answer: object) -> None:
        if token != self._token:
            return  # an older check, or another form's
        if isinstance(answer, PreparedJob):
            self.prepared = answer
            self._checked_for = self._pending_key
            hub = answer.meta.get("hub_models", {}).get("model")
            found = f"; {hub['repo_id']} is {hub['path']} in its HF cache" if hub else ""
            self._show_status(f"Ready: {answer.python.describe()}{found}", "")
            self._show_memory(answer)
        else:
            self.prepared = None
            self._show_status(str(answer), text_style(ERROR, self.palette()))
        self.sig_changed.emit()

    def _show_memory(self, prepared: PreparedJob) -> None:
        model = (prepared.meta.get("quantize") or prepared.meta.get("evaluate") or {}).get("model", "")
        weights = prepared.python.weights.get(model, 0)
        res = self.resources()
        fits, line = gpu_memory_check(weights, res.gpu_type, res.gpus)
        text = line[0].upper() + line[1:] + "."
        nodes = [
            r for r in (self._view.rows if self._view else []) if r.usable and r.gpu_type == res.gpu_type
        ]
        ram = max((r.memory_free_mb for r in nodes if r.memory_free_mb is not None), default=None)
        if ram is not None:
            text += f" The roomiest {res.gpu_type} node has {ram / 1024:.1f} GiB of RAM free."
            fits = fits and ram * 1024 * 1024 >= weights
        self.memory_label.setText(("" if fits else "⚠ ") + text)
        self.memory_label.setStyleSheet("" if fits else text_style(WARNING, self.palette()))

    def _show_status(self, text: str, style: str) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(style)

    # -- the cluster ----------------------------------------------------------------------------------
    @Slot()
    def _on_target_changed(self) -> None:
        cluster = self.cluster()
        self.fields.setVisible(cluster is not None)
        if cluster is not None and self._clusters is not None:
            profile = self._clusters.profile(cluster)
            if not self.python_edit.text().strip():
                self.python_edit.setText(profile.python or "")
            self.python_edit.setPlaceholderText("a Python on the cluster that has llmcompressor")
            self.free_label.setText(f"Asking {cluster} for its free GPUs…")
            self._clusters.refresh_gpus(cluster)
        self.schedule_check()

    @Slot(str, object)
    def _on_gpus(self, name: str, view: object) -> None:
        if name != self.cluster():
            return
        if not isinstance(view, GpuView):
            self.free_label.setText(f"Free GPUs unknown: {view}")
            return
        self._view = view
        free = ", ".join(f"{t or 'gpu'}: {c.free} of {c.total} free" for t, c in sorted(view.by_type.items()))
        self.free_label.setText(free or "No GPUs on this cluster.")
        types = sorted((t for t in view.by_type if t), key=lambda t: (-view.free(t), t))
        for combo, values, default in (
            (self.partition_combo, ["", *sorted(view.by_partition)], ""),  # "": the cluster's default
            (self.gpu_type_combo, types, types[0] if types else ""),  # the type with most free first
        ):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(values)
            combo.setCurrentText(current or default)
            combo.blockSignals(False)
        self.schedule_check()
