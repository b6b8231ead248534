"""Render the New quantization form offscreen with a demo model selected; save docs/quantize.png.

    PYTHONPATH=$PWD .venv/bin/python scripts/screenshot_quantize.py [MODEL_DIR] [OUT.png]

Without MODEL_DIR a tiny demo model is built first (`msquant-desktop demo-model`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from msquant_desktop.app import create_main_window, create_qapplication, create_services
from msquant_desktop.config.paths import resolve_paths


def main() -> int:
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/quantize.png")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "demo-tiny"
        if not model.exists():
            subprocess.run(
                [sys.executable, "-m", "msquant_desktop", "demo-model", "--out", str(model)], check=True
            )
        paths = resolve_paths(Path(tmp) / "data").ensure()
        app = create_qapplication([sys.argv[0]])
        services = create_services(paths)
        window = create_main_window(services)
        window.resize(1280, 800)
        window.show()
        window.show_tab("Jobs")
        dialog = window.quantize_ui.open_form(str(model))
        dialog.select_scheme("GPTQ_W4A16")
        dialog.samples_spin.setValue(32)
        dialog.seq_len_spin.setValue(256)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not dialog.start_button.isEnabled():
            app.processEvents()
            time.sleep(0.02)
        for _ in range(10):
            app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        dialog.grab().save(str(out))
        dialog.close()
        window.close()
        services.shutdown()
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
