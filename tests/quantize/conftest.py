"""Shared fixtures: one demo model per test session, built by the real `demo-model` subcommand."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.quantize import parse_event

HAS_LLMCOMPRESSOR = importlib.util.find_spec("llmcompressor") is not None
needs_llmcompressor = pytest.mark.skipif(not HAS_LLMCOMPRESSOR, reason="needs the [quantize] extra")


def run_cli(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> tuple[int, list[dict], str, str]:
    """Run our CLI in a child process; return (exit code, events, stdout, stderr).  `env` adds variables."""
    proc = subprocess.run(
        [sys.executable, "-m", "msquant_desktop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )
    events = [e for e in (parse_event(line) for line in proc.stdout.splitlines()) if e is not None]
    return proc.returncode, events, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_LLMCOMPRESSOR:
        pytest.skip("needs the [quantize] extra")
    out = tmp_path_factory.mktemp("demo") / "demo-tiny"
    # Generous: a 2-core machine shared with other test runs took over 5 minutes for this.
    code, events, stdout, stderr = run_cli("demo-model", "--size", "tiny", "--out", str(out), timeout=900)
    assert code == 0, stdout + stderr
    assert "Warning" not in stderr, stderr  # the demo worker's own output is clean
    assert events[-1]["type"] == "result" and events[-1]["output"] == str(out)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    return out


@pytest.fixture(scope="session")
def demo_w4a16(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo model quantized with W4A16 (round-to-nearest, data-free: ~10 s)."""
    out = tmp_path_factory.mktemp("demo-w4a16") / "quantized"
    code, _events, stdout, stderr = run_cli(
        "quantize", "--model", str(demo_model), "--scheme", "W4A16", "--out", str(out)
    )
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    return out
