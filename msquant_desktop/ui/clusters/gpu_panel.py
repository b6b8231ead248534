"""Free GPUs of one cluster: per node and type, rolled up per type and partition, pending demand."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from msquant_desktop.slurm.gpus import GpuView

COLUMNS = ("Node", "State", "Partitions", "GPU type", "Total", "Used", "Free", "CPUs free", "Memory free")


class GpuPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Not loaded yet")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)

    def show_error(self, message: str) -> None:
        self.summary.setText(f"Free GPUs not available: {message}")

    def show_view(self, view: GpuView) -> None:
        self.table.setRowCount(len(view.rows))
        for row, r in enumerate(view.rows):
            values = (
                r.node,
                r.state,
                ",".join(r.partitions),
                r.gpu_type or "(untyped)",
                r.gpus.total,
                r.gpus.used,
                r.gpus.free,
                r.cpus_free,
                f"{r.memory_free_mb / 1024:.1f} GiB",
            )
            for col, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                if isinstance(value, int):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if not r.usable:
                    item.setForeground(QColor("#888888"))
                    item.setToolTip(f"excluded: {r.state}" + (f" ({r.reason})" if r.reason else ""))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
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
