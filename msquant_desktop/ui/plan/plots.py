"""The serving planner's plots: p95 latency against replicas per scheme, and a replay over time.

Colours follow the widget palette (dark or light): the background is the palette's base, axes and
titles its text colour, re-applied when the palette changes; curve colours are a qualitative set that
reads on both.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget

# Tableau 10: distinct on dark and light backgrounds alike.
SERIES_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def palette_colors(widget: QWidget) -> tuple[QColor, QColor]:
    """(background, text) of the widget's palette."""
    palette = widget.palette()
    return palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)


def _finite(values: list[float | None]) -> list[float]:
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


class _PaletteLayout(pg.GraphicsLayoutWidget):
    """A plot layout that repaints its background and axes in the palette's colours."""

    _ready = False  # pyqtgraph's __init__ changes the palette before ours has run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plots: list[pg.PlotItem] = []
        self.setMinimumHeight(180)
        self._ready = True

    def add_plot(self, row: int, title: str, x_label: str, y_label: str) -> pg.PlotItem:
        plot = self.addPlot(row=row, col=0)
        plot.setTitle(title, size="9pt")
        plot.setLabel("bottom", x_label)
        plot.setLabel("left", y_label)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        self.plots.append(plot)
        self.apply_palette()
        return plot

    def apply_palette(self) -> None:
        background, text = palette_colors(self)
        self.setBackground(background)
        for plot in self.plots:
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setTextPen(text)
                axis.setPen(text)
                axis.label.setDefaultTextColor(text)
            plot.titleLabel.item.setDefaultTextColor(text)
            if plot.legend is not None:
                plot.legend.setLabelTextColor(text)
                plot.legend.setBrush(pg.mkBrush(background.red(), background.green(), background.blue(), 210))

    def changeEvent(self, event: QEvent) -> None:  # Qt override
        if self._ready and event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()
        super().changeEvent(event)


class LatencyPlot(QWidget):
    """p95 time in system against the number of replicas, one curve per scheme, and the SLO."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_widget = _PaletteLayout()
        self.plot = self.layout_widget.add_plot(0, "p95 latency vs replicas", "replicas", "p95 latency (s)")
        self.plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.layout_widget.apply_palette()
        self.slo_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#e15759", width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        )
        self.plot.addItem(self.slo_line)
        self.curves: dict[str, pg.PlotDataItem] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layout_widget)

    def show_curves(self, curves: dict[str, list[tuple[int, float]]], slo_s: float) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves.clear()
        if self.plot.legend is not None:
            self.plot.legend.clear()
        for i, (scheme, points) in enumerate(curves.items()):
            if not points:
                continue
            xs = [float(n) for n, _ in points]
            ys = _finite([p for _, p in points])
            pen = pg.mkPen(SERIES_COLORS[i % len(SERIES_COLORS)], width=2)
            self.curves[scheme] = self.plot.plot(
                xs, ys, pen=pen, name=scheme, symbol="o", symbolSize=4, connect="finite"
            )
        self.slo_line.setValue(slo_s)
        self.layout_widget.apply_palette()


class ReplayPlot(QWidget):
    """A replay over time: load and replicas above, p95 latency and the SLO below (x in hours)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_widget = _PaletteLayout()
        self.load_plot = self.layout_widget.add_plot(0, "Load and replicas", "hours", "requests/s")
        self.latency_plot = self.layout_widget.add_plot(1, "p95 latency", "hours", "seconds")
        self.latency_plot.setXLink(self.load_plot)
        self.load_plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.load_curve = self.load_plot.plot(pen=pg.mkPen(SERIES_COLORS[0], width=1.5), name="load (req/s)")
        # Replicas on a second axis of the load plot: a ViewBox linked on x.
        self.replica_box = pg.ViewBox()
        self.load_plot.showAxis("right")
        self.load_plot.scene().addItem(self.replica_box)
        self.load_plot.getAxis("right").linkToView(self.replica_box)
        self.load_plot.getAxis("right").setLabel("replicas")
        self.replica_box.setXLink(self.load_plot)
        self.replica_curve = pg.PlotDataItem(pen=pg.mkPen(SERIES_COLORS[1], width=2), stepMode="left")
        self.target_curve = pg.PlotDataItem(
            pen=pg.mkPen(SERIES_COLORS[4], width=1, style=pg.QtCore.Qt.PenStyle.DotLine), stepMode="left"
        )
        self.replica_box.addItem(self.replica_curve)
        self.replica_box.addItem(self.target_curve)
        legend = self.load_plot.legend
        if legend is not None:
            legend.addItem(self.replica_curve, "replicas ready")
            legend.addItem(self.target_curve, "replicas asked for")
        self.load_plot.vb.sigResized.connect(self._sync_views)
        self.p95_curve = self.latency_plot.plot(pen=pg.mkPen(SERIES_COLORS[2], width=1.5), connect="finite")
        self.slo_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(SERIES_COLORS[3], width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        )
        self.latency_plot.addItem(self.slo_line)
        self.layout_widget.apply_palette()
        for side in ("right",):
            _, text = palette_colors(self)
            self.load_plot.getAxis(side).setTextPen(text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layout_widget)

    def _sync_views(self) -> None:
        self.replica_box.setGeometry(self.load_plot.vb.sceneBoundingRect())
        self.replica_box.linkedViewChanged(self.load_plot.vb, self.replica_box.XAxis)

    def show_series(self, series: dict[str, Any], slo_s: float) -> None:
        hours = [t / 3600.0 for t in series["t_s"]]
        self.load_curve.setData(hours, series["arrival_rate"])
        if hours:
            self.replica_curve.setData(hours, series["ready_replicas"])
            self.target_curve.setData(hours, series["target_replicas"])
            top = max(max(series["target_replicas"]), 1)
            self.replica_box.setYRange(0, top * 1.15, padding=0)
        self.p95_curve.setData(hours, _finite(series["p95_latency_s"]))
        self.slo_line.setValue(slo_s)
        self._sync_views()
        self.layout_widget.apply_palette()
