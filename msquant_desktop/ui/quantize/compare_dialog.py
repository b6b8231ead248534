""" "Compare schemes…": one model, several schemes, one click: a quantization per scheme, each followed by
its evaluation against the original, ending in the Results view's comparison chart.

Every edit re-checks all the quantizations in the service's thread (debounced), as the New
quantization form does for one; Start is enabled only when every one of them passes and a worker
Python exists.  The evaluations are queued by the service when each quantization completes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.evaluate import DEFAULT_SEQ_LEN, MIN_SEQ_LEN, EvaluateRequest
from msquant_desktop.domain.quantize import RECIPE_SCHEME, SCHEMES, QuantizeRequest
from msquant_desktop.services.quantize_service import CheckOutcome, QuantizeService
from msquant_desktop.ui.colors import ERROR, text_style
from msquant_desktop.ui.quantize.hf_cache_picker import HfCachePicker

CHECK_DELAY_MS = 250
DEFAULT_SCHEMES = ("W8A16", "W4A16")


class CompareSchemesDialog(QDialog):
    sig_submitted = Signal(str, list)
    """(the base model as its results will name it, the quantize job ids) once Start queued them."""

    def __init__(self, service: QuantizeService, model: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare schemes")
        self.setObjectName("compare-schemes")
        self._service = service
        self._outcomes: list[CheckOutcome] | None = None

        self.model_edit = QLineEdit(model)
        self.model_edit.setPlaceholderText(
            "a local model folder, or ORG/NAME in the local Hugging Face cache"
        )
        self.model_browse = QPushButton("Browse…")
        self.cache_picker = HfCachePicker(service, self.model_edit)
        self.scheme_boxes: dict[str, QCheckBox] = {}
        schemes = QGridLayout()
        for i, scheme in enumerate(s for s in SCHEMES if s.id != RECIPE_SCHEME):
            box = QCheckBox(scheme.title)
            box.setToolTip(scheme.description)
            box.setChecked(scheme.id in DEFAULT_SCHEMES)
            self.scheme_boxes[scheme.id] = box
            schemes.addWidget(box, i // 2, i % 2)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText(
            "local .jsonl / .json / .txt (only for the schemes that calibrate)"
        )
        self.dataset_browse = QPushButton("Browse…")
        self.seq_len_spin = QSpinBox()
        self.seq_len_spin.setRange(MIN_SEQ_LEN, 131_072)
        self.seq_len_spin.setValue(DEFAULT_SEQ_LEN)
        self.windows_spin = QSpinBox()
        self.windows_spin.setRange(0, 1_000_000)
        self.windows_spin.setSpecialValueText("all")
        self.speed_box = QCheckBox("Measure load time, prefill and decode tokens/s, peak memory")
        self.speed_box.setChecked(True)
        self.text_note = QLabel(
            "Perplexity is measured on the model's own held-out split (a demo model ships one)."
        )
        self.text_note.setWordWrap(True)
        self.text_note.setEnabled(False)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(text_style(ERROR, self.palette()))
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()
        self.worker_label = QLabel("Looking for a Python with llmcompressor…")
        self.worker_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", form_row(self.model_edit, self.model_browse))
        form.addRow("", self.cache_picker)
        form.addRow("Schemes", schemes)
        form.addRow("Calibration data", form_row(self.dataset_edit, self.dataset_browse))
        form.addRow(
            "Evaluation windows",
            form_row(self.seq_len_spin, QLabel("tokens each, at most"), self.windows_spin),
        )
        form.addRow("", self.speed_box)
        form.addRow("", self.text_note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton(
            "Quantize and evaluate", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.start_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.worker_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.resize(720, 480)

        self._check_timer = QTimer(self)
        self._check_timer.setObjectName("compare-form-check")
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self._check_now)
        self.model_edit.textChanged.connect(self._schedule_check)
        self.model_edit.textChanged.connect(self._suggest_dataset)
        self.dataset_edit.textChanged.connect(self._schedule_check)
        for box in self.scheme_boxes.values():
            box.toggled.connect(self._schedule_check)
        self.model_browse.clicked.connect(self._browse_model)
        self.dataset_browse.clicked.connect(self._browse_dataset)
        self.buttons.rejected.connect(self.reject)
        self.start_button.clicked.connect(self.start)
        service.sig_checked_all.connect(self._on_checked)
        # A bound method, not a lambda: Qt drops the connection when this dialog is destroyed (a
        # lambda would outlive it and touch its deleted widgets when the service emits later).
        service.sig_worker_environment.connect(self._on_worker_environment)
        service.detect_worker()
        self._suggest_dataset()
        self._schedule_check()

    # -- the requests ---------------------------------------------------------------------------------------
    def schemes(self) -> list[str]:
        return [scheme_id for scheme_id, box in self.scheme_boxes.items() if box.isChecked()]

    def select_schemes(self, scheme_ids: list[str]) -> None:
        for scheme_id, box in self.scheme_boxes.items():
            box.setChecked(scheme_id in scheme_ids)

    def requests(self) -> list[QuantizeRequest]:
        return self._service.comparison_requests(
            self.model_edit.text().strip(), self.schemes(), self.dataset_edit.text().strip() or None
        )

    def evaluation(self) -> EvaluateRequest:
        """The evaluation each quantization is followed by (model and original filled in per result)."""
        windows = self.windows_spin.value()
        return EvaluateRequest(
            model="",
            seq_len=self.seq_len_spin.value(),
            max_windows=windows or None,
            speed=self.speed_box.isChecked(),
        )

    @Slot()
    def _schedule_check(self) -> None:
        self.start_button.setEnabled(False)
        self._check_timer.start()

    @Slot()
    def _check_now(self) -> None:
        requests = self.requests()
        if not requests:
            self._outcomes = []
            self._show_problems(["choose at least one scheme"])
            return
        self._service.check_all(requests)

    @Slot()
    def _suggest_dataset(self) -> None:
        """A demo model ships its calibration.jsonl: offer it for the schemes that calibrate."""
        candidate = Path(self.model_edit.text().strip()).expanduser() / "calibration.jsonl"
        if not self.dataset_edit.text().strip() and self.model_edit.text().strip() and candidate.is_file():
            self.dataset_edit.setText(str(candidate))

    @Slot(object)
    def _on_checked(self, outcomes: list[CheckOutcome]) -> None:
        if [o.request for o in outcomes] != self.requests():
            return  # for an older form; a newer check is on its way
        self._outcomes = outcomes
        problems: list[str] = []
        for outcome in outcomes:
            for problem in outcome.report.problems:
                text = f"{outcome.request.scheme}: {problem.message}"
                if problem.message not in " ".join(problems):  # a model problem once, not per scheme
                    problems.append(text)
        self._show_problems(problems)

    def _show_problems(self, problems: list[str]) -> None:
        self.problems_label.setText("\n".join(f"• {p}" for p in problems))
        self.problems_label.setVisible(bool(problems))
        self._update_start()

    @Slot(object)
    def _on_worker_environment(self, _env: object) -> None:
        self._update_start()

    def _update_start(self) -> None:
        worker = self._service.worker
        if worker is not None:
            self.worker_label.setText(worker.message)
            self.worker_label.setStyleSheet("" if worker.available else text_style(ERROR, self.palette()))
        outcomes = self._outcomes
        ok = (
            bool(outcomes)
            and outcomes is not None
            and all(o.report.ok for o in outcomes)
            and [o.request for o in outcomes] == self.requests()
        )
        self.start_button.setEnabled(bool(ok and worker is not None and worker.available))

    def base_model(self) -> str:
        """The model folder as the results will name it (the worker records the resolved folder)."""
        outcomes = self._outcomes or []
        info = outcomes[0].report.model if outcomes else None
        return str(Path(info.path).resolve()) if info is not None else self.model_edit.text().strip()

    @Slot()
    def start(self) -> None:
        """Queue every quantization with its evaluation to follow (only when the last check passed)."""
        self._update_start()
        if not self.start_button.isEnabled():
            return
        records = self._service.submit_comparison(self.requests(), self.evaluation())
        self.sig_submitted.emit(self.base_model(), [r.id for r in records])
        self.accept()

    # -- pickers -----------------------------------------------------------------------------------------------
    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)

    def _browse_dataset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Calibration data", self.dataset_edit.text(), "Text data (*.jsonl *.json *.txt)"
        )
        if path:
            self.dataset_edit.setText(path)


def form_row(*widgets: QWidget) -> QWidget:
    """Widgets side by side in one form row, the first one stretching."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if i == 0 else 0)
    return row
