"""The Evaluate form's "Run on": `ClusterTarget`'s chooser, Python and SLURM pickers, asking the
cluster about an evaluation (`ClusterService.check_evaluate`: the Python, llmcompressor and the model
and original folders there) instead of a quantization.  The form's own Model, Original and
Held-out text fields are the cluster's paths when a cluster is chosen; the target's path rows stay
hidden."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from msquant_desktop.domain.evaluate import EvaluateRequest
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.ui.quantize.cluster_target import ClusterTarget


class EvaluateTarget(ClusterTarget):
    def __init__(self, clusters: ClusterService | None, parent: QWidget | None = None) -> None:
        super().__init__(clusters, parent)
        self.setObjectName("evaluate-target")
        self._link: tuple[int, str] | None = None
        for edit in (self.model_edit, self.out_edit, self.dataset_edit):
            self.form.setRowVisible(edit, False)

    def link(self, job_id: int, output: str) -> None:
        """An evaluation of `output` shows on quantization `job_id`'s Results row (any other model is
        looked up among the cluster's quantizations by its output, as `slurm evaluate` does)."""
        self._link = (job_id, output)
        self.schedule_check()

    def _remote(self, local: object) -> object:
        assert isinstance(local, EvaluateRequest)
        return local  # its paths are the cluster's already

    def _missing(self, remote: object) -> str:
        assert isinstance(remote, EvaluateRequest)
        return "" if remote.model else "Give the model's folder on the cluster."

    def _ask(self, clusters: ClusterService, cluster: str, remote: object) -> int:
        assert isinstance(remote, EvaluateRequest)
        evaluates = self._link[0] if self._link and self._link[1] == remote.model else None
        return clusters.check_evaluate(
            cluster, remote, self.python_edit.text().strip(), self.resources(), evaluates
        )
