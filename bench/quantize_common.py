"""Shared by the quantization benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def model_folder(given: str | None, tmp: str) -> Path:
    """The model folder to benchmark on: the one given, or the tiny demo model built into `tmp`."""
    if given:
        return Path(given)
    model = Path(tmp) / "demo"
    subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "demo-model", "--out", str(model)],
        check=True,
        capture_output=True,
    )
    return model
