"""Run a real "Compare schemes…" on the tiny demo model offscreen and save the Results view with its
chart as docs/results-compare.png.

    PYTHONPATH=$PWD .venv/bin/python scripts/screenshot_compare.py [MODEL_DIR] [OUT.png]

Without MODEL_DIR a tiny demo model is built first (`msquant-desktop demo-model --size tiny`).  The
schemes are quantized and evaluated by the real workers (a few minutes on 2 CPU cores).
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
from msquant_desktop.domain.jobs import JobKind

SCHEMES = ["FP8_DYNAMIC", "W8A16", "W4A16"]
TIMEOUT_S = 1800


def main() -> int:
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results-compare.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "demo-tiny"
        if not model.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "msquant_desktop",
                    "demo-model",
                    "--size",
                    "tiny",
                    "--out",
                    str(model),
                ],
                check=True,
            )
        paths = resolve_paths(Path(tmp) / "data").ensure()
        app = create_qapplication([sys.argv[0]])
        services = create_services(paths)
        window = create_main_window(services)
        window.resize(1280, 860)
        window.show()
        window.show_tab("Jobs")
        ui = window.quantize_ui
        dialog = ui.open_compare_form(str(model))
        dialog.select_schemes(SCHEMES)

        def wait(condition, what: str) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + TIMEOUT_S
            while not condition():
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {what}")
                app.processEvents()
                time.sleep(0.05)

        wait(dialog.start_button.isEnabled, "the form's checks")
        dialog.start_button.click()
        jobs = services.jobs

        def evaluations_done() -> bool:
            done = [r for r in jobs.list_jobs() if r.spec.kind is JobKind.EVALUATE and r.state.is_final]
            return len(done) == len(SCHEMES)

        wait(evaluations_done, "the evaluations")
        results = ui.results
        wait(lambda: len(results.model.rows) == len(SCHEMES), "the result rows")
        results.table.selectRow(0)
        results.splitter.setSizes([330, 470])
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        for row in results.model.rows:
            print(row.result.scheme, row.evaluation)
        window.close()
        services.shutdown()
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
