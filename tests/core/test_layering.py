"""The layering is enforced by tools, and the tools really catch a violation."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent
PACKAGE = REPO_ROOT / "msquant_desktop"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_import_contracts_hold() -> None:
    proc = _lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("domain/leak.py", "import PySide6.QtCore\n"),
        ("store/leak.py", "from PySide6.QtCore import QObject\n"),
        ("ui/leak.py", "import paramiko\n"),
        ("services/leak.py", "import torch\n"),
    ],
)
def test_lint_imports_catches_a_violation(tmp_path: Path, module: str, line: str) -> None:
    shutil.copytree(PACKAGE, tmp_path / "msquant_desktop", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "msquant_desktop" / module).write_text(line)
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "BROKEN" in proc.stdout and f"msquant_desktop.{module[:-3].replace('/', '.')}" in proc.stdout


def test_ruff_enforces_banned_apis(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "ruff"), "check", str(REPO_ROOT)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout
    leak = PACKAGE / "domain" / "_ruff_probe.py"
    leak.write_text("import pynvml\nimport torch\n")
    try:
        proc = subprocess.run(
            [str(BIN / "ruff"), "check", "--no-cache", str(leak)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
    finally:
        leak.unlink()
    assert proc.returncode != 0
    assert "TID251" in proc.stdout and "TID253" in proc.stdout


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_services_use_qtcore_only() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            n
            for n in _imported_modules(path)
            if n.startswith(("PySide6.QtWidgets", "PySide6.QtGui", "pyqtgraph"))
        )
        for path in (PACKAGE / "services").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


QT_BLOCKER = """
import sys
class _NoQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"):
            raise ImportError(f"{name} is blocked: the core must run without Qt")
        return None
sys.meta_path.insert(0, _NoQt())
"""


@pytest.mark.skipif(os.environ.get("MSQUANT_QT_FREE_RUN") == "1", reason="already inside the Qt-free run")
def test_core_runs_without_qt(tmp_path: Path) -> None:
    """The Qt-free core (tests/core) passes with PySide6 unimportable, as napari's headless env does."""
    (tmp_path / "sitecustomize.py").write_text(QT_BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}", "MSQUANT_QT_FREE_RUN": "1"}
    probe = subprocess.run([sys.executable, "-c", "import PySide6"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:pytest-qt",
            "-p",
            "no:cacheprovider",
            "-m",
            "not slurm and not quantize",
            "tests/core",
            "-W",
            "ignore::pytest.PytestConfigWarning",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
