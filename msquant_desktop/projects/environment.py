"""Which Python a project runs in: the user's choice, its .venv/ or venv/, the conda env its
environment.yml names, else this app's own interpreter (said plainly in the UI).

Only files are looked at (no `conda` command, no interpreter is started): detection runs on every
refresh.  Conda envs are found where conda itself lists them: `CONDA_ENVS_PATH`, the `envs/` folder of
the installation `CONDA_EXE` or `CONDA_PREFIX` points into, `~/.conda/environments.txt` and the usual
installation folders.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from msquant_desktop.domain.project_configs import ENV_APP, ENV_SETTINGS, PythonEnv
from msquant_desktop.runtime import is_frozen

VENV_FOLDERS = (".venv", "venv")
ENVIRONMENT_FILES = ("environment.yml", "environment.yaml")
CONDA_INSTALL_FOLDERS = ("miniconda3", "anaconda3", "miniforge3", "mambaforge", "micromamba", ".conda")

_NAME_LINE = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def _interpreter_in(prefix: Path) -> Path | None:
    for candidate in (prefix / "bin" / "python", prefix / "Scripts" / "python.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _prefix_of(python: Path) -> Path | None:
    """The environment root of an interpreter inside one (a venv or a conda env), else None."""
    parent = python.parent
    root = parent.parent
    if parent.name in ("bin", "Scripts") and (
        (root / "pyvenv.cfg").is_file() or (root / "conda-meta").is_dir()
    ):
        return root
    return None


def conda_env_name(root: Path) -> str | None:
    """The `name:` of the project's environment.yml, if it has one."""
    for name in ENVIRONMENT_FILES:
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        match = _NAME_LINE.search(text)
        if match:
            return match.group(1)
    return None


def _conda_env_dirs() -> Iterator[Path]:
    for folder in filter(None, os.environ.get("CONDA_ENVS_PATH", "").split(os.pathsep)):
        yield Path(folder).expanduser()
    for variable in ("CONDA_EXE", "CONDA_PYTHON_EXE"):
        exe = os.environ.get(variable)
        if exe:
            yield Path(exe).resolve().parent.parent / "envs"
    prefix = os.environ.get("CONDA_PREFIX")
    if prefix:
        p = Path(prefix)
        yield p.parent if p.parent.name == "envs" else p / "envs"
    home = Path.home()
    for install in CONDA_INSTALL_FOLDERS:
        yield home / install / "envs"
    yield Path("/opt/conda/envs")


def find_conda_env(name: str) -> Path | None:
    """The folder of the conda env called `name`, if it exists on this machine."""
    for folder in _conda_env_dirs():
        if _interpreter_in(folder / name):
            return folder / name
    try:
        listed = (Path.home() / ".conda" / "environments.txt").read_text().splitlines()
    except OSError:
        listed = []
    for line in listed:
        path = Path(line.strip())
        if path.name == name and _interpreter_in(path):
            return path
    return None


def app_python() -> PythonEnv:
    """This app's own interpreter (a bundle has none: its probe runs as a subcommand of the bundle)."""
    python = None if is_frozen() else sys.executable
    return PythonEnv(python=python, source=ENV_APP, prefix=None)


def find_environment(root: str | Path, chosen: str | None = None) -> PythonEnv:
    """The project's interpreter: `chosen` (a python executable or an env folder), else detected,
    else this app's own."""
    root = Path(root)
    note = ""
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_absolute():
            path = root / path
        python = _interpreter_in(path) if path.is_dir() else path
        if python is not None and python.is_file() and os.access(python, os.X_OK):
            prefix = _prefix_of(python)
            return PythonEnv(str(python), ENV_SETTINGS, str(prefix) if prefix else None)
        note = f"the chosen interpreter {chosen} is not an executable Python"
    for folder in VENV_FOLDERS:
        python = _interpreter_in(root / folder)
        if python is not None:
            return PythonEnv(str(python), folder, str(root / folder), note)
    name = conda_env_name(root)
    if name:
        env_dir = find_conda_env(name)
        if env_dir is not None:
            python = _interpreter_in(env_dir)
            return PythonEnv(str(python), f"conda:{name}", str(env_dir), note)
        note = note or f"environment.yml names the conda env {name!r}, which is not on this machine"
    fallback = app_python()
    return PythonEnv(fallback.python, fallback.source, None, note)
