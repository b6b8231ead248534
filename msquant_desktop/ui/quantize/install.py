"""Puts quantization into the Jobs tab: a "New quantization…" toolbar action and a Results view."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.quantize_service import QuantizeService
from msquant_desktop.ui.jobs_tab import JobsTab
from msquant_desktop.ui.quantize.new_quantization import NewQuantizationDialog
from msquant_desktop.ui.quantize.results_view import ResultsView


class QuantizeUi:
    """Owns the form-opening action and the Results view for one window."""

    def __init__(
        self, service: QuantizeService, parent: QWidget, clusters: ClusterService | None = None
    ) -> None:
        self.service = service
        self.clusters = clusters
        self._parent = parent
        self.dialog: NewQuantizationDialog | None = None
        self.action = QAction("New quantization…", parent)
        self.action.setObjectName("action-new-quantization")
        self.action.setToolTip("Quantize a local model folder with llmcompressor as a job")
        self.action.triggered.connect(lambda _checked=False: self.open_form())
        # Not `open_form` itself: a button's clicked(bool) would pass its checked flag as the model.
        self.results = ResultsView(service, self.open_new_form)
        self.demo_action = QAction("Build demo model", parent)
        self.demo_action.setObjectName("action-build-demo-model")
        self.demo_action.setToolTip(
            "Build a tiny Llama model with its tokenizer and calibration data locally (no download) to try "
            "quantization on; New quantization… then opens with it"
        )
        self.demo_action.triggered.connect(lambda _checked=False: self.results.build_demo_model())
        service.detect_worker()

    def open_new_form(self) -> None:
        """Open the form for a new quantization (the Results view's buttons)."""
        self.open_form()

    def open_form(self, model: str = "") -> NewQuantizationDialog:
        """Open the form (non-modal), pre-filled with `model` or the newest demo model."""
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return self.dialog
        dialog = NewQuantizationDialog(
            self.service, model or self.service.latest_demo_model() or "", self._parent, self.clusters
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(self._forget_dialog)
        self.dialog = dialog
        dialog.show()
        return dialog

    def _forget_dialog(self, *_args: Any) -> None:
        self.dialog = None


def install_quantize_ui(
    jobs_tab: JobsTab, service: QuantizeService, clusters: ClusterService | None = None
) -> QuantizeUi:
    """Add the action and the Results view through the Jobs tab's extension hooks; with `clusters`
    the form can run a quantization on a cluster."""
    ui = QuantizeUi(service, jobs_tab, clusters)
    jobs_tab.add_toolbar_action(ui.action)
    jobs_tab.add_toolbar_action(ui.demo_action)
    jobs_tab.add_view("Results", ui.results)
    return ui
