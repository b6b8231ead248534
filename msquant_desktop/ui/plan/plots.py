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


def _steps(times: list[float], counts: list[int], end: float) -> tuple[list[float], list[float]]:
    """A step curve through the changes only (a count holds from its time to the next change): a
    day of counts that change a few times is a few points, not thousands."""
    xs: list[float] = []
    ys: list[float] = []
    for t, n in zip(times, counts, strict=True):
        if ys and n == ys[-1]:
            continue
        if ys:
            xs.append(t)
            ys.append(ys[-1])
        xs.append(t)
        ys.append(float(n))
    if ys:
        xs.append(end)
        ys.append(ys[-1])
    return xs, ys


class _PaletteLayout(pg.GraphicsLayoutWidget):
    """A plot layout that repaints its background and axes in the palette's colours."""

    _ready = False  # pyqtgraph's __init__ changes the palette before ours has run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plots: list[pg.PlotItem] = []
        self._titles: dict[int, str] = {}
        self.setMinimumHeight(180)
        self._ready = True

    def add_plot(self, row: int, title: str, x_label: str, y_label: str) -> pg.PlotItem:
        plot = self.addPlot(row=row, col=0)
        self._titles[id(plot)] = title
        plot.setLabel("bottom", x_label)
        plot.setLabel("left", y_label)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        # A day at one point a minute is ~1440 points per curve: peak downsampling to the plot's width
        # keeps each bin's extremes (the SLO spikes stay visible) and spares Qt's stroker long paths.
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
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
            plot.setTitle(self._titles.get(id(plot), ""), size="9pt", color=text)
            legend = plot.legend
            if legend is not None:
                legend.setLabelTextColor(text)
                for _sample, label in legend.items:
                    label.setText(label.text, color=text)
                legend.setBrush(pg.mkBrush(background.red(), background.green(), background.blue(), 210))

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
    """A replay over time, three rows sharing the x axis (hours): the load, the replicas (ready and
    asked for: the gap between them is the cold start) and the p95 latency against the SLO."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_widget = _PaletteLayout()
        self.load_plot = self.layout_widget.add_plot(0, "Load", "hours", "requests/s")
        self.replica_plot = self.layout_widget.add_plot(1, "Replicas", "hours", "replicas")
        self.latency_plot = self.layout_widget.add_plot(2, "p95 latency", "hours", "seconds")
        for plot in (self.replica_plot, self.latency_plot):
            plot.setXLink(self.load_plot)
        self.load_curve = self.load_plot.plot(pen=pg.mkPen(SERIES_COLORS[0], width=1.5))
        self.replica_plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.target_curve = self.replica_plot.plot(
            pen=pg.mkPen(SERIES_COLORS[4], width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
            name="asked for",
        )
        self.replica_curve = self.replica_plot.plot(pen=pg.mkPen(SERIES_COLORS[1], width=2), name="ready")
        self.p95_curve = self.latency_plot.plot(pen=pg.mkPen(SERIES_COLORS[2], width=1.5), connect="finite")
        self.slo_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(SERIES_COLORS[3], width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        )
        self.latency_plot.addItem(self.slo_line)
        self.layout_widget.apply_palette()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layout_widget)

    def show_series(self, series: dict[str, Any], slo_s: float) -> None:
        hours = [t / 3600.0 for t in series["t_s"]]
        self.load_curve.setData(hours, series["arrival_rate"])
        end = hours[-1] + (hours[1] - hours[0] if len(hours) > 1 else 1 / 60) if hours else 0.0
        ready, target = series["ready_replicas"], series["target_replicas"]
        self.replica_curve.setData(*_steps(hours, ready, end))
        self.target_curve.setData(*_steps(hours, target, end))
        if target:
            # Head room above the counts for the legend (top right), which must not hide the curves.
            self.replica_plot.setYRange(0, max(max(target), 1) * 2.2 + 0.5, padding=0)
        self.p95_curve.setData(hours, _finite(series["p95_latency_s"]))
        self.slo_line.setValue(slo_s)
        if hours:
            self.load_plot.setXRange(0, end, padding=0.01)
        self.layout_widget.apply_palette()
