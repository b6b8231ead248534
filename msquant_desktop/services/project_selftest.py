"""Self-test step of the Projects area: git works and Hydra composes in a child process.

In a bundle this proves that git is installed and that the Hydra probe and Hydra (with its own config
files) were packed: with no project environment the probe runs as this program's `project-probe`, as
the Projects tab runs it for a project without a .venv.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from msquant_desktop.projects import git
from msquant_desktop.projects.hydra_config import HydraError, compose, discover


def run_projects_self_test() -> str | None:
    """None when git and Hydra composition work, else what failed."""
    with tempfile.TemporaryDirectory(prefix="msquant-projects-selftest-") as tmp:
        repo = Path(tmp)
        (repo / "conf" / "model").mkdir(parents=True)
        (repo / "conf" / "config.yaml").write_text("defaults:\n  - model: small\n  - _self_\nseed: 1\n")
        (repo / "conf" / "model" / "small.yaml").write_text("hidden: 64\n")
        (repo / "conf" / "model" / "large.yaml").write_text("hidden: 512\n")
        try:
            subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True, timeout=30)
            status = git.status(repo)
        except (OSError, subprocess.SubprocessError, git.GitError) as exc:
            return f"git does not work here ({exc}); the Projects tab needs git on PATH"
        if status.dirty_count != 3:
            return f"git status saw {status.dirty_count} new files instead of 3"
        found = discover(repo)
        layout = found.layout
        if layout is None or layout.options("model") != ("large", "small"):
            return f"Hydra discovery found {layout} ({found.problem})"
        try:
            text = compose(layout, ["model=large"]).yaml
        except HydraError as exc:
            return f"Hydra composition failed: {exc}"
        if "hidden: 512" not in text:
            return f"Hydra composed an unexpected config: {text!r}"
    return None
