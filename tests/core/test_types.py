"""The package type-checks, and the type checker is as strict where pyproject.toml says it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("MSQUANT_QT_FREE_RUN") == "1", reason="static checks: the normal run does them"
)

PYPROJECT = REPO_ROOT / "pyproject.toml"
STRICT = ["domain", "store", "config", "supervisor", "slurm", "gpu", "quantize", "projects"]
NOT_STRICT = ["services", "ui", "cli"]


def _mypy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=540,  # a first run without a cache reads torch and llmcompressor: ~2 min here
    )


def test_the_package_type_checks() -> None:
    proc = _mypy(REPO_ROOT, "msquant_desktop")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert proc.stdout.startswith("Success: no issues found")


PROBE = """\
from typing import Any


def untyped(x):
    return x


def generic() -> list:
    return []


def returns_any(x: Any) -> int:
    return x
"""


def test_strict_for_domain_and_adapters_only(tmp_path: Path) -> None:
    """The same probe module in every package: unannotated functions fail everywhere; a bare generic and
    returning Any fail only in domain/ and the adapters (so strict mode has not leaked to the GUI)."""
    package = tmp_path / "msquant_desktop"
    for sub in ["", *STRICT, *NOT_STRICT]:
        (package / sub).mkdir(parents=True, exist_ok=True)
        (package / sub / "__init__.py").write_text("")
        (package / sub / "probe.py").write_text(PROBE)
    proc = _mypy(tmp_path, "--cache-dir", str(tmp_path / "cache"), "msquant_desktop")
    codes: dict[str, set[str]] = {}
    error = re.compile(r"^msquant_desktop/(?:(\w+)/)?probe\.py:\d+: error: .*\[([\w-]+)\]$", re.M)
    for match in error.finditer(proc.stdout):
        codes.setdefault(match[1] or "", set()).add(match[2])
    strict = {"no-untyped-def", "type-arg", "no-any-return"}
    expected = {sub: strict for sub in STRICT} | {sub: {"no-untyped-def"} for sub in ["", *NOT_STRICT]}
    assert codes == expected, proc.stdout
