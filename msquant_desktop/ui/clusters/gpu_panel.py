"""Free GPUs of one cluster: per node and type, rolled up per type and partition, pending demand.

Each refresh updates the node rows that changed (`GpuNodesModel`), not the whole table."""

from __future__ import annotations

from PySide6.QtWidgets import QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from msquant_desktop.slurm.gpus import GpuView
from msquant_desktop.ui.clusters.models import GpuNodesModel


class GpuPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Not loaded yet")
        self.summary.setWordWrap(True)
        self.model = GpuNodesModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        # Widths follow new rows, not every changed count (a poll changes a few cells at most).
        for signal in (self.model.rowsInserted, self.model.modelReset):
            signal.connect(self.table.resizeColumnsToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)

    def show_error(self, message: str) -> None:
        self.summary.setText(f"Free GPUs not available: {message}")

    def show_view(self, view: GpuView) -> None:
        self.model.set_rows(view.rows)
        types = "; ".join(
            f"{t or 'gpu'}: {c.free} free of {c.total}" + pending_words(view, t)
            for t, c in sorted(view.by_type.items())
        )
        parts = "; ".join(
            f"{p}: " + ", ".join(f"{c.free} {t or 'gpu'}" for t, c in sorted(per.items()))
            for p, per in sorted(view.by_partition.items())
        )
        excluded = ("<br>Excluded: " + "; ".join(view.unusable)) if view.unusable else ""
        self.summary.setText(
            f"<b>By type</b> — {types or 'no GPUs'}<br><b>By partition</b> — {parts or '-'}{excluded}"
        )


def pending_words(view: GpuView, gpu_type: str) -> str:
    """ ", 12 wanted by pending jobs (4 could start now)": the queue's demand for one GPU type and the
    part of it not held back by a hold, a dependency, a start time or an array's `%N` throttle."""
    wanted = view.pending.get(gpu_type, 0)
    if not wanted:
        return ""
    at_least = "at least " if view.pending_at_least else ""
    now = view.pending_now.get(gpu_type, 0)
    return f", {at_least}{wanted} wanted by pending jobs ({now} could start now)"
