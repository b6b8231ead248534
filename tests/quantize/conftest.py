"""Shared fixtures: one demo model per test session, built by the real `demo-model` subcommand."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.quantize import parse_event

HAS_LLMCOMPRESSOR = importlib.util.find_spec("llmcompressor") is not None
needs_llmcompressor = pytest.mark.skipif(not HAS_LLMCOMPRESSOR, reason="needs the [quantize] extra")


def run_cli(*args: str, timeout: float = 300) -> tuple[int, list[dict], str, str]:
    """Run our CLI in a child process; return (exit code, events, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "msquant_desktop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [e for e in (parse_event(line) for line in proc.stdout.splitlines()) if e is not None]
    return proc.returncode, events, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_LLMCOMPRESSOR:
        pytest.skip("needs the [quantize] extra")
    out = tmp_path_factory.mktemp("demo") / "demo-tiny"
    code, events, stdout, stderr = run_cli("demo-model", "--size", "tiny", "--out", str(out))
    assert code == 0, stdout + stderr
    assert events[-1]["type"] == "result" and events[-1]["output"] == str(out)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    return out
