"""Time from clicking Start in the New quantization form to the job's first progress event in the GUI.

Real path: offscreen window, the form's Start button, JobService -> supervisor -> worker, events back
through the supervisor's pipe to `sig_job_event`.  Also the time to the first calibration progress
(after llmcompressor is imported and the model loaded) and to COMPLETED.

    PYTHONPATH=$PWD .venv/bin/python bench/quantize_start_latency.py [--model DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from quantize_common import model_folder

from msquant_desktop.app import create_main_window, create_qapplication, create_services
from msquant_desktop.config.paths import resolve_paths


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model folder (default: build the tiny demo model)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="msquant-bench-") as tmp:
        model = model_folder(args.model, tmp)
        app = create_qapplication([sys.argv[0]])
        services = create_services(resolve_paths(Path(tmp) / "data").ensure())
        window = create_main_window(services)
        window.show()
        jobs = services.jobs
        seen: dict[str, float] = {}

        def on_event(_job_id: int, event: dict) -> None:
            if event.get("type") == "progress":
                seen.setdefault("progress", time.monotonic())
                if event.get("phase") == "Calibrating":
                    seen.setdefault("calibrating", time.monotonic())

        jobs.sig_job_event.connect(on_event)
        for run in range(args.runs):
            dialog = window.quantize_ui.open_form(str(model))
            dialog.select_scheme("GPTQ_W4A16")
            dialog.samples_spin.setValue(16)
            dialog.seq_len_spin.setValue(64)
            while not dialog.start_button.isEnabled():
                app.processEvents()
                time.sleep(0.005)
            seen.clear()
            job_ids: list[int] = []
            dialog.sig_submitted.connect(job_ids.append)
            clicked = time.monotonic()
            dialog.start_button.click()
            while not job_ids or not jobs.get(job_ids[0]).state.is_final:
                app.processEvents()
                time.sleep(0.002)
            done = time.monotonic()
            state = jobs.get(job_ids[0]).state.value
            first = seen.get("progress", done) - clicked
            calibrating = seen.get("calibrating", done) - clicked
            rows.append((first, calibrating, done - clicked))
            print(
                f"run {run + 1}: first progress {first * 1000:.0f} ms, first calibration progress "
                f"{calibrating:.2f} s, {state} after {done - clicked:.2f} s",
                flush=True,
            )
        window.close()
        services.shutdown()
    print(
        f"\nmedians over {args.runs} runs: Start -> first progress event {statistics.median(r[0] for r in rows) * 1000:.0f} ms; "
        f"-> first calibration progress {statistics.median(r[1] for r in rows):.2f} s; "
        f"-> COMPLETED {statistics.median(r[2] for r in rows):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
