"""The `project-run` wrapper as the job engine starts it: a real child process of our CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli_argv
from tests.projects.conftest import SampleRepo


def test_wrapper_runs_the_command_at_the_commit_and_reports_failures(
    sample_repo: SampleRepo, tmp_path: Path
) -> None:
    command = [sys.executable, "train.py", "model=large", "name=a b;c"]
    base = ["project-run", "--repo", str(sample_repo.work), "--commit", sample_repo.pushed]
    ok = subprocess.run(
        run_cli_argv(*base, "--dest", str(tmp_path / "r1" / "src"), "--", *command),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["ARGV " + json.dumps(command[2:]), "VERSION v1"]
    assert f"commit {sample_repo.pushed[:12]} checked out" in ok.stderr

    bad_commit = subprocess.run(
        run_cli_argv(
            "project-run",
            "--repo",
            str(sample_repo.work),
            "--commit",
            "deadbeef",
            "--dest",
            str(tmp_path / "r2"),
            "--",
            "true",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_commit.returncode == 1 and "project-run: git rev-parse" in bad_commit.stderr

    no_patch = subprocess.run(
        run_cli_argv(
            *base, "--dest", str(tmp_path / "r3"), "--patch", str(tmp_path / "gone.patch"), "--", "true"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert no_patch.returncode == 1 and "gone.patch is missing" in no_patch.stderr
