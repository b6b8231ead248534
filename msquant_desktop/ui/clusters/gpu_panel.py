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
            f"{t or 'gpu'}: {c.free} free of {c.total}"
            + (f", {view.pending[t]} wanted by pending jobs" if view.pending.get(t) else "")
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
