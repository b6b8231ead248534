"""The workers' zipapp runs in a Python that has nothing of ours (`python -I -S`: no site-packages,
no PYTHONPATH, no current folder)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from msquant_desktop.quantize import bundle


def test_bundle_holds_the_workers_and_what_they_import(tmp_path: Path) -> None:
    modules = bundle.bundled_modules()
    for name in (
        "msquant_desktop.quantize.worker_quantize",
        "msquant_desktop.quantize.worker_evaluate",
        "msquant_desktop.quantize.progress",  # imported by the quantize worker
        "msquant_desktop.quantize.heldout",  # imported by the evaluate worker
        "msquant_desktop.domain.markers",  # imported by domain.quantize
        "msquant_desktop",
    ):
        assert name in modules
    # Nothing the workers do not need: no Qt layer, no store, no SLURM adapter.
    assert not [
        m
        for m in modules
        if m.startswith(("msquant_desktop.services", "msquant_desktop.slurm", "msquant_desktop.ui"))
    ]
    first = bundle.write_bundle(tmp_path)
    assert bundle.write_bundle(tmp_path) == first  # reproducible: the same name for the same sources
    with zipfile.ZipFile(first) as archive:
        assert "__main__.py" in archive.namelist()
        assert "msquant_desktop/quantize/worker_quantize.py" in archive.namelist()


def test_bundle_runs_without_the_app_installed(tmp_path: Path) -> None:
    pyz = bundle.write_bundle(tmp_path / "b")
    isolated = [sys.executable, "-I", "-S"]
    probe = subprocess.run(
        [*isolated, "-c", "import msquant_desktop"], capture_output=True, text=True, cwd=tmp_path
    )
    assert probe.returncode != 0  # the interpreter alone does not have the app
    for command in ("quantize", "evaluate"):
        done = subprocess.run(
            [*isolated, str(pyz), command, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "--model" in done.stdout
    # Bad input is refused by the worker's own checks, before llmcompressor is imported.
    bad = subprocess.run(
        [
            *isolated,
            str(pyz),
            "quantize",
            "--model",
            str(tmp_path / "nope"),
            "--scheme",
            "W4A16",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert bad.returncode == 2 and "quantize:" in bad.stderr and "Traceback" not in bad.stderr
    wrong = subprocess.run([*isolated, str(pyz), "serve"], capture_output=True, text=True, cwd=tmp_path)
    assert wrong.returncode == 2 and "usage: msquant-worker.pyz" in wrong.stderr
