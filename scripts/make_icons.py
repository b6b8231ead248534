"""Render resources/msquant-desktop.svg into the PNG sizes desktops ask for (resources/icons/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    svg = root / "resources" / "msquant-desktop.svg"
    out_dir = root / "resources" / "icons"
    out_dir.mkdir(parents=True, exist_ok=True)
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        print(f"invalid SVG: {svg}", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(out_dir / f"msquant-desktop-{size}.png"))
    print(f"wrote {len(SIZES)} PNGs to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
