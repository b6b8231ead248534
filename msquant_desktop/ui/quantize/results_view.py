"""Results: finished quantizations with sizes, ratio, duration and path; Open folder, Verify, Delete.

An empty state offers the first steps: a new quantization, or building the demo model to try one on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.services.quantize_service import QuantizeService, ResultRow
from msquant_desktop.ui.empty_state import EmptyState

COLUMNS = ("Job", "Scheme", "Model", "Before", "After", "Ratio", "Duration", "Verification", "Output")
_Index = QModelIndex | QPersistentModelIndex


def describe_verification(row: ResultRow) -> str:
    if row.verifying:
        return "verifying…"
    v = row.verification
    if not v:
        return ""
    if "failed" in v:
        return f"failed ({v['failed']})"
    text = f"loads in {v.get('load_s', '?')} s"
    if "top1_agreement" in v:
        text += f", top-1 {float(v['top1_agreement']):.0%}, cos {float(v['logits_cosine']):.4f}"
    return text


class ResultsModel(QAbstractTableModel):
    """Adapts the service's result rows; a full reset only when the list is reloaded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[ResultRow] = []

    def set_rows(self, rows: list[ResultRow]) -> None:
        if rows == self.rows:
            return
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        r = row.result
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.output
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        values = (
            str(row.job_id),
            r.scheme,
            r.model.rsplit("/", 1)[-1],
            human_bytes(r.size_before),
            human_bytes(r.size_after),
            f"{r.compression_ratio:.2f}×",
            f"{r.duration_s:.1f} s",
            describe_verification(row),
            r.output if row.output_exists else f"{r.output} (deleted)",
        )
        return values[index.column()]


class ResultsView(QWidget):
    def __init__(
        self,
        service: QuantizeService,
        open_new_quantization: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("quantize-results")
        self._service = service
        self.model = ResultsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.open_button = QPushButton("Open folder")
        self.verify_button = QPushButton("Verify")
        self.delete_button = QPushButton("Delete")
        self.new_button = QPushButton("New quantization…")
        self.status_label = QLabel()
        buttons = QHBoxLayout()
        for button in (self.open_button, self.verify_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.status_label)
        buttons.addWidget(self.new_button)
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table)
        table_layout.addLayout(buttons)
        self.empty = EmptyState(
            "No quantized models yet",
            "Quantize a local Hugging Face model with llmcompressor, or build a small demo model "
            "(a few seconds, no download) to try it on.",
            [("New quantization…", open_new_quantization), ("Build a demo model", self.build_demo_model)],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(table_page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setObjectName("quantize-results-refresh")
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(200)
        self._refresh_timer.timeout.connect(self.refresh)
        service.sig_results_changed.connect(self._refresh_timer.start)
        self.new_button.clicked.connect(open_new_quantization)
        self.open_button.clicked.connect(self.open_selected)
        self.verify_button.clicked.connect(self.verify_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        selected = self.selected_row()
        self.model.set_rows(self._service.results())
        self.stack.setCurrentIndex(1 if self.model.rows else 0)
        if selected is not None:
            for i, row in enumerate(self.model.rows):
                if row.job_id == selected.job_id:
                    self.table.selectRow(i)
        self._update_buttons()

    def selected_row(self) -> ResultRow | None:
        indexes = self.table.selectionModel().selectedRows()
        return self.model.rows[indexes[0].row()] if indexes else None

    @Slot()
    def _update_buttons(self) -> None:
        row = self.selected_row()
        exists = row is not None and row.output_exists
        self.open_button.setEnabled(exists)
        self.verify_button.setEnabled(exists and row is not None and not row.verifying)
        self.delete_button.setEnabled(row is not None)

    @Slot()
    def open_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(row.result.output))

    @Slot()
    def verify_selected(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        try:
            record = self._service.submit_verify(row)
        except RuntimeError as exc:
            self.status_label.setText(str(exc))
            return
        self.status_label.setText(f"Verification started as job {record.id}")

    @Slot()
    def delete_selected(self, *, confirm: bool = True) -> None:
        # `confirm` is keyword-only: the Delete button's clicked(bool) would fill a positional one
        # with False and delete the model folder without asking.
        row = self.selected_row()
        if row is None:
            return
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete quantized model",
                f"Delete {row.result.output} and forget job {row.job_id}?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._service.delete_result(row)
        self.refresh()

    @Slot()
    def build_demo_model(self) -> None:
        try:
            record = self._service.submit_demo_model("tiny")
        except RuntimeError as exc:
            self.empty.set_message(str(exc))
            return
        self.empty.set_message(
            f"Building the demo model as job {record.id} (see the Jobs list). When it finishes, "
            "“New quantization…” opens with it selected."
        )
