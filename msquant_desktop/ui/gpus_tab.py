"""GPUs tab (issue 5 fills it): live NVML plots, processes, throttling, orphans."""

from __future__ import annotations

from PySide6.QtWidgets import QStackedWidget, QVBoxLayout, QWidget

from msquant_desktop.ui.empty_state import EmptyState


class GpusTab(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty = EmptyState(
            "No GPU data yet",
            "Live utilization, memory, temperature and power of each NVIDIA GPU, the processes on "
            "them and which of your jobs they belong to.",
            [],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
