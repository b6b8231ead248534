"""The planner against llmcompressor run here: exact bytes equal the tensors written, and the
config-only estimate is within 2 %.  FP8_DYNAMIC, W4A16 and GPTQ_W4A16 run by default (about a
minute each on 2 cores); W8A16, SmoothQuant+GPTQ and AWQ with MSQUANT_TEST_ALL_SCHEMES=1."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from msquant_desktop.plan.checkpoint import read_model, weight_bytes
from tests.plan.test_memory import header_data_bytes
from tests.quantize.conftest import demo_model, needs_llmcompressor, run_cli

__all__ = ["demo_model"]  # the session fixture, shared with tests/quantize

pytestmark = [pytest.mark.quantize, pytest.mark.slow, needs_llmcompressor]

EXTENDED = os.environ.get("MSQUANT_TEST_ALL_SCHEMES") == "1"
QUICK = ["FP8_DYNAMIC", "W4A16", "GPTQ_W4A16"]
HEAVY = ["W8A16", "SMOOTHQUANT_GPTQ_W8A8", "AWQ_W4A16"]


@pytest.fixture(scope="session")
def quantized(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(scheme: str) -> Path:
        if scheme not in made:
            out = tmp_path_factory.mktemp("plan-q") / scheme
            args = ["quantize", "--model", str(demo_model), "--scheme", scheme, "--out", str(out)]
            if scheme in ("GPTQ_W4A16", "SMOOTHQUANT_GPTQ_W8A8", "AWQ_W4A16"):
                args += [
                    "--dataset",
                    str(demo_model / "calibration.jsonl"),
                    "--samples",
                    "8",
                    "--seq-len",
                    "64",
                ]
            code, _events, stdout, stderr = run_cli(*args, timeout=900)
            assert code == 0, stdout[-3000:] + stderr[-3000:]
            made[scheme] = out
        return made[scheme]

    return get


@pytest.mark.parametrize(
    "scheme",
    QUICK
    + [
        pytest.param(s, marks=pytest.mark.skipif(not EXTENDED, reason="set MSQUANT_TEST_ALL_SCHEMES=1"))
        for s in HEAVY
    ],
)
def test_planner_bytes_equal_the_written_tensors(
    quantized: Callable[[str], Path], demo_model: Path, scheme: str
) -> None:
    folder = quantized(scheme)
    source = read_model(folder)
    assert source.scheme == scheme
    exact = weight_bytes(source)
    written = sum(header_data_bytes(f)[0] for f in folder.glob("*.safetensors"))
    assert exact.exact and exact.stored_bytes == written

    predicted = weight_bytes(read_model(demo_model), scheme)  # before quantizing: from the shapes
    assert predicted.stored_bytes == written
    estimate = weight_bytes(read_model(demo_model / "config.json"), scheme)  # from config.json alone
    assert not estimate.exact
    assert abs(estimate.stored_bytes - written) <= 0.02 * written
