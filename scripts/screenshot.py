"""Render the main window offscreen and save docs/screenshot.png (run: .venv/bin/python scripts/screenshot.py)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from msquant_desktop.app import create_main_window, create_qapplication, create_services
from msquant_desktop.config.paths import resolve_paths


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png")
    tab = sys.argv[2] if len(sys.argv) > 2 else "Jobs"
    with tempfile.TemporaryDirectory() as tmp:
        paths = resolve_paths(os.environ.get("MSQUANT_DATA_DIR") or tmp).ensure()
        app = create_qapplication([sys.argv[0]])
        services = create_services(paths)
        window = create_main_window(services)
        window.resize(1280, 800)
        window.show()
        window.show_tab(tab)
        for _ in range(20):
            app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        window.close()
        services.shutdown()
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
