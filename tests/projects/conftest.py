"""Real git repositories and a small Hydra config tree, made in temp folders."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The training script prints its argv and the code version it was checked out at, so a test can read
# back from the process's output exactly what ran.
TRAIN_PY = """\
import json, sys
VERSION = "{version}"
print("ARGV " + json.dumps(sys.argv[1:]))
print("VERSION " + VERSION)
"""

CONFIG_YAML = """\
defaults:
  - model: small
  - trainer: default
  - _self_
seed: 1
data:
  path: /data/train
  batch: 8
"""


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_hydra_tree(root: Path) -> None:
    conf = root / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "trainer").mkdir()
    (conf / "config.yaml").write_text(CONFIG_YAML)
    (conf / "model" / "small.yaml").write_text("hidden: 64\nlayers: 2\n")
    (conf / "model" / "large.yaml").write_text("hidden: 512\nlayers: 12\n")
    (conf / "trainer" / "default.yaml").write_text("epochs: 3\nopt:\n  name: sgd\n  lr: 0.1\n")
    (conf / "trainer" / "fast.yaml").write_text("epochs: 1\nopt:\n  name: adam\n  lr: 0.01\n")


@dataclass
class SampleRepo:
    work: Path  # the user's clone
    remote: Path  # its bare origin
    pushed: str  # SHA of the commit on origin
    unpushed: str  # SHA of HEAD, one commit ahead of origin

    def entry_point(self) -> str:
        return f"{sys.executable} train.py"


def init_repo(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "commit.gpgsign", "false")


@pytest.fixture
def sample_repo(tmp_path: Path) -> SampleRepo:
    """A clone with Hydra configs, a bare origin, one unpushed commit; clean work tree."""
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    work = tmp_path / "work" / "mnist-demo"
    init_repo(work)
    write_hydra_tree(work)
    (work / "train.py").write_text(TRAIN_PY.format(version="v1"))
    pushed = commit_all(work, "first model")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "-u", "origin", "main")
    (work / "train.py").write_text(TRAIN_PY.format(version="v2"))
    unpushed = commit_all(work, "bigger batch")
    return SampleRepo(work=work, remote=remote, pushed=pushed, unpushed=unpushed)
