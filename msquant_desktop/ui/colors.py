"""Text colours that stay readable on the palette in use, light or dark (one owner for all of them).

Each named colour has a hue; its lightness is moved, in small steps, until its WCAG 2 contrast with
every background it is drawn on (the palette's base, alternate base and window, and a tint where one
is painted under it) is at least 4.5:1 — the floor for body text (WCAG 2.x, success criterion 1.4.3).
So an error text is a dark red on a light palette and a light red on a dark one, and a state colour
picked for its icon is still legible as text.  `dark_palette()` is the dark palette the screenshots
and tests use (the desktop's own palette is used as it is).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPen, QPixmap

MIN_CONTRAST = 4.5

# Hues as picked for a light palette; `readable()` adapts them to the palette in use.
ERROR = QColor("#b00020")
WARNING = QColor("#8a5a00")
STDERR = QColor("#b02a22")
MUTED = QColor("#5f6368")
LINK = QColor("#0050b4")
STDERR_TINT = QColor(208, 52, 44, 28)
"""The background tint under stderr lines (drawn over the base)."""


def relative_luminance(color: QColor) -> float:
    """WCAG 2 relative luminance of an opaque colour (sRGB, linearised)."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio, 1.0 .. 21.0."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def over(tint: QColor, background: QColor) -> QColor:
    """`tint` (with alpha) composited over an opaque `background`."""
    alpha = tint.alphaF()
    return QColor.fromRgbF(
        tint.redF() * alpha + background.redF() * (1 - alpha),
        tint.greenF() * alpha + background.greenF() * (1 - alpha),
        tint.blueF() * alpha + background.blueF() * (1 - alpha),
    )


def backgrounds(palette: QPalette, tint: QColor | None = None) -> list[QColor]:
    """What text of a view or label can be drawn on: base, alternate base, window (and the tint)."""
    roles = (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase, QPalette.ColorRole.Window)
    found = [palette.color(role) for role in roles]
    return found + [over(tint, c) for c in found] if tint is not None else found


def is_dark(palette: QPalette) -> bool:
    return relative_luminance(palette.color(QPalette.ColorRole.Base)) < 0.2


def readable(color: QColor, palette: QPalette, tint: QColor | None = None) -> QColor:
    """`color`'s hue at the nearest lightness that has 4.5:1 on all of the palette's backgrounds."""
    on = backgrounds(palette, tint)
    if min(contrast_ratio(color, bg) for bg in on) >= MIN_CONTRAST:
        return QColor(color)
    hsl = color.toHsl()
    hue, saturation, lightness = hsl.hslHueF(), hsl.hslSaturationF(), hsl.lightnessF()
    step = 0.02 if is_dark(palette) else -0.02  # lighter on dark backgrounds, darker on light ones
    while 0.0 <= lightness <= 1.0:
        lightness += step
        candidate = QColor.fromHslF(max(0.0, hue), saturation, min(1.0, max(0.0, lightness)))
        if min(contrast_ratio(candidate, bg) for bg in on) >= MIN_CONTRAST:
            return candidate
    return palette.color(QPalette.ColorRole.Text)


def text_style(color: QColor, palette: QPalette) -> str:
    """A style sheet that sets a label's text to `color`, made readable on `palette`."""
    return f"color: {readable(color, palette).name()};"


def dark_palette() -> QPalette:
    """A dark palette (the Fusion style's colours as dark desktop themes use them)."""
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, value in (
        (roles.Window, "#2b2d30"),
        (roles.WindowText, "#e6e6e6"),
        (roles.Base, "#1e1f22"),
        (roles.AlternateBase, "#26282b"),
        (roles.ToolTipBase, "#2b2d30"),
        (roles.ToolTipText, "#e6e6e6"),
        (roles.PlaceholderText, "#9a9da3"),
        (roles.Text, "#e6e6e6"),
        (roles.Button, "#313338"),
        (roles.ButtonText, "#e6e6e6"),
        (roles.BrightText, "#ff6b6b"),
        (roles.Link, "#8ab4f8"),
        (roles.Highlight, "#2f65ca"),
        (roles.HighlightedText, "#ffffff"),
        (roles.Mid, "#4a4d52"),
        (roles.Dark, "#1a1b1e"),
        (roles.Light, "#45484d"),
        (roles.Midlight, "#3a3d41"),
        (roles.Shadow, "#000000"),
    ):
        palette.setColor(role, QColor(value))
    for role in (roles.Text, roles.WindowText, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7d8087"))
    return palette


def chevrons_icon(palette: QPalette, size: int = 16) -> QIcon:
    """A "»" for a toolbar's overflow button in the palette's button text colour: the style's own
    image is a fixed mid grey (1.6:1 on a dark toolbar), this one has the text's contrast."""
    icon = QIcon()
    for mode, group in (
        (QIcon.Mode.Normal, QPalette.ColorGroup.Active),
        (QIcon.Mode.Disabled, QPalette.ColorGroup.Disabled),
    ):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(palette.color(group, QPalette.ColorRole.ButtonText), 1.6)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        for left in (0.28 * size, 0.52 * size):
            top, mid, bottom = 0.3 * size, 0.5 * size, 0.7 * size
            painter.drawPolyline([QPointF(left, top), QPointF(left + 0.2 * size, mid), QPointF(left, bottom)])
        painter.end()
        icon.addPixmap(pixmap, mode)
    return icon
