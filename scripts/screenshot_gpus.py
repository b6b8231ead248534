"""Render the GPUs tab offscreen with the fake two-GPU NVML and save docs/gpus.png.

Run: .venv/bin/python scripts/screenshot_gpus.py [OUT.png] [SCENARIO] [--dark]
(--dark: the dark palette of ui/colors.py; e.g. docs/gpus-dark.png)
A real child process carrying a job marker sits on fake GPU 0, and ten minutes of history are
back-filled from the same fake (its values follow the clock), then the live sampler adds to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


DARK = False


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--dark"]
    global DARK
    DARK = "--dark" in sys.argv[1:]
    out = Path(args[0] if args else "docs/gpus-dark.png" if DARK else "docs/gpus.png")
    scenario = args[1] if len(args) > 1 else "two_gpus"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MSQUANT_JOB_ID": "7", "MSQUANT_RUN_DIR": f"{tmp}/runs/7", "MSQUANT_STORE": "x"}
        # A job that works a little (CPU% and RSS show) and has a child (its process tree shows).
        work = (
            "import os, subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "x = bytearray(300 * 2**20)\n"
            "while True:\n    sum(range(200000)); time.sleep(0.05)\n"
        )
        script = Path(tmp) / "finetune.py"
        script.write_text(work, encoding="utf-8")
        child = subprocess.Popen([sys.executable, str(script), "--lr", "3e-4"], env=env)
        os.environ["MSQUANT_FAKE_NVML"] = scenario
        os.environ["MSQUANT_FAKE_NVML_PROCS"] = f"{child.pid}:0:12288"
        try:
            return _shoot(out, Path(tmp))
        finally:
            import psutil

            for grandchild in psutil.Process(child.pid).children(recursive=True):
                grandchild.kill()
            child.kill()
            child.wait()


def _shoot(out: Path, tmp: Path) -> int:
    import dataclasses

    from msquant_desktop.app import create_main_window, create_qapplication, create_services
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.gpu.fake_nvml import fake_from_environment
    from msquant_desktop.gpu.monitor import GpuMonitor

    paths = resolve_paths(tmp).ensure()
    app = create_qapplication([sys.argv[0]])
    if DARK:
        from msquant_desktop.ui.colors import dark_palette

        app.setPalette(dark_palette())
    services = create_services(paths)
    # Back-fill ten minutes from the same fake, one sample per second, on a clock that runs from the past.
    now = time.time()
    clock = iter(now - 600 + i for i in range(600))
    backfill = GpuMonitor(fake_from_environment(), clock=lambda: next(clock))
    fake = backfill.adapter._nvml
    for i in range(600):
        fake._clock = lambda i=i: now - 600 + i  # values follow the same waves as the live fake
        # Host usage cannot be back-filled honestly: only the live samples plot it.
        services.gpu.history.append(dataclasses.replace(backfill.sample(), host=None))
    window = create_main_window(services)
    window.resize(1280, 860)
    window.show()
    window.resize(1280, 860)  # the offscreen screen is 800 px: fitted on show, widened again
    window.show_tab("GPUs")
    tab = window.tab_widget.currentWidget()
    tab.window_choice.setCurrentIndex(1)  # 10 min
    deadline = time.time() + 4
    while time.time() < deadline:
        app.processEvents()
        time.sleep(0.05)
    # Light: the processes on the GPUs, with the job link; dark: each job's process tree.
    tab.details.setCurrentWidget(tab.job_process_table if DARK else tab.process_table)
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
