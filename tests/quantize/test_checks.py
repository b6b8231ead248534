"""Each bad input is refused before llmcompressor runs, with a message that names the problem."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from msquant_desktop.domain.quantize import QuantizeRequest, request_problems
from msquant_desktop.quantize.calibration import DatasetError, load_calibration_texts
from msquant_desktop.quantize.checks import check_request
from msquant_desktop.quantize.memory import estimate_memory
from msquant_desktop.quantize.model_folder import inspect_model_folder
from tests.quantize.conftest import run_cli


def write_model_folder(
    folder: Path, architecture: str = "LlamaForCausalLM", hidden: int = 256, inter: int = 768
) -> Path:
    """A real (if small) safetensors model folder with the given widths; the tensors are zeros."""
    folder.mkdir(parents=True)
    config = {
        "architectures": [architecture],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": 1,
        "vocab_size": 64,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    shapes = {
        "model.embed_tokens.weight": [64, hidden],
        "model.layers.0.self_attn.q_proj.weight": [hidden, hidden],
        "model.layers.0.mlp.up_proj.weight": [inter, hidden],
        "model.layers.0.mlp.down_proj.weight": [hidden, inter],
        "model.layers.0.input_layernorm.weight": [hidden],
        "lm_head.weight": [64, hidden],
    }
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4
        for d in shape:
            size *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with (folder / "model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return folder


def problems_of(request: QuantizeRequest) -> str:
    return "\n".join(p.message for p in check_request(request).problems)


def test_a_good_request_has_no_problem_and_a_summary(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "m")
    report = check_request(QuantizeRequest(str(model), "W4A16", str(tmp_path / "out")))
    assert report.ok, report.problems
    info = report.model
    assert info is not None and info.architecture == "LlamaForCausalLM" and info.dtype == "float32"
    assert info.parameters == 64 * 256 * 2 + 256 * 256 + 768 * 256 * 2 + 256
    assert (
        info.size_on_disk
        == (model / "model.safetensors").stat().st_size + (model / "config.json").stat().st_size
    )


def test_missing_model_path(tmp_path: Path) -> None:
    assert f"model folder {tmp_path / 'nope'} does not exist" in problems_of(
        QuantizeRequest(str(tmp_path / "nope"), "FP8_DYNAMIC", str(tmp_path / "o"))
    )


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "is not a model folder: it has no config.json" in problems_of(
        QuantizeRequest(str(tmp_path / "empty"), "FP8_DYNAMIC", str(tmp_path / "o"))
    )


def test_unsupported_architecture(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "bert", architecture="BertForMaskedLM")
    assert "unsupported architecture BertForMaskedLM" in problems_of(
        QuantizeRequest(str(model), "FP8_DYNAMIC", str(tmp_path / "o"))
    )


def test_hub_model_name_is_refused(tmp_path: Path) -> None:
    assert "looks like a Hugging Face hub name" in problems_of(
        QuantizeRequest("meta-llama/Llama-3.2-1B", "FP8_DYNAMIC", str(tmp_path / "o"))
    )


def test_scheme_that_needs_data_without_data(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "m")
    for scheme in ("GPTQ_W4A16", "SMOOTHQUANT_GPTQ_W8A8", "AWQ_W4A16"):
        text = problems_of(QuantizeRequest(str(model), scheme, str(tmp_path / "o")))
        assert "calibrates on data: choose a calibration dataset" in text


def test_w4a16_indivisible_widths_name_the_layers_and_ignoring_them_fixes_it(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "odd", hidden=256, inter=200)
    report = check_request(QuantizeRequest(str(model), "W4A16", str(tmp_path / "o")))
    (problem,) = report.problems
    assert "model.layers.0.mlp.down_proj (in 200)" in problem.message and "group size 128" in problem.message
    assert problem.layers == ("model.layers.0.mlp.down_proj",)
    assert check_request(
        QuantizeRequest(str(model), "W4A16", str(tmp_path / "o"), ignore=("lm_head", "down_proj"))
    ).ok
    # W8A16 has no groups: the same model is fine.
    assert check_request(QuantizeRequest(str(model), "W8A16", str(tmp_path / "o"))).ok


def test_hub_dataset_name_is_refused(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "m")
    text = problems_of(
        QuantizeRequest(str(model), "GPTQ_W4A16", str(tmp_path / "o"), dataset="HuggingFaceH4/ultrachat_200k")
    )
    assert "looks like a Hugging Face hub dataset; this app works offline" in text
    with pytest.raises(DatasetError, match="works offline"):
        load_calibration_texts("HuggingFaceH4/ultrachat_200k", 8)


def test_existing_output_folder_is_refused(tmp_path: Path) -> None:
    model = write_model_folder(tmp_path / "m")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("x")
    assert "already exists and is not empty" in problems_of(
        QuantizeRequest(str(model), "W8A16", str(tmp_path / "o"))
    )


def test_calibration_formats(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '{"text": "one"}\n\n{"messages": [{"role": "user", "content": "two"}]}\n'
    )
    (tmp_path / "b.json").write_text(json.dumps([{"prompt": "three"}, "four"]))
    (tmp_path / "c.txt").write_text("five\n\nsix\nstill six\n")
    assert load_calibration_texts(str(tmp_path / "a.jsonl"), 10) == ["one", "two"]
    assert load_calibration_texts(str(tmp_path / "b.json"), 10) == ["three", "four"]
    assert load_calibration_texts(str(tmp_path / "c.txt"), 10) == ["five", "six\nstill six"]
    assert load_calibration_texts(str(tmp_path), 5) == ["one", "two", "three", "four", "five"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid JSON"):
        load_calibration_texts(str(tmp_path / "bad.jsonl"), 10)


def test_memory_warning_when_it_will_not_fit(tmp_path: Path) -> None:
    info = inspect_model_folder(write_model_folder(tmp_path / "m"))
    fits = estimate_memory(info, "GPTQ_W4A16", 64, 512, host_available=64 * 2**30)
    assert fits.warning() is None
    tight = estimate_memory(info, "GPTQ_W4A16", 64, 512, host_available=100 * 2**20)
    assert "may be killed by the OOM killer" in (tight.warning() or "")
    # Calibration adds activation memory that grows with samples x sequence length.
    assert estimate_memory(info, "GPTQ_W4A16", 512, 2048, host_available=1).host_bytes > tight.host_bytes
    assert request_problems(QuantizeRequest("m", "GPTQ_W4A16", "o", dataset="d", samples=0))


def test_worker_refuses_bad_input_with_error_events_before_importing_llmcompressor(tmp_path: Path) -> None:
    code, events, _stdout, stderr = run_cli(
        "quantize",
        "--model",
        str(tmp_path / "missing"),
        "--scheme",
        "GPTQ_W4A16",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    errors = [e for e in events if e["type"] == "error"]
    assert {e["message"].split(":")[0] for e in errors} >= {"GPTQ W4A16 calibrates on data"}
    assert any("does not exist" in e["message"] and e["hint"] for e in errors)
    assert "No accelerator available" not in stderr  # llmcompressor was never imported
