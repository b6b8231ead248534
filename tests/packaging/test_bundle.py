"""The PyInstaller bundle and the desktop integration, built and run for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from configparser import ConfigParser
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

APP_ID = "io.github.msquant.MSQuantDesktop"
BUNDLE_EXE = REPO_ROOT / "dist" / "msquant-desktop" / "msquant-desktop"


@pytest.fixture(scope="module")
def bundle() -> Path:
    """Build the onedir bundle once (PyInstaller reuses its cache on later runs)."""
    pytest.importorskip("PyInstaller", reason="the [bundle] extra (pyinstaller) is not installed")
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "packaging" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert BUNDLE_EXE.is_file()
    return BUNDLE_EXE


@pytest.mark.slow
def test_bundle_self_test_passes_offscreen(bundle: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([str(bundle), "--self-test"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout


@pytest.mark.slow
def test_bundle_leaves_out_ml_libraries(bundle: Path) -> None:
    internal = bundle.parent / "_internal"
    names = {p.name for p in internal.iterdir()}
    assert "PySide6" in names
    for heavy in ("torch", "llmcompressor", "transformers"):
        assert heavy not in names, f"{heavy} must not be in the bundle"


@pytest.mark.slow
def test_bundle_runs_headless_subcommands(bundle: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([str(bundle), "--version"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("msquant-desktop ")


def test_desktop_file_and_metainfo_are_well_formed() -> None:
    entry = ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(REPO_ROOT / "resources" / f"{APP_ID}.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Icon"] == APP_ID
    assert section["Exec"].startswith("msquant-desktop") and section["Terminal"] == "false"
    root = ET.parse(REPO_ROOT / "resources" / f"{APP_ID}.metainfo.xml").getroot()
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == f"{APP_ID}.desktop"  # type: ignore[union-attr]


def test_icons_exist_in_the_sizes_desktops_use() -> None:
    assert (REPO_ROOT / "resources" / "msquant-desktop.svg").is_file()
    for size in (16, 32, 48, 64, 128, 256):
        png = REPO_ROOT / "resources" / "icons" / f"msquant-desktop-{size}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_install_script_puts_a_launcher_in_the_menu(tmp_path: Path) -> None:
    fake_exe = tmp_path / "bin" / "msquant-desktop"
    fake_exe.parent.mkdir()
    shutil.copy(REPO_ROOT / "packaging" / "entry.py", fake_exe)
    fake_exe.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "packaging" / "install-desktop.sh"), str(fake_exe)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    desktop = (tmp_path / "share" / "applications" / f"{APP_ID}.desktop").read_text()
    assert f'Exec="{fake_exe}"' in desktop and f"TryExec={fake_exe}" in desktop
    assert (tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png").is_file()
    assert (tmp_path / "share" / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
