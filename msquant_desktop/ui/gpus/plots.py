"""The GPUs tab's charts: the selected GPU's four metrics, an overview of all GPUs, and the host.

Every plot and curve is created once; a refresh only calls `setData` with views of the history ring
buffers (no copies but the x offsets).  Curves clip to the view and downsample by peaks, so an hour
at 1 s (3600 points per curve) costs about as much to draw as the plot's width in pixels.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QHBoxLayout, QVBoxLayout, QWidget

from msquant_desktop.gpu.history import GpuHistory, RingBuffer

# (title, unit, fixed y range or None for auto) per row of GPU_METRICS
_GPU_PLOTS = (
    ("Utilization", "%", (0.0, 100.0)),
    ("Memory", "%", (0.0, 100.0)),
    ("Temperature", "°C", None),
    ("Power", "W", None),
)


_TEXT = (50, 50, 50)
_SAMPLES_PER_PIXEL = 1.0


def _style(plot: pg.PlotItem, title: str, unit: str, y_range: tuple[float, float] | None) -> None:
    plot.setTitle(f"{title} ({unit})", size="9pt", color=_TEXT)
    plot.title_text = f"{title} ({unit})"  # kept to re-colour it when the palette changes
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setTextPen(_TEXT)
        # Text is the dearest thing to paint; an axis whose range did not change is blitted from cache.
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    plot.titleLabel.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setClipToView(True)
    # The x range is pinned by refresh(); letting pyqtgraph auto-range it as well costs a data-bounds
    # pass over every curve on every update (~20% of a refresh).
    plot.disableAutoRange(axis="x")
    plot.setDownsampling(auto=True, mode="peak")
    plot.getAxis("bottom").setLabel("seconds ago")
    if y_range is not None:
        plot.setYRange(*y_range, padding=0.02)
    else:
        plot.enableAutoRange(axis="y")


def _legend(plot: pg.PlotItem) -> None:
    legend = plot.addLegend(
        offset=(4, 4), labelTextSize="8pt", labelTextColor=_TEXT, brush=(255, 255, 255, 210)
    )
    legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _curve(plot: pg.PlotItem, color: object, name: str | None = None) -> pg.PlotDataItem:
    # connect="finite": a metric that is "not available" (NaN) leaves a gap instead of a line to zero.
    curve = plot.plot(pen=pg.mkPen(color, width=1), name=name, connect="finite", skipFiniteCheck=False)
    # pyqtgraph's default keeps ~5 samples per pixel, which never downsamples an hour in a 400 px plot;
    # one per pixel (peak mode keeps each bin's min and max) looks the same and draws 5x fewer points.
    # (pyqtgraph warns that a factor <= 1 can make the factor oscillate while the x range moves; ours
    # is pinned by setXRange on every refresh.)
    curve.opts["autoDownsampleFactor"] = _SAMPLES_PER_PIXEL
    return curve


class GpuPlots(QWidget):
    """Plots for the selected GPU (2 × 2), the all-GPU overview and the host, side by side."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gpu_view = pg.GraphicsLayoutWidget()
        self.gpu_plots: list[pg.PlotItem] = []
        self.gpu_curves: list[pg.PlotDataItem] = []
        for i, (title, unit, y_range) in enumerate(_GPU_PLOTS):
            plot = self.gpu_view.addPlot(row=i // 2, col=i % 2)
            _style(plot, title, unit, y_range)
            self.gpu_plots.append(plot)
            self.gpu_curves.append(_curve(plot, (31, 119, 180)))
        self.power_limit_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen((214, 39, 40), style=pg.QtCore.Qt.PenStyle.DashLine)
        )
        self.gpu_plots[3].addItem(self.power_limit_line)
        self.power_limit_line.hide()

        self.overview_view = pg.GraphicsLayoutWidget()
        self.overview_plot = self.overview_view.addPlot()
        _style(self.overview_plot, "All GPUs: utilization", "%", (0.0, 100.0))
        _legend(self.overview_plot)
        self.overview_curves: list[pg.PlotDataItem] = []

        self.host_view = pg.GraphicsLayoutWidget()
        self.host_plot = self.host_view.addPlot()
        _style(self.host_plot, "Host: CPU and RAM", "%", (0.0, 100.0))
        _legend(self.host_plot)
        self.host_curves = [
            _curve(self.host_plot, (44, 160, 44), "CPU"),
            _curve(self.host_plot, (148, 103, 189), "RAM"),
        ]

        side = QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.overview_view, 1)
        side.addWidget(self.host_view, 1)
        # Colours per widget, from the palette (pyqtgraph's global options belong to nobody).
        self.apply_palette(self.palette())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.gpu_view, 2)
        layout.addLayout(side, 1)
        self.refreshes = 0
        self._x_window: float | None = None

    def changeEvent(self, event: QEvent) -> None:  # Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette(self.palette())

    def apply_palette(self, palette: QPalette) -> None:
        """Background, text, axes, grid and legends in the palette's colours (light or dark)."""
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        self.background = base
        legend_brush = QColor(base)
        legend_brush.setAlpha(210)
        for view in (self.gpu_view, self.overview_view, self.host_view):
            view.setBackground(base)
        for plot in (*self.gpu_plots, self.overview_plot, self.host_plot):
            plot.setTitle(plot.title_text, size="9pt", color=text)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setTextPen(text)
                axis.setPen(text)
            legend = plot.legend
            if legend is not None:
                legend.setBrush(legend_brush)
                legend.setLabelTextColor(text)
                for _sample, label in legend.items:
                    label.setText(label.text, color=text)

    def chart_width_px(self) -> int:
        """Width of one chart's data area (they are all about as wide)."""
        return int(self.gpu_plots[0].getViewBox().width())

    def set_has_gpus(self, has_gpus: bool) -> None:
        """Without GPUs only the host plot is shown."""
        self.gpu_view.setVisible(has_gpus)
        self.overview_view.setVisible(has_gpus)

    def _ensure_overview_curves(self, count: int) -> None:
        while len(self.overview_curves) < count:
            i = len(self.overview_curves)
            color = pg.intColor(i, hues=max(8, count), maxValue=220)
            self.overview_curves.append(_curve(self.overview_plot, color, f"GPU {i}"))

    def refresh(
        self,
        history: GpuHistory,
        selected: int,
        window_s: float,
        interval_s: float,
        power_limit_w: float | None = None,
    ) -> None:
        """Redraw from `history`: the last `window_s` seconds, the newest sample at x = 0."""
        last = math.ceil(window_s / interval_s) + 2
        now = _newest_time(history)
        if now is None:
            return
        if window_s != self._x_window:  # unchanged ranges would still re-layout the axes
            self._x_window = window_s
            for plot in (*self.gpu_plots, self.overview_plot, self.host_plot):
                plot.setXRange(-window_s, 0, padding=0)
        if history.gpus and 0 <= selected < len(history.gpus):
            buffer = history.gpus[selected]
            x = buffer.times(last) - now
            for row, curve in enumerate(self.gpu_curves):
                curve.setData(x, buffer.values(row, last))
            if power_limit_w:
                self.power_limit_line.setValue(power_limit_w)
                self.power_limit_line.show()
            else:
                self.power_limit_line.hide()
        self._ensure_overview_curves(len(history.gpus))
        for buffer, curve in zip(history.gpus, self.overview_curves, strict=False):
            curve.setData(buffer.times(last) - now, buffer.values(0, last))
        if len(history.host):
            x = history.host.times(last) - now
            for row, curve in enumerate(self.host_curves):
                curve.setData(x, history.host.values(row, last))
        self.refreshes += 1


def _newest_time(history: GpuHistory) -> float | None:
    buffers: list[RingBuffer] = [history.host, *history.gpus]
    times = [b.times(1)[0] for b in buffers if len(b)]
    if not times:
        return None
    return float(np.nanmax(times))
