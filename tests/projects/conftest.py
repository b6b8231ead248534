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


# -- real Hydra projects in real virtualenvs (tests/projects/hydra_fixtures.py) ----------------------


@dataclass
class HydraVenvs:
    modern: Path  # Python 3.11, hydra-core 1.3 + hydra-colorlog (a plugin the app's Python lacks)
    old: Path | None  # Python 3.10 or older, hydra-core 1.1.2 (None: no such Python here)


@pytest.fixture(scope="session")
def hydra_venvs(tmp_path_factory: pytest.TempPathFactory) -> HydraVenvs:
    """The projects' own environments, made once per test session (pip's cache keeps it quick)."""
    from tests.projects.hydra_fixtures import find_old_python, make_venv

    root = tmp_path_factory.mktemp("project-venvs")
    modern = make_venv(root / "hydra13", sys.executable, ["hydra-core==1.3.2", "hydra-colorlog==1.2.0"])
    old_python = find_old_python()
    old = make_venv(root / "hydra11", old_python, ["hydra-core==1.1.2"]) if old_python else None
    return HydraVenvs(modern=modern.parent.parent, old=old.parent.parent if old else None)


def hydra_project(root: Path, files: dict[str, str], venv: Path | None) -> Path:
    """A committed git repository of `files`, with `venv` as its .venv (None: no environment)."""
    from tests.projects.hydra_fixtures import link_venv, write_project

    write_project(root, files)
    init_repo(root)
    commit_all(root, "configs")
    if venv is not None:
        link_venv(root, venv)
    return root


@pytest.fixture
def lightning_project(tmp_path: Path, hydra_venvs: HydraVenvs) -> Path:
    from tests.projects.hydra_fixtures import LIGHTNING

    return hydra_project(tmp_path / "lightning-hydra", LIGHTNING, hydra_venvs.modern)


@pytest.fixture
def audiocraft_project(tmp_path: Path, hydra_venvs: HydraVenvs) -> Path:
    from tests.projects.hydra_fixtures import AUDIOCRAFT

    if hydra_venvs.old is None:
        pytest.skip("no Python 3.10 or older here: hydra-core 1.1 does not run on Python 3.11")
    return hydra_project(tmp_path / "audiocraft-mini", AUDIOCRAFT, hydra_venvs.old)


@pytest.fixture
def searchpath_project(tmp_path: Path) -> Path:
    from tests.projects.hydra_fixtures import SEARCHPATH

    return hydra_project(tmp_path / "searchpath-app", SEARCHPATH, None)
