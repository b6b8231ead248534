"""The "New quantization" form: model, scheme, data, limits, output; refuses a start that cannot work.

Every edit re-checks the whole request in the service's thread (debounced); the Start button is
enabled only when the check found no problem and a worker Python with llmcompressor exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.quantize import (
    RECIPE_SCHEME,
    SCHEMES,
    SCHEMES_BY_ID,
    QuantizeRequest,
    human_bytes,
    human_count,
)
from msquant_desktop.services.quantize_service import DEFAULT_OUTPUT, CheckOutcome, QuantizeService
from msquant_desktop.ui.colors import ERROR, WARNING, text_style
from msquant_desktop.ui.quantize.cluster_target import ClusterTarget
from msquant_desktop.ui.quantize.hf_cache_picker import HfCachePicker

if TYPE_CHECKING:
    from msquant_desktop.quantize.environment import WorkerEnvironment  # a value the service sends
    from msquant_desktop.services.cluster_service import ClusterService

CHECK_DELAY_MS = 250


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class NewQuantizationDialog(QDialog):
    sig_submitted = Signal(int)
    """The job id of the quantization this form started."""

    def __init__(
        self,
        service: QuantizeService,
        model: str = "",
        parent: QWidget | None = None,
        clusters: ClusterService | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New quantization")
        self.setObjectName("new-quantization")
        self._service = service
        self._clusters = clusters
        self._outcome: CheckOutcome | None = None

        self.model_edit = QLineEdit(model)
        self.model_edit.setPlaceholderText("a local Hugging Face model folder (with config.json)")
        self.model_browse = QPushButton("Browse…")
        self.model_summary = QLabel()
        self.model_summary.setWordWrap(True)
        self.scheme_combo = QComboBox()
        for scheme in SCHEMES:
            self.scheme_combo.addItem(scheme.title, scheme.id)
        self.scheme_help = QLabel()
        self.scheme_help.setWordWrap(True)
        self.recipe_edit = QLineEdit()
        self.recipe_edit.setPlaceholderText("recipe.yaml (only for the recipe scheme)")
        self.recipe_browse = QPushButton("Browse…")
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("local .jsonl / .json / .txt file or folder (never a hub name)")
        self.dataset_browse = QPushButton("Browse…")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 100_000)
        self.samples_spin.setValue(64)
        self.seq_len_spin = QSpinBox()
        self.seq_len_spin.setRange(8, 131_072)
        self.seq_len_spin.setValue(512)
        self.ignore_edit = QLineEdit("lm_head")
        self.ignore_edit.setPlaceholderText("layer names, suffixes or re:REGEX, separated by spaces")
        self.out_edit = QLineEdit()
        where = str(service.models_dir) if service.models_dir is not None else DEFAULT_OUTPUT
        self.out_edit.setPlaceholderText(f"a new folder in {where}")
        self.out_edit.setToolTip(
            "Leave empty for a new folder named after the model and scheme in the models folder: "
            "models outlive their jobs.  {run_dir} is the job's own run folder (deleted with the job)."
        )
        self.out_browse = QPushButton("Browse…")
        self.memory_label = QLabel()
        self.memory_label.setWordWrap(True)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(text_style(ERROR, self.palette()))
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()
        self.add_ignore_button = QPushButton("Add these layers to the ignore list")
        self.add_ignore_button.hide()
        self.worker_label = QLabel("Looking for a Python with llmcompressor…")
        self.worker_label.setWordWrap(True)
        self.worker_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Model folder", _path_row(self.model_edit, self.model_browse))
        self.cache_picker = HfCachePicker(service, self.model_edit)  # or a model already downloaded
        form.addRow("", self.cache_picker)
        form.addRow("", self.model_summary)
        form.addRow("Scheme", self.scheme_combo)
        form.addRow("", self.scheme_help)
        form.addRow("Recipe", _path_row(self.recipe_edit, self.recipe_browse))
        form.addRow("Calibration data", _path_row(self.dataset_edit, self.dataset_browse))
        form.addRow("Samples", self.samples_spin)
        form.addRow("Sequence length", self.seq_len_spin)
        form.addRow("Ignore layers", self.ignore_edit)
        form.addRow("Output folder", _path_row(self.out_edit, self.out_browse))
        out_help = QLabel("{run_dir} is the job's own run folder, created when the job starts.")
        out_help.setEnabled(False)
        form.addRow("", out_help)
        self._out_help = out_help
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setEnabled(False)
        layout = QVBoxLayout(self)
        # Run on this computer or a cluster (its own paths and SLURM choices).
        self._form = form
        self.cluster_target = ClusterTarget(clusters, self)
        self.cluster_target.sig_changed.connect(self._on_target_changed)
        layout.addWidget(self.cluster_target)
        layout.addLayout(form)
        layout.addWidget(self.memory_label)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.add_ignore_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.worker_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.resize(720, 560)

        self._check_timer = QTimer(self)
        self._check_timer.setObjectName("quantize-form-check")
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self._check_now)
        for edit in (self.model_edit, self.dataset_edit, self.ignore_edit, self.out_edit, self.recipe_edit):
            edit.textChanged.connect(self._schedule_check)
        self.model_edit.textChanged.connect(self._suggest_dataset)
        self.samples_spin.valueChanged.connect(self._schedule_check)
        self.seq_len_spin.valueChanged.connect(self._schedule_check)
        self.scheme_combo.currentIndexChanged.connect(self._on_scheme_changed)
        self.model_browse.clicked.connect(lambda: self._browse_folder(self.model_edit, "Model folder"))
        self.out_browse.clicked.connect(lambda: self._browse_folder(self.out_edit, "Output folder"))
        self.dataset_browse.clicked.connect(self._browse_dataset)
        self.recipe_browse.clicked.connect(self._browse_recipe)
        self.add_ignore_button.clicked.connect(self._add_indivisible_to_ignore)
        self.buttons.rejected.connect(self.reject)
        self.start_button.clicked.connect(self.start)
        service.sig_checked.connect(self._on_checked)
        service.sig_worker_environment.connect(self._on_worker)
        if service.worker is not None:
            self._on_worker(service.worker)
        service.detect_worker()
        self._suggest_dataset()
        self._on_scheme_changed()

    # -- the request ------------------------------------------------------------------------------------
    def request(self) -> QuantizeRequest:
        scheme = str(self.scheme_combo.currentData())
        return QuantizeRequest(
            model=self.model_edit.text().strip(),
            scheme=scheme,
            out=self.out_edit.text().strip()
            or self._service.default_output(self.model_edit.text().strip(), scheme),
            dataset=self.dataset_edit.text().strip() or None,
            samples=self.samples_spin.value(),
            seq_len=self.seq_len_spin.value(),
            ignore=tuple(p for p in re.split(r"[\s,]+", self.ignore_edit.text()) if p),
            recipe=(self.recipe_edit.text().strip() or None) if scheme == RECIPE_SCHEME else None,
        )

    def select_scheme(self, scheme_id: str) -> None:
        self.scheme_combo.setCurrentIndex(self.scheme_combo.findData(scheme_id))

    @Slot()
    def _schedule_check(self) -> None:
        self.start_button.setEnabled(False)
        self._check_timer.start()

    @Slot()
    def _check_now(self) -> None:
        self._service.check(self.request())
        self.cluster_target.set_request(self.request())

    @Slot()
    def _on_target_changed(self) -> None:
        """On a cluster the local model and output rows give way to the cluster's own."""
        local = self.cluster_target.cluster() is None
        for widget in (self.model_edit, self.out_edit, self.dataset_edit):
            row = widget.parentWidget()  # the path row (edit + Browse…) that is the form's field
            if row is not None:
                self._form.setRowVisible(row, local)
        self._form.setRowVisible(self._out_help, local)
        self.memory_label.setVisible(local)
        self.worker_label.setVisible(local)
        self.problems_label.setVisible(local and bool(self.problems_label.text()))
        self._update_start()  # (on a cluster it hides the local problems too)

    @Slot()
    def _on_scheme_changed(self) -> None:
        scheme = SCHEMES_BY_ID[str(self.scheme_combo.currentData())]
        data = "Needs calibration data." if scheme.needs_data else "No calibration data needed."
        self.scheme_help.setText(f"{scheme.description} {data}")
        is_recipe = scheme.id == RECIPE_SCHEME
        self.recipe_edit.setEnabled(is_recipe)
        self.recipe_browse.setEnabled(is_recipe)
        self._schedule_check()

    @Slot()
    def _suggest_dataset(self) -> None:
        """A demo model ships its calibration.jsonl: offer it when no data was chosen."""
        candidate = Path(self.model_edit.text().strip()).expanduser() / "calibration.jsonl"
        if not self.dataset_edit.text().strip() and self.model_edit.text().strip() and candidate.is_file():
            self.dataset_edit.setText(str(candidate))

    # -- results of the check -------------------------------------------------------------------------
    @Slot(object)
    def _on_checked(self, outcome: CheckOutcome) -> None:
        if outcome.request != self.request():
            return  # an older request; a newer check is on its way
        self._outcome = outcome
        info = outcome.report.model
        if info is not None:
            self.model_summary.setText(
                f"{info.architecture} · {human_count(info.parameters)} parameters · {info.dtype} · "
                f"{human_bytes(info.size_on_disk)} on disk · {info.num_layers} layers"
            )
            self.model_summary.setStyleSheet("")
        else:
            self.model_summary.setText("")
        problems = outcome.report.problems
        self.problems_label.setText("\n".join(f"• {p.message}" for p in problems))
        self.problems_label.setVisible(bool(problems))
        self.add_ignore_button.setVisible(any(p.layers for p in problems))
        memory = outcome.memory
        if memory is None:
            self.memory_label.setText("")
        elif memory.warning():
            self.memory_label.setText(f"⚠ {memory.warning()}")
            self.memory_label.setStyleSheet(text_style(WARNING, self.palette()))
        else:
            self.memory_label.setText(f"Memory: {memory.summary()}")
            self.memory_label.setStyleSheet("")
        self._update_start()

    @Slot(object)
    def _on_worker(self, environment: WorkerEnvironment) -> None:
        self.worker_label.setText(environment.message)
        self.worker_label.setStyleSheet("" if environment.available else text_style(ERROR, self.palette()))
        self._update_start()

    def _update_start(self) -> None:
        if self.cluster_target.cluster() is not None:  # the local folder checks do not apply
            for label in (self.problems_label, self.add_ignore_button, self.memory_label):
                label.hide()
            self.start_button.setEnabled(self.cluster_target.ready_for(self.request()))
            return
        worker_ok = self._service.worker is not None and self._service.worker.available
        checked_ok = (
            self._outcome is not None and self._outcome.report.ok and self._outcome.request == self.request()
        )
        self.start_button.setEnabled(bool(worker_ok and checked_ok))

    @Slot()
    def _add_indivisible_to_ignore(self) -> None:
        if self._outcome is None:
            return
        names = [name for p in self._outcome.report.problems for name in p.layers]
        current = self.ignore_edit.text().split()
        self.ignore_edit.setText(" ".join(current + [n for n in names if n not in current]))

    @Slot()
    def start(self) -> None:
        """Submit the job (only when the last check of exactly this request passed)."""
        self._update_start()
        if not self.start_button.isEnabled():
            return
        prepared = self.cluster_target.prepared
        if self.cluster_target.cluster() is not None and prepared is not None and self._clusters is not None:
            try:
                record = self._clusters.submit_prepared(prepared)
            except ValueError as exc:  # the profile changed since the check
                self.cluster_target.status_label.setText(str(exc))
                return
            self.sig_submitted.emit(record.id)
            self.accept()
            return
        record = self._service.submit(self.request())
        self.sig_submitted.emit(record.id)
        self.accept()

    # -- pickers -----------------------------------------------------------------------------------------
    def _browse_folder(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text())
        if folder:
            edit.setText(folder)

    def _browse_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Calibration data", self.dataset_edit.text(), "Text data (*.jsonl *.json *.txt)"
        )
        if path:
            self.dataset_edit.setText(path)

    def _browse_recipe(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recipe", self.recipe_edit.text(), "YAML (*.yaml *.yml)")
        if path:
            self.recipe_edit.setText(path)
