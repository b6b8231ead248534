"""The "Evaluate a model…" form: any model folder (or one from the Hugging Face cache), an optional
original to compare with, held-out text, windows and speed runs; queued as an evaluation job, on this
computer or on a cluster ("Run on", `evaluate_target.py`).

Locally, every edit re-checks the inputs in the service's thread with the worker's own rule
(`quantize/evaluate_inputs.py`); Start is enabled only when that found no problem and a worker
Python exists.  On a cluster the paths are the cluster's and every edit asks the cluster (its Python,
llmcompressor, the folders: `cluster_quantize.prepare_evaluate` on the cluster's worker thread);
Start sends the checked job.  A local result row's Evaluate button needs no form (it evaluates against
the base model); a cluster result's opens this form on its cluster, its paths there filled in.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.evaluate import DEFAULT_SEQ_LEN, MIN_SEQ_LEN, EvaluateRequest
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.quantize_service import QuantizeService
from msquant_desktop.ui.colors import ERROR, text_style
from msquant_desktop.ui.quantize.compare_dialog import CHECK_DELAY_MS, form_row
from msquant_desktop.ui.quantize.evaluate_target import EvaluateTarget
from msquant_desktop.ui.quantize.hf_cache_picker import HfCachePicker

MODEL_HINT = "a model folder (quantized or not), or ORG/NAME in the local cache"
TEXT_HINT = "held-out .txt / .jsonl file or folder (empty: the demo model's split)"


class EvaluateDialog(QDialog):
    sig_submitted = Signal(int)
    """The job id of the evaluation this form queued."""

    def __init__(
        self,
        service: QuantizeService,
        model: str = "",
        parent: QWidget | None = None,
        clusters: ClusterService | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Evaluate a model")
        self.setObjectName("evaluate-model")
        self._service = service
        self._clusters = clusters
        self._checked: tuple[EvaluateRequest, str] | None = None
        self._presets: dict[str | None, tuple[str, str]] = {}
        """(model, original) each target was opened with (`preset`): a switch swaps them."""
        self._target_shown: str | None = None
        self.model_edit = QLineEdit(model)
        self.model_edit.setPlaceholderText(MODEL_HINT)
        self.model_browse = QPushButton("Browse…")
        self.model_picker = HfCachePicker(service, self.model_edit)
        self.original_edit = QLineEdit()
        self.original_edit.setPlaceholderText("optional: the model it was quantized from (Δ, top-1, KL)")
        self.original_browse = QPushButton("Browse…")
        self.original_picker = HfCachePicker(service, self.original_edit)
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText(TEXT_HINT)
        self.text_browse = QPushButton("Browse…")
        self.seq_len_spin = QSpinBox()
        self.seq_len_spin.setRange(MIN_SEQ_LEN, 131_072)
        self.seq_len_spin.setValue(DEFAULT_SEQ_LEN)
        self.windows_spin = QSpinBox()
        self.windows_spin.setRange(0, 1_000_000)
        self.windows_spin.setSpecialValueText("all")
        self.speed_box = QCheckBox("Measure load time, prefill and decode tokens/s, peak memory")
        self.speed_box.setChecked(True)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(text_style(ERROR, self.palette()))
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()
        self.worker_label = QLabel("Looking for a Python with llmcompressor…")
        self.worker_label.setWordWrap(True)
        self.cluster_target = EvaluateTarget(clusters, self)
        form = self._form = QFormLayout()
        form.addRow("Model", form_row(self.model_edit, self.model_browse))
        form.addRow("", self.model_picker)
        form.addRow("Original", form_row(self.original_edit, self.original_browse))
        form.addRow("", self.original_picker)
        form.addRow("Held-out text", form_row(self.text_edit, self.text_browse))
        form.addRow("Windows", form_row(self.seq_len_spin, QLabel("tokens each, at most"), self.windows_spin))
        form.addRow("", self.speed_box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Evaluate", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.cluster_target)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.worker_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.resize(720, 420)

        self._check_timer = QTimer(self)
        self._check_timer.setObjectName("evaluate-form-check")
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(lambda: self._service.check_evaluation(self.request()))
        for edit in (self.model_edit, self.original_edit, self.text_edit):
            edit.textChanged.connect(self._schedule_check)
        for spin in (self.seq_len_spin, self.windows_spin):
            spin.valueChanged.connect(self._schedule_check)
        self.speed_box.toggled.connect(self._schedule_check)
        self.model_browse.clicked.connect(lambda: self._browse_folder(self.model_edit))
        self.original_browse.clicked.connect(lambda: self._browse_folder(self.original_edit))
        self.text_browse.clicked.connect(self._browse_text)
        self.buttons.rejected.connect(self.reject)
        self.start_button.clicked.connect(self.start)
        self.cluster_target.sig_changed.connect(self._on_target_changed)
        service.sig_evaluation_checked.connect(self._on_checked)
        # A bound method, not a lambda: Qt drops the connection when this dialog is destroyed (a
        # lambda would outlive it and touch its deleted widgets when the service emits later).
        service.sig_worker_environment.connect(self._on_worker_environment)
        service.detect_worker()
        self._schedule_check()

    def request(self) -> EvaluateRequest:
        text = self.text_edit.text().strip()
        return EvaluateRequest(
            model=self.model_edit.text().strip(),
            original=self.original_edit.text().strip() or None,
            texts=(text,) if text else (),
            seq_len=self.seq_len_spin.value(),
            max_windows=self.windows_spin.value() or None,
            speed=self.speed_box.isChecked(),
        )

    def preset(self, target: str | None, model: str, original: str = "") -> None:
        """What Model and Original say on `target` (None: this computer); shown now when it is the
        current target, and whenever the user switches to it without having edited them."""
        self._presets[target] = (model, original)
        if target == self.cluster_target.cluster():
            self.model_edit.setText(model)
            self.original_edit.setText(original)

    def choose_target(self, target: str | None) -> None:
        index = self.cluster_target.target_combo.findData(target)
        if index >= 0:
            self.cluster_target.target_combo.setCurrentIndex(index)

    @Slot()
    def _on_target_changed(self) -> None:
        cluster = self.cluster_target.cluster()
        if cluster != self._target_shown:
            before = self._presets.get(self._target_shown)
            now = (self.model_edit.text().strip(), self.original_edit.text().strip())
            if cluster in self._presets and (before is None or before == now):
                self.model_edit.setText(self._presets[cluster][0])
                self.original_edit.setText(self._presets[cluster][1])
            self._target_shown = cluster
            local = cluster is None
            for widget in (self.model_browse, self.original_browse, self.text_browse):
                widget.setVisible(local)
            for picker in (self.model_picker, self.original_picker):
                self._form.setRowVisible(picker, local)  # the cache on this computer
            self.worker_label.setVisible(local)
            self.model_edit.setPlaceholderText(
                MODEL_HINT if local else "the model's folder on the cluster (quantized or not)"
            )
            self.text_edit.setPlaceholderText(
                TEXT_HINT if local else "held-out .txt / .jsonl on the cluster (empty: the model's own split)"
            )
            self._schedule_check()
            return
        self._update_start()

    @Slot()
    def _schedule_check(self) -> None:
        self.start_button.setEnabled(False)
        if self.cluster_target.cluster() is not None:
            self.problems_label.hide()
            self.cluster_target.set_request(self.request())
            return
        self._check_timer.start()

    @Slot(object, str)
    def _on_checked(self, request: EvaluateRequest, problem: str) -> None:
        if request != self.request() or self.cluster_target.cluster() is not None:
            return  # an older form, a newer check is on its way, or the cluster checks it
        if not request.model:
            problem = "choose the model folder to evaluate"
        self._checked = (request, problem)
        self.problems_label.setText(f"• {problem}" if problem else "")
        self.problems_label.setVisible(bool(problem))
        self._update_start()

    @Slot(object)
    def _on_worker_environment(self, _env: object) -> None:
        self._update_start()

    def _update_start(self) -> None:
        if self.cluster_target.cluster() is not None:
            self.start_button.setEnabled(self.cluster_target.ready_for(self.request()))
            return
        worker = self._service.worker
        if worker is not None:
            self.worker_label.setText(worker.message)
            self.worker_label.setStyleSheet("" if worker.available else text_style(ERROR, self.palette()))
        checked = self._checked
        ok = checked is not None and not checked[1] and checked[0] == self.request()
        self.start_button.setEnabled(bool(ok and worker is not None and worker.available))

    @Slot()
    def start(self) -> None:
        self._update_start()
        if not self.start_button.isEnabled():
            return
        prepared = self.cluster_target.prepared
        if self.cluster_target.cluster() is not None:
            if prepared is None or self._clusters is None:
                return
            try:
                record = self._clusters.submit_prepared(prepared)
            except (ValueError, OSError) as exc:
                self.cluster_target.status_label.setText(str(exc))
                return
            self.sig_submitted.emit(record.id)
            self.accept()
            return
        record = self._service.submit_evaluation(self.request())
        self.sig_submitted.emit(record.id)
        self.accept()

    def _browse_folder(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", edit.text())
        if folder:
            edit.setText(folder)

    def _browse_text(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Held-out text", self.text_edit.text(), "Text (*.txt *.jsonl)"
        )
        if path:
            self.text_edit.setText(path)
