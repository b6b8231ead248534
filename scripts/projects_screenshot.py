"""Render the Projects tab with a sample git + Hydra project, offscreen, to docs/projects.png.

PYTHONPATH=$PWD python scripts/projects_screenshot.py [OUT.png]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FILES = {
    "train.py": "import sys\n\nprint('training with', sys.argv[1:])\n",
    "conf/config.yaml": "defaults:\n  - model: small\n  - trainer: default\n  - _self_\nseed: 1\n"
    "data:\n  path: /data/mnist\n  batch: 64\n",
    "conf/model/small.yaml": "hidden: 64\nlayers: 2\n",
    "conf/model/large.yaml": "hidden: 512\nlayers: 12\n",
    "conf/trainer/default.yaml": "epochs: 3\nopt:\n  name: sgd\n  lr: 0.1\n",
    "conf/trainer/fast.yaml": "epochs: 1\nopt:\n  name: adam\n  lr: 0.01\n",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_sample(root: Path) -> Path:
    remote = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    work = root / "mnist-demo"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "config", "user.name", "Demo")
    git(work, "config", "user.email", "demo@example.invalid")
    for name, text in FILES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "MNIST baseline with Hydra configs")
    git(work, "remote", "add", "origin", "https://github.com/example/mnist-demo.git")
    git(work, "remote", "add", "backup", str(remote))
    git(work, "push", "-q", "-u", "backup", "main")
    (work / "README.md").write_text("# demo\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "Add a README")
    (work / "train.py").write_text(FILES["train.py"] + "# tweak\n")
    return work


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/projects.png")
    from msquant_desktop.app import create_main_window, create_qapplication, create_services
    from msquant_desktop.config.paths import resolve_paths

    with tempfile.TemporaryDirectory(prefix="msquant-shot-") as tmp:
        paths = resolve_paths(Path(tmp) / "data").ensure()
        app = create_qapplication(["msquant-desktop"])
        services = create_services(paths)
        window = create_main_window(services)
        window.resize(1280, 860)
        window.show()
        window.show_tab("Projects")
        tab = window.tab_widget.currentWidget()

        def wait(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + seconds
            while not condition():
                if time.monotonic() > deadline:
                    raise TimeoutError("the sample project did not load")
                app.processEvents()
                time.sleep(0.02)

        services.projects.add_project(str(make_sample(Path(tmp))))  # type: ignore[attr-defined]
        wait(lambda: bool(tab.form.pickers) and tab.details.head.text() not in ("—", "reading…"))
        # One real local launch, so the history and "Last job" have something to show.
        tab.ask = lambda title, text: True
        tab.form.entry_point.setText("python3 train.py")
        tab.form.set_group_choices({"trainer": "fast"})
        tab.launch()
        wait(lambda: "submitted" in tab.form.notice.text())
        wait(lambda: "completed" in tab.details.last_job.text())
        tab.form.set_group_choices({"model": "large"})
        tab.form.free_lines.setPlainText("trainer.opt.lr=0.01\n+tag=baseline")
        tab.preview_config()
        wait(lambda: "hidden" in tab.form.preview.toPlainText())
        app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        print(f"saved {out}")
        tab.pages.setCurrentWidget(tab.history)
        tab.history.table.selectRow(0)
        app.processEvents()
        history_out = out.with_name(out.stem + "-history.png")
        window.grab().save(str(history_out))
        print(f"saved {history_out}")
        window.close()
        services.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
