"""Puts the serving planner into the window: a menu action for any model folder, and the Results
view's "Plan serving…" for a finished quantization (with its evaluation's measured speed when known)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QWidget

from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.plan_runner import PlanRunner
from msquant_desktop.services.quantize_results import ResultRow
from msquant_desktop.ui.plan.serving_dialog import PlanSubject, ServingPlanDialog


class PlanUi:
    """Owns the planner's worker and its open dialogs (each non-modal, deleted on close)."""

    def __init__(self, clusters: ClusterService | None, parent: QWidget) -> None:
        self._parent = parent
        self._clusters = clusters
        self.runner = PlanRunner(parent)
        self.dialogs: list[ServingPlanDialog] = []
        self.action = QAction("Plan serving for a model folder…", parent)
        self.action.setObjectName("action-plan-serving")
        self.action.setToolTip(
            "How many GPUs of which type serve a model at a rate within a latency SLO, per scheme"
        )
        self.action.triggered.connect(lambda _checked=False: self.choose_folder())

    def choose_folder(self) -> ServingPlanDialog | None:
        folder = QFileDialog.getExistingDirectory(self._parent, "Model folder to plan serving for")
        return self.open(PlanSubject(folder)) if folder else None

    def open(self, subject: PlanSubject) -> ServingPlanDialog:
        dialog = ServingPlanDialog(subject, self.runner, self._clusters, self._parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialogs.append(dialog)
        dialog.destroyed.connect(lambda *_a: self._forget(dialog))
        dialog.show()
        return dialog

    def open_for_result(self, row: ResultRow) -> ServingPlanDialog:
        """A Results row: its output folder, and its newest evaluation when the row carries one."""
        result = row.result
        # `evaluation` is on result rows once evaluations are listed in Results; older rows lack it.
        evaluation = getattr(row, "evaluation", None)
        title = f"{result.scheme} of {str(result.model).rsplit('/', 1)[-1]} (job {row.job_id})"
        return self.open(
            PlanSubject(result.output, evaluation if isinstance(evaluation, dict) else None, title)
        )

    def _forget(self, dialog: ServingPlanDialog) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)

    def shutdown(self) -> None:
        self.runner.shutdown()
