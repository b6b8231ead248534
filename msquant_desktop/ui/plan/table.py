"""The per-scheme table of the serving planner: one row per `serving_plan.scheme_rows` row."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QWidget

from msquant_desktop.domain.quantize import human_bytes

COLUMNS = (
    ("Scheme", "the quantization scheme"),
    ("Weights GiB", "weight bytes on the GPUs of one replica (exact from the checkpoint, or an estimate)"),
    ("KV / token", "KV cache bytes per token (2 · layers · KV heads · head dim · bytes)"),
    ("Max conc.", "sequences of the full context one replica (its TP GPUs) holds in its KV cache at once"),
    ("TP", "tensor-parallel GPUs per replica (the fewest of 1, 2, 4, 8 that fit)"),
    ("Replicas", "the fewest replicas whose p95 latency meets the SLO at the rate"),
    ("GPUs", "replicas × TP (× the pipeline stages of a replica split across nodes)"),
    ("GPU-h / day", "GPUs × 24"),
    ("p95 s", "p95 time in system at that many replicas"),
    (
        "Pipeline",
        "a replica that does not fit one node's GPUs: pipeline stages × TP across nodes, and the critical "
        "(slowest) stage, which bounds its speed",
    ),
    ("Weights from", "checkpoint (exact), tensor shapes (exact under the recipe), config estimate"),
    ("Service rate", "where the decode speed came from: measured, entered, or the roofline bound"),
)
PIPELINE_COLUMN = 9
_Index = QModelIndex | QPersistentModelIndex


def _number(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "—"


def row_cells(row: dict[str, Any]) -> list[str]:
    """The table's cells for one row; a figure that does not exist (the scheme does not fit, no count
    meets the SLO) is "—", and a scheme that does not fit says why in the replicas cell's tooltip."""
    return [
        row["scheme"],
        _number(row["weights_gib"], ".4g"),
        human_bytes(int(row["kv_bytes_per_token"])),
        _number(row["max_concurrency"], ".1f") if row.get("fits") else "—",
        str(row["tensor_parallel"]) if row.get("fits") else "—",
        _number(row["replicas"], "d"),
        _number(row["gpus"], "d"),
        _number(row["gpu_hours_per_day"], ".0f"),
        _number(row["p95_s"], ".3g"),
        pipeline_cell(row.get("pipeline")),
        row["source"] + ("" if row["exact"] else " (estimate)"),
        row["speed_source"].split(":", 1)[0],  # the source's name; the tooltip has its figures
    ]


def pipeline_cell(pipeline: dict[str, Any] | None) -> str:
    """ "—" when a replica fits one node; else its stages, GPUs and critical stage."""
    if not pipeline:
        return "—"
    if not pipeline["fits"]:
        return "does not fit"
    return (
        f"PP {pipeline['pipeline_parallel']} × TP {pipeline['tensor_parallel']} "
        f"({pipeline['gpus']} GPUs), critical stage {pipeline['critical_stage']}"
    )


def pipeline_tip(pipeline: dict[str, Any]) -> str:
    """Per stage: its layers, weights per GPU, sequences held and roofline step time."""
    if not pipeline["fits"]:
        return str(pipeline["problem"])
    lines = [
        f"{pipeline['pipeline_parallel']} stages of {pipeline['tensor_parallel']} GPUs, one node each; "
        f"a token passes every stage ({pipeline['roofline_token_latency_s'] * 1e3:.1f} ms at batch 1), "
        f"the critical stage bounds the speed ({pipeline['roofline_bound_tokens_per_s']:.1f} tokens/s)"
    ]
    for st in pipeline["stages"]:
        lines.append(
            f"stage {st['stage']}: layers {st['first_layer']}–{st['first_layer'] + st['layers'] - 1}, "
            f"{human_bytes(int(st['weights_bytes_per_gpu']))} per GPU, {st['max_sequences']} sequences, "
            f"{st['roofline_step_s'] * 1e3:.2f} ms per step"
        )
    return "\n".join(lines)


def row_problem(row: dict[str, Any]) -> str:
    """Why a row has no replica count, or how a pipelined one was sized (empty otherwise)."""
    pipeline = row.get("pipeline")
    if row.get("sized_as") == "pipeline" and pipeline:
        where = (
            f"it does not fit one node's GPUs; as {pipeline_cell(pipeline)} across "
            f"{pipeline['pipeline_parallel']} nodes"
        )
        if row.get("replicas") is None:
            return where + ": no number of replicas meets the SLO (one request alone takes longer at its p95)"
        return (
            where + f", sized as {pipeline['pipeline_parallel']} virtual engines per replica (one batch in "
            "flight per stage, each token through every stage; the stages' roofline speed)"
        )
    if not row.get("fits"):
        problem = str(row.get("problem") or "does not fit on this GPU")
        if pipeline and pipeline["fits"]:
            problem += f"; it fits as {pipeline_cell(pipeline)} across {pipeline['pipeline_parallel']} nodes"
        return problem
    if row.get("replicas") is None:
        return "no number of replicas meets the SLO: one request alone takes longer at its p95"
    return ""


class SchemeTableModel(QAbstractTableModel):
    """Adapts the rows of the latest computation (a full reset each time: every row changes)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self._cells: list[list[str]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self._cells = [row_cells(r) for r in self.rows]
        self.endResetModel()

    def cell(self, row: int, column: int) -> str:
        return self._cells[row][column]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][1]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            row = self.rows[index.row()]
            if index.column() == len(COLUMNS) - 1:
                return row["speed_source"]
            if index.column() == PIPELINE_COLUMN and row.get("pipeline"):
                return pipeline_tip(row["pipeline"])
            return row_problem(row) or self._cells[index.row()][index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and 0 < index.column() < PIPELINE_COLUMN:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
