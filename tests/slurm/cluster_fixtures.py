"""Helpers of the cluster-quantization tests: a Python the testbed's user can run, and the CLI run
against a clusters file (the `cluster_python` and `cluster_model` fixtures are in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.profiles import save_profiles
from tests.conftest import run_cli_argv


def base_python(user: str) -> str | None:
    """A Python of this minor version that the test user can run (ours may sit in root's home)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if Path(candidate).is_file():
            done = subprocess.run(
                ["runuser", "-u", user, "--", candidate, "-c", "print(1)"], capture_output=True
            )
            if done.returncode == 0:
                return candidate
    return None


def cli_for(tmp_path: Path, profile: ClusterProfile) -> tuple[list[str], Path]:
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])
    data = tmp_path / "data"
    return run_cli_argv("--data-dir", str(data), "slurm"), clusters


def run_slurm(
    prefix: list[str], command: str, clusters: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, command, "--clusters", str(clusters), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
