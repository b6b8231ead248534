"""Puts quantization into the Jobs tab: "New quantization…" and "Compare schemes…" toolbar actions and a
Results view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.quantize_service import QuantizeService, ResultRow, cluster_evaluation_request
from msquant_desktop.ui.jobs_tab import JobsTab
from msquant_desktop.ui.quantize.compare_dialog import CompareSchemesDialog
from msquant_desktop.ui.quantize.evaluate_dialog import EvaluateDialog
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
        self.compare_dialog: CompareSchemesDialog | None = None
        self.reveal_results: Callable[[], None] = lambda: None
        """Bring the Results view to the front (set by whoever placed it: `install_quantize_ui`)."""
        self.action = QAction("New quantization…", parent)
        self.action.setObjectName("action-new-quantization")
        self.action.setToolTip("Quantize a local model folder with llmcompressor as a job")
        self.action.triggered.connect(lambda _checked=False: self.open_form())
        # Not `open_form` itself: a button's clicked(bool) would pass its checked flag as the model.
        self.results = ResultsView(
            service,
            self.open_new_form,
            open_compare=self.open_new_compare_form,
            clusters=clusters,
            evaluate_on_cluster=self.open_cluster_evaluate,
        )
        self.compare_action = QAction("Compare schemes…", parent)
        self.compare_action.setObjectName("action-compare-schemes")
        self.compare_action.setToolTip(
            "Quantize one model with several schemes, evaluate each against the original, and chart "
            "size against perplexity"
        )
        self.compare_action.triggered.connect(lambda _checked=False: self.open_compare_form())
        self.evaluate_dialog: EvaluateDialog | None = None
        self.evaluate_action = QAction("Evaluate a model…", parent)
        self.evaluate_action.setObjectName("action-evaluate-model")
        self.evaluate_action.setToolTip(
            "Perplexity on held-out text (against an original), speed and peak memory of any model folder"
        )
        self.evaluate_action.triggered.connect(lambda _checked=False: self.open_evaluate_form())
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

    def open_new_compare_form(self) -> None:
        """Open "Compare schemes…" (the Results view's button)."""
        self.open_compare_form()

    def open_compare_form(self, model: str = "") -> CompareSchemesDialog:
        """Open "Compare schemes…" (non-modal), pre-filled with `model` or the newest demo model; its
        Start ends in the Results view's chart of that model."""
        if self.compare_dialog is not None and self.compare_dialog.isVisible():
            self.compare_dialog.raise_()
            return self.compare_dialog
        dialog = CompareSchemesDialog(
            self.service, model or self.service.latest_demo_model() or "", self._parent
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(self._forget_compare_dialog)
        dialog.sig_submitted.connect(lambda base, _ids: self._show_comparison(base))
        self.compare_dialog = dialog
        dialog.show()
        return dialog

    def open_evaluate_form(self, model: str = "") -> EvaluateDialog:
        """Open "Evaluate a model…" (non-modal), pre-filled with `model`."""
        if self.evaluate_dialog is not None and self.evaluate_dialog.isVisible():
            self.evaluate_dialog.raise_()
            return self.evaluate_dialog
        dialog = EvaluateDialog(self.service, model, self._parent, self.clusters)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(self._forget_evaluate_dialog)
        self.evaluate_dialog = dialog
        dialog.show()
        return dialog

    def open_cluster_evaluate(self, row: ResultRow) -> EvaluateDialog:
        """The Evaluate form for a cluster result: on its cluster, its output there against the model
        the quantization read there (and, when it was downloaded, its copy if switched to this
        computer); the evaluation shows on its row."""
        dialog = self.open_evaluate_form()  # an open form takes this row
        remote = cluster_evaluation_request(row)
        dialog.cluster_target.link(row.job_id, remote.model)
        dialog.preset(row.cluster, remote.model, remote.original or "")
        dialog.choose_target(row.cluster)
        if row.local_copy:
            dialog.preset(None, row.local_copy)
        return dialog

    def _forget_evaluate_dialog(self, *_args: Any) -> None:
        self.evaluate_dialog = None

    def _show_comparison(self, base_model: str) -> None:
        self.results.show_comparison(base_model)
        self.reveal_results()

    def _forget_compare_dialog(self, *_args: Any) -> None:
        self.compare_dialog = None


def install_quantize_ui(
    jobs_tab: JobsTab, service: QuantizeService, clusters: ClusterService | None = None
) -> QuantizeUi:
    """Add the action and the Results view through the Jobs tab's extension hooks; with `clusters`
    the form can run a quantization on a cluster."""
    ui = QuantizeUi(service, jobs_tab, clusters)
    jobs_tab.add_toolbar_action(ui.action)
    jobs_tab.add_toolbar_action(ui.demo_action)
    jobs_tab.add_toolbar_action(ui.compare_action)
    jobs_tab.add_toolbar_action(ui.evaluate_action)
    jobs_tab.add_view("Results", ui.results)
    ui.reveal_results = lambda: jobs_tab.views.setCurrentWidget(ui.results)
    return ui
