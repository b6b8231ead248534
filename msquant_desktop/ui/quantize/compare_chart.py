"""The comparison chart: every evaluated scheme of one base model, size on x, perplexity on y.

One labelled point per scheme (its newest evaluated result), the original as a reference point and a
dashed line at its perplexity, so "how much quality for how many bytes" reads at a glance.  Colours
come from the widget's palette (a dark theme gets a dark chart) and are re-applied when it changes.
The chart is rebuilt from the service's rows when a result of its base model changes: a handful of
items, cheaper than bookkeeping them one by one.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from msquant_desktop.services.quantize_results import Comparison, ResultRow, base_models, comparison

MIB = 2**20


def _pen_color(palette: QPalette, role: QPalette.ColorRole) -> QColor:
    return palette.color(QPalette.ColorGroup.Active, role)


class ComparisonChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quantize-comparison")
        self.rows: list[ResultRow] = []
        self.current: Comparison | None = None
        self._wanted = ""  # the base model asked for (shown even before it has a result)
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "weights size (MiB)")
        self.plot.setLabel("left", "perplexity (lower is better)")
        self.plot_widget.setMinimumHeight(220)
        top = QHBoxLayout()
        top.addWidget(QLabel("Base model"))
        top.addWidget(self.model_combo)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.caption)
        self.labels: list[pg.TextItem] = []
        self.model_combo.currentIndexChanged.connect(self._on_combo)
        self._apply_palette()

    # -- data ---------------------------------------------------------------------------------------------
    def set_rows(self, rows: list[ResultRow]) -> None:
        """All result rows (the chart picks those of its base model)."""
        self.rows = list(rows)
        wanted = self._wanted
        models = base_models(self.rows)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for model in models:
            self.model_combo.addItem(model.rstrip("/").rsplit("/", 1)[-1], model)
            self.model_combo.setItemData(self.model_combo.count() - 1, model, Qt.ItemDataRole.ToolTipRole)
        at = self.model_combo.findData(wanted) if wanted else 0
        self.model_combo.setCurrentIndex(max(at, 0) if models else -1)
        self._wanted = self.base_model() or wanted
        self.model_combo.blockSignals(False)
        self.redraw()

    def update_row(self, row: ResultRow) -> None:
        """One row appeared or changed; redraw only when it is of the base model shown."""
        known = [r.result.model for r in self.rows]
        self.rows = [r for r in self.rows if r.job_id != row.job_id] + [row]
        if row.result.model not in known:
            self.set_rows(self.rows)
        elif row.result.model == self.base_model():
            self.redraw()

    def remove_row(self, job_id: int) -> None:
        if any(r.job_id == job_id for r in self.rows):
            self.set_rows([r for r in self.rows if r.job_id != job_id])

    def base_model(self) -> str:
        data = self.model_combo.currentData()
        return str(data) if data else ""

    def show_base_model(self, model: str) -> None:
        """Show `model`'s results (its points appear as its evaluations complete)."""
        if model == self._wanted and self.model_combo.currentData() == model:
            return
        self._wanted = model
        if self.model_combo.findData(model) < 0:
            self.model_combo.blockSignals(True)
            self.model_combo.addItem(model.rstrip("/").rsplit("/", 1)[-1], model)
            self.model_combo.blockSignals(False)
        self.model_combo.setCurrentIndex(self.model_combo.findData(model))
        self.redraw()

    @Slot(int)
    def _on_combo(self, _index: int) -> None:
        self._wanted = self.base_model() or self._wanted
        self.redraw()

    # -- drawing -----------------------------------------------------------------------------------------
    def redraw(self) -> None:
        model = self.base_model()
        self.current = comparison(self.rows, model) if model else None
        self.plot.clear()
        self.labels = []
        palette = self.palette()
        text = _pen_color(palette, QPalette.ColorRole.Text)
        accent = _pen_color(palette, QPalette.ColorRole.Highlight)
        reference = _pen_color(palette, QPalette.ColorRole.PlaceholderText)
        c = self.current
        if c is None or (not c.points and c.original_perplexity is None):
            self.caption.setText(
                "No evaluated results of this model yet: evaluate a result, or use Compare schemes…"
                if model
                else "No results yet."
            )
            return
        if c.original_perplexity is not None:
            line = pg.InfiniteLine(
                pos=c.original_perplexity,
                angle=0,
                pen=pg.mkPen(reference, width=1, style=Qt.PenStyle.DashLine),
            )
            self.plot.addItem(line)
            if c.original_size is not None:
                self.plot.addItem(
                    pg.ScatterPlotItem(
                        [c.original_size / MIB],
                        [c.original_perplexity],
                        symbol="star",
                        size=16,
                        pen=pg.mkPen(text),
                        brush=pg.mkBrush(reference),
                    )
                )
                self._label("original", c.original_size / MIB, c.original_perplexity, text)
        if c.points:
            xs = [p.size_bytes / MIB for p in c.points]
            ys = [p.perplexity for p in c.points]
            self.plot.addItem(
                pg.ScatterPlotItem(xs, ys, symbol="o", size=11, pen=pg.mkPen(text), brush=pg.mkBrush(accent))
            )
            for point, x, y in zip(c.points, xs, ys, strict=True):
                self._label(point.scheme, x, y, text)
        self.plot.autoRange(padding=0.15)
        measured = f" on {c.text}" if c.text else ""
        window = f", {c.seq_len}-token windows" if c.seq_len else ""
        self.caption.setText(
            f"{len(c.points)} scheme(s) of {c.base_model}; perplexity{measured}{window}. "
            "The dashed line is the original's perplexity."
        )

    def _label(self, text: str, x: float, y: float, color: QColor) -> None:
        label = pg.TextItem(text, color=color, anchor=(0.0, 1.0))
        label.setPos(x, y)
        self.plot.addItem(label)
        self.labels.append(label)

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.plot_widget.setBackground(_pen_color(palette, QPalette.ColorRole.Base))
        text = _pen_color(palette, QPalette.ColorRole.Text)
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setTextPen(text)
            axis.setPen(text)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
            self.redraw()
        super().changeEvent(event)
