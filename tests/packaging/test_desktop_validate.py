"""The `.desktop` entry and the AppStream metainfo as the distributions' own validators read them
(desktop-file-utils and appstream: scripts/dev.sh installs both as test packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from msquant_desktop import APP_ID
from tests.jobs.helpers import REPO_ROOT


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install the {package} package (`bash scripts/dev.sh test` does)")
    return path


def _validate_desktop(path: Path) -> None:
    done = subprocess.run(
        [_tool("desktop-file-validate", "desktop-file-utils"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # It exits 0 with mere hints; we want no hint either (e.g. two main categories).
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_desktop_entry_passes_desktop_file_validate() -> None:
    _validate_desktop(REPO_ROOT / "resources" / f"{APP_ID}.desktop")


def test_installed_desktop_entry_passes_desktop_file_validate(tmp_path: Path) -> None:
    exe = tmp_path / "bin dir" / "msquant-desktop"  # a space in the path: Exec must quote it
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    subprocess.run(
        ["bash", str(REPO_ROOT / "packaging" / "install-desktop.sh"), str(exe)],
        check=True,
        env=env,
        timeout=60,
    )
    _validate_desktop(tmp_path / "share" / "applications" / f"{APP_ID}.desktop")


def test_metainfo_passes_appstreamcli_validate() -> None:
    done = subprocess.run(
        [
            _tool("appstreamcli", "appstream"),
            "validate",
            "--no-net",
            str(REPO_ROOT / "resources" / f"{APP_ID}.metainfo.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "web-url-expected" not in done.stdout
