"""Render the Jobs tab with a few real jobs and save docs/jobs.png (offscreen).

Run: PYTHONPATH=. .venv/bin/python scripts/jobs_screenshot.py [OUT.png] [--dark]
(--dark: the dark palette of ui/colors.py, as a dark desktop theme gives it; e.g. docs/jobs-dark.png)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from msquant_desktop.app import create_main_window, create_qapplication, create_services
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.config.settings_store import save_settings
from msquant_desktop.domain.jobs import JobSpec
from msquant_desktop.domain.settings import Settings

TRAINER = r"""
import json, sys, time
print("loading model from ./checkpoints/llama-tiny", flush=True)
print("warning: tokenizer has no pad token, using eos", file=sys.stderr, flush=True)
bar = "Loading checkpoint shards: {:3d}%|{:<10}| {}/4 [00:0{}<00:0{},  1.97s/it]"
print("\r".join(bar.format(25 * i, "█" * (10 * i // 4), i, i, 4 - i) for i in range(5)), file=sys.stderr, flush=True)
for step in range(1, 8):
    print(f"step {step}/40  loss={2.5 / step:.4f}  lr=3e-4", flush=True)
    ev = {"type": "progress", "stage": "Training", "done": step, "total": 40, "fraction": step / 40, "eta_s": (40 - step) * 1.5}
    print("@@MSQUANT-EVENT@@ " + json.dumps(ev), flush=True)
time.sleep(60)
"""


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--dark"]
    dark = "--dark" in sys.argv[1:]
    out = Path(args[0] if args else "docs/jobs-dark.png" if dark else "docs/jobs.png")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        paths = resolve_paths(tmp).ensure()
        save_settings(paths.settings_file, Settings(max_concurrent_jobs=2))
        app = create_qapplication([sys.argv[0]])
        if dark:
            from msquant_desktop.ui.colors import dark_palette

            app.setPalette(dark_palette())
        services = create_services(paths)
        jobs = services.jobs
        done = jobs.submit(
            JobSpec(
                name="eval perplexity",
                argv=(
                    "sh",
                    "-c",
                    'echo ppl=6.41; echo \'@@MSQUANT-EVENT@@ {"type":"result","perplexity":6.41,"tokens":32768}\'',
                ),
            )
        )
        jobs.submit(
            JobSpec(
                name="export onnx",
                argv=("sh", "-c", "echo exporting; echo 'error: opset 19 not supported' >&2; exit 2"),
            )
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not jobs.get(done.id).state.is_final:
            app.processEvents()
            time.sleep(0.02)
        time.sleep(0.5)
        app.processEvents()
        running = jobs.submit(
            JobSpec(name="finetune llama-tiny", argv=(sys.executable, "-c", TRAINER), gpus=0)
        )
        jobs.submit(JobSpec(name="sweep lr=1e-4", argv=("sleep", "30")))
        jobs.submit(JobSpec(name="sweep lr=3e-4", argv=("sleep", "30")))
        window = create_main_window(services)
        window.resize(1280, 800)
        window.show()
        window.resize(1280, 800)  # the offscreen screen is 800 px: fitted on show, widened again
        window.show_tab("Jobs")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        window.jobs_tab.select_job(running.id)
        for _ in range(30):
            app.processEvents()
            time.sleep(0.02)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        services.jobs.shutdown(cancel_running=True)
        window.hide()
        services.shutdown()
        time.sleep(0.3)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
