"""How long the Projects tab's background work takes: git status, snapshot, pinned worktree, Hydra.

    PYTHONPATH=$PWD python bench/projects_git_hydra.py

Builds a repository with N files in a temp folder and prints median/max wall times.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from msquant_desktop.projects import git
from msquant_desktop.projects.hydra_config import compose, discover

N_FILES = 2000
REPEAT = 7


def sh(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def timed(label: str, fn: Callable[[], object], repeat: int = REPEAT) -> None:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    print(f"{label:<48} median {statistics.median(times):8.1f} ms   max {max(times):8.1f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        sh(repo, "init", "-q", "-b", "main")
        sh(repo, "config", "user.name", "b")
        sh(repo, "config", "user.email", "b@example.invalid")
        for i in range(N_FILES):
            (repo / f"src{i % 20}").mkdir(exist_ok=True)
            (repo / f"src{i % 20}" / f"f{i}.py").write_text(f"x = {i}\n" * 20)
        conf = repo / "conf"
        for group in ("model", "trainer", "data"):
            (conf / group).mkdir(parents=True)
            for option in ("a", "b", "c"):
                (conf / group / f"{option}.yaml").write_text(f"name: {option}\nsize: 1\n")
        (conf / "config.yaml").write_text(
            "defaults:\n  - model: a\n  - trainer: a\n  - data: a\n  - _self_\nseed: 1\n"
        )
        sh(repo, "add", "-A")
        sh(repo, "commit", "-q", "-m", "init")
        for i in range(0, N_FILES, 100):
            (repo / f"src{i % 20}" / f"f{i}.py").write_text("changed\n")
        print(f"repository: {N_FILES} files, {N_FILES // 100} modified")
        timed("git status (status())", lambda: git.status(repo))
        timed("snapshot_patch (git diff HEAD --binary)", lambda: git.snapshot_patch(repo))
        head = git.resolve_commit(repo)
        counter = iter(range(1000))
        timed(
            "pinned worktree (git worktree add --detach)",
            lambda: git.add_pinned_worktree(repo, Path(tmp) / f"wt{next(counter)}", head),
            repeat=3,
        )
        layout = discover(repo).layout
        assert layout is not None
        timed("Hydra discovery (files + probe child)", lambda: discover(repo), repeat=3)
        timed("Hydra compose in a child process", lambda: compose(layout, ["model=b"]), repeat=3)


if __name__ == "__main__":
    main()
