"""Planner fixtures: recorded llmcompressor outputs (headers only) and, opt-in heavy, live ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED_SCHEMES = ("FP8_DYNAMIC", "W8A16", "W4A16", "GPTQ_W4A16", "SMOOTHQUANT_GPTQ_W8A8", "AWQ_W4A16")


def materialize(name: str, dest: Path) -> Path:
    """A model folder from a recorded fixture: config.json, recipe.yaml and a header-only
    model.safetensors (the reader never touches tensor data)."""
    src = FIXTURES / name
    out = dest / name
    out.mkdir(parents=True)
    for file in src.iterdir():
        target = "model.safetensors" if file.name == "model.safetensors.header" else file.name
        shutil.copy(file, out / target)
    return out


def recorded_file_size(name: str) -> int:
    return int(json.loads((FIXTURES / name / "source.json").read_text())["model_safetensors_bytes"])


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recorded")
    folders = {"BF16": materialize("demo-tiny", root)}
    for scheme in RECORDED_SCHEMES:
        folders[scheme] = materialize(f"demo-tiny-{scheme}", root)
    return folders
