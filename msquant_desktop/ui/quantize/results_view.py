"""Results: finished quantizations with sizes, ratio, duration, their evaluation (perplexity, Δ vs the
original, decode tok/s, peak memory) and path; Open folder, Evaluate, Verify, Delete, Compare schemes…,
and the comparison chart of the selected result's base model under the table.

A result that ran on a cluster shows `CLUSTER:PATH`; its "Download…" copies the folder here (a folder
picker, then a strip under the table with the bytes, the files and Cancel; resumable), after which
Open folder, Verify and the copy's path use the local copy.  Its "Evaluate on cluster…" opens the
Evaluate form on that cluster with its paths there filled in.

An empty state offers the first steps: a new quantization, or building the demo model to try one on.
The table is loaded once; then each changed result inserts or removes its own row or updates the cells
that changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobState, JobSummary
from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.domain.results import evaluation_cells, output_label
from msquant_desktop.services.cluster_download import DownloadError
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.quantize_service import QuantizeService, ResultRow
from msquant_desktop.ui.empty_state import EmptyState
from msquant_desktop.ui.quantize.compare_chart import ComparisonChart
from msquant_desktop.ui.quantize.download_strip import DownloadStrip

COLUMNS = (
    "Job",
    "Scheme",
    "Model",
    "Before",
    "After",
    "Ratio",
    "Duration",
    "Perplexity",
    "Δ vs original",
    "Decode tok/s",
    "Peak MiB",
    "Verification",
    "Output",
)
PERPLEXITY_COLUMN = COLUMNS.index("Perplexity")
VERIFICATION_COLUMN = COLUMNS.index("Verification")
_Index = QModelIndex | QPersistentModelIndex


EVALUATE_TIP = "Perplexity on held-out text against the original, decode speed and peak memory (a job)"


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


def evaluation_texts(row: ResultRow) -> tuple[str, str, str, str]:
    """The four evaluation cells: the figures, or what the evaluation is doing / how it failed."""
    if row.evaluating:
        return ("evaluating…", "", "", "")
    if row.evaluation and "failed" in row.evaluation:
        return (f"failed ({row.evaluation['failed']})", "", "", "")
    return evaluation_cells(row.evaluation, missing="")


def row_texts(row: ResultRow) -> tuple[str, ...]:
    """Every cell of a row (the order of COLUMNS)."""
    r = row.result
    return (
        str(row.job_id),
        r.scheme,
        row.model_name or r.model.rsplit("/", 1)[-1],
        human_bytes(r.size_before),
        human_bytes(r.size_after),
        f"{r.compression_ratio:.2f}×",
        f"{r.duration_s:.1f} s",
        *evaluation_texts(row),
        describe_verification(row),
        output_label(r.output, row.cluster, row.local_copy) if row.output_exists else f"{r.output} (deleted)",
    )


class ResultsModel(QAbstractTableModel):
    """Adapts the service's result rows (newest first); a full reset only when the list is reloaded,
    otherwise one row inserted or removed, or the changed cells of one row, per changed result."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[ResultRow] = []
        self._neg_ids: list[int] = []  # -job id per row, for bisect

    def set_rows(self, rows: list[ResultRow]) -> None:
        """A full load (rows newest first)."""
        if rows == self.rows:
            return
        self.beginResetModel()
        self.rows = list(rows)
        self._neg_ids = [-r.job_id for r in self.rows]
        self.endResetModel()

    def row_of(self, job_id: int) -> int | None:
        i = bisect.bisect_left(self._neg_ids, -job_id)
        return i if i < len(self._neg_ids) and self._neg_ids[i] == -job_id else None

    def upsert(self, row: ResultRow) -> None:
        """Insert a new result at its place or update the one row it replaces."""
        at = self.row_of(row.job_id)
        if at is not None:
            if self.rows[at] != row:
                before, after = row_texts(self.rows[at]), row_texts(row)
                self.rows[at] = row
                changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
                if changed:  # only the span of cells whose text changed is repainted
                    self.dataChanged.emit(self.index(at, min(changed)), self.index(at, max(changed)))
            return
        at = bisect.bisect_left(self._neg_ids, -row.job_id)
        self.beginInsertRows(QModelIndex(), at, at)
        self.rows.insert(at, row)
        self._neg_ids.insert(at, -row.job_id)
        self.endInsertRows()

    def remove(self, job_id: int) -> None:
        at = self.row_of(job_id)
        if at is None:
            return
        self.beginRemoveRows(QModelIndex(), at, at)
        del self.rows[at]
        del self._neg_ids[at]
        self.endRemoveRows()

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
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.result.output
        if (
            role == Qt.ItemDataRole.TextAlignmentRole
            and PERPLEXITY_COLUMN <= index.column() < VERIFICATION_COLUMN
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return row_texts(row)[index.column()]


class ResultsView(QWidget):
    def __init__(
        self,
        service: QuantizeService,
        open_new_quantization: Callable[[], None],
        parent: QWidget | None = None,
        open_compare: Callable[[], None] | None = None,
        clusters: ClusterService | None = None,
        evaluate_on_cluster: Callable[[ResultRow], object] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("quantize-results")
        self._service = service
        self._comparing = False  # Compare schemes… started and none of its results is in yet
        self.model = ResultsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.open_button = QPushButton("Open folder")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip(EVALUATE_TIP)
        self._clusters = clusters
        self._evaluate_on_cluster = evaluate_on_cluster
        self.download_button = QPushButton("Download…")
        self.download_button.setToolTip("Copy this cluster result's folder here over SFTP (resumable)")
        self.download_button.hide()  # shown in place of Open folder for a cluster row not copied here
        self.download_strip = DownloadStrip(clusters.downloads) if clusters is not None else None
        self.verify_button = QPushButton("Verify")
        self.delete_button = QPushButton("Delete")
        self.compare_button = QPushButton("Compare schemes…")
        self.compare_button.setToolTip("Quantize one model with several schemes, evaluate each, chart them")
        self.compare_button.setVisible(open_compare is not None)
        self.new_button = QPushButton("New quantization…")
        self.plan_button = QPushButton("Plan serving…")
        self.plan_button.setToolTip("GPUs per scheme for a rate and latency SLO, replay and placement")
        self.plan_button.hide()  # shown once the window installs the planner (set_plan_serving)
        self._plan_serving: Callable[[ResultRow], object] | None = None
        self.status_label = QLabel()
        buttons = QHBoxLayout()
        for button in (
            self.open_button,
            self.download_button,
            self.evaluate_button,
            self.verify_button,
            self.delete_button,
            self.plan_button,
        ):
            buttons.addWidget(button)
        self.status_label.setWordWrap(True)  # a long status never widens the window
        buttons.addWidget(self.status_label, 1)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.new_button)
        self.chart = ComparisonChart()
        table_part = QWidget()
        table_part_layout = QVBoxLayout(table_part)
        table_part_layout.setContentsMargins(0, 0, 0, 0)
        table_part_layout.addWidget(self.table)
        table_part_layout.addLayout(buttons)
        if self.download_strip is not None:
            table_part_layout.addWidget(self.download_strip)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(table_part)
        self.splitter.addWidget(self.chart)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.splitter)
        self._empty_message = (
            "Quantize a local Hugging Face model with llmcompressor, or build a small demo model "
            "(a few seconds, no download) to try it on."
        )
        self.empty = EmptyState(
            "No quantized models yet",
            self._empty_message,
            [("New quantization…", open_new_quantization), ("Build a demo model", self.build_demo_model)],
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(table_page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        service.sig_result_changed.connect(self._on_result_changed)
        service.sig_result_removed.connect(self._on_result_removed)
        service.sig_demo_model_changed.connect(self._on_demo_model_changed)
        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset):
            signal.connect(self._update_stack)
        for signal in (self.model.dataChanged, self.model.rowsRemoved):
            signal.connect(self._update_buttons)
        self.new_button.clicked.connect(open_new_quantization)
        if open_compare is not None:
            self.compare_button.clicked.connect(lambda _checked=False: open_compare())
        self.open_button.clicked.connect(self.open_selected)
        self.download_button.clicked.connect(lambda _checked=False: self.download_selected())
        if clusters is not None:
            clusters.downloads.sig_finished.connect(self._update_buttons)
        self.evaluate_button.clicked.connect(self.evaluate_selected)
        self.verify_button.clicked.connect(self.verify_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.plan_button.clicked.connect(self.plan_selected)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        """Reload every result (a model reset); changes after this come row by row."""
        selected = self.selected_row()
        self.model.set_rows(self._service.results())
        self.chart.set_rows(self.model.rows)
        self._update_stack()
        at = self.model.row_of(selected.job_id) if selected is not None else None
        if at is not None:
            self.table.selectRow(at)
        self._update_buttons()

    @Slot(object)
    def _on_result_changed(self, row: ResultRow) -> None:
        self.model.upsert(row)
        self.chart.update_row(row)

    @Slot(int)
    def _on_result_removed(self, job_id: int) -> None:
        self.model.remove(job_id)
        self.chart.remove_row(job_id)

    def show_comparison(self, base_model: str) -> None:
        """Show the table with `base_model`'s chart (where a Compare schemes… run ends)."""
        self._comparing = True
        self.stack.setCurrentIndex(1)
        self.chart.show_base_model(base_model)

    @Slot()
    def _update_stack(self, *_args: Any) -> None:
        # A comparison under way shows its (empty) chart before its first result arrives.
        self._comparing = self._comparing and not self.model.rows
        self.stack.setCurrentIndex(1 if self.model.rows or self._comparing else 0)

    def selected_row(self) -> ResultRow | None:
        indexes = self.table.selectionModel().selectedRows()
        return self.model.rows[indexes[0].row()] if indexes else None

    @Slot()
    def _update_buttons(self, *_args: Any) -> None:
        row = self.selected_row()
        here = row is not None and row.local_exists  # a folder on this computer (a cluster result's copy)
        on_cluster = row is not None and row.cluster is not None
        self.open_button.setEnabled(here)
        self.verify_button.setEnabled(here and row is not None and not row.verifying)
        can_evaluate = self._evaluate_on_cluster is not None if on_cluster else here
        self.evaluate_button.setEnabled(can_evaluate and row is not None and not row.evaluating)
        # Same labels for every row (a wider label would widen the window when a row is picked):
        # the tooltip says where it runs; Download… stands in for Open folder until a copy is here.
        self.evaluate_button.setToolTip(
            f"Evaluate on {row.cluster}, where the result is (a SLURM job)"
            if on_cluster and row is not None
            else EVALUATE_TIP
        )
        clusters = self._clusters
        downloading = row is not None and clusters is not None and clusters.downloads.is_running(row.job_id)
        fetch = on_cluster and clusters is not None and not here
        self.download_button.setVisible(fetch)
        self.open_button.setVisible(not fetch)
        self.download_button.setEnabled(fetch and not downloading)
        self.delete_button.setEnabled(row is not None)
        self.plan_button.setEnabled(here)
        if row is not None:
            self.chart.show_base_model(row.result.model)

    def set_plan_serving(self, open_plan: Callable[[ResultRow], object]) -> None:
        """Show "Plan serving…", which hands the selected row to `open_plan`."""
        self._plan_serving = open_plan
        self.plan_button.show()

    @Slot()
    def plan_selected(self) -> None:
        row = self.selected_row()
        if row is not None and self._plan_serving is not None:
            self._plan_serving(row)

    @Slot()
    def open_selected(self) -> None:
        row = self.selected_row()
        if row is not None and row.local_folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(row.local_folder))

    def download_selected(self, dest: Path | None = None) -> None:
        """Copy the selected cluster result here, into `dest` or a folder the user picks."""
        row = self.selected_row()
        if row is None or row.cluster is None or self._clusters is None or self.download_strip is None:
            return
        if dest is None:
            start = row.local_copy or str(Path.home())
            chosen = QFileDialog.getExistingDirectory(
                self, f"Download {row.cluster}:{row.result.output} into (an empty folder)", start
            )
            if not chosen:
                return
            dest = Path(chosen)
        try:
            self._clusters.downloads.start(row.job_id, dest)
        except (DownloadError, ValueError) as exc:
            self.download_strip.show_refusal(str(exc))
            return
        self.download_strip.follow(row.job_id, f"{row.cluster}:{Path(row.result.output).name} → {dest}")
        self._update_buttons()

    @Slot()
    def evaluate_selected(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        if row.cluster is not None:
            if self._evaluate_on_cluster is not None:
                self._evaluate_on_cluster(row)
            return
        try:
            record = self._service.submit_evaluate(row)
        except RuntimeError as exc:
            self.status_label.setText(str(exc))
            return
        self.status_label.setText(f"Evaluation started as job {record.id}")

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
                f"Delete {row.result.output} and forget job {row.job_id}?"
                if row.cluster is None
                else f"Forget job {row.job_id}? Its folder on {row.cluster} (and any copy here) stays.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._service.delete_result(row)  # its row goes with sig_result_removed

    @Slot()
    def build_demo_model(self) -> None:
        try:
            record = self._service.submit_demo_model("tiny")
        except RuntimeError as exc:
            self.empty.set_message(str(exc))
            return
        self.empty.set_message(_building(record.id))

    @Slot(object)
    def _on_demo_model_changed(self, summary: JobSummary | None) -> None:
        """The empty state follows the demo build it announced, to its end."""
        self.empty.set_message(demo_build_message(summary) if summary is not None else self._empty_message)


def demo_build_message(summary: JobSummary) -> str:
    """What the empty state says about a demo-model build in each of its states."""
    if summary.state is JobState.COMPLETED:
        return f"The demo model is ready (job {summary.id}). “New quantization…” opens with it selected."
    if summary.state.is_final:
        why = summary.outcome.describe() if summary.outcome else summary.state.value
        return (
            f"Building the demo model (job {summary.id}) did not finish: {why}. Its log is in the "
            "Jobs list; “Build a demo model” tries again."
        )
    return _building(summary.id)


def _building(job_id: int) -> str:
    return (
        f"Building the demo model as job {job_id} (see the Jobs list). When it finishes, "
        "“New quantization…” opens with it selected."
    )
