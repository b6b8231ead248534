"""Memory per replica: bytes per scheme as compressed-tensors stores them, KV, the vLLM-style budget."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from msquant_desktop.domain.gpu_catalog import GPU_BY_KEY, find_gpu_type
from msquant_desktop.domain.serving_memory import (
    GIB,
    SCHEME_FORMATS,
    SOURCE_CHECKPOINT,
    SOURCE_CONFIG,
    SOURCE_SHAPES,
    Architecture,
    WeightBytes,
    apply_format,
    replica_memory,
)
from msquant_desktop.plan.checkpoint import PlanInputError, read_model, weight_bytes
from tests.plan.conftest import RECORDED_SCHEMES, recorded_file_size

# Public config.json fields of three well-known models (their Hugging Face model cards give the
# parameter counts checked below: 8,030,261,248 / 7,615,616,512 / 1,235,814,400 / 70,553,706,496).
LLAMA3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
LLAMA32_1B: dict[str, Any] = {
    **LLAMA3_8B,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "tie_word_embeddings": True,
}
LLAMA3_70B: dict[str, Any] = {
    **LLAMA3_8B,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
}


def header_data_bytes(file: Path) -> tuple[int, int]:
    """(Σ data_offsets spans, header length) read straight from a safetensors file."""
    with file.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    spans = sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__")
    return spans, length


def baseline_bytes(config: dict[str, Any]) -> int:
    arch = Architecture.from_config(config)
    return sum(t.nbytes for t in apply_format(arch.tensors(), SCHEME_FORMATS["BF16"]))


@pytest.mark.parametrize(
    ("config", "parameters"),
    [
        (LLAMA3_8B, 8_030_261_248),
        (QWEN25_7B, 7_615_616_512),
        (LLAMA32_1B, 1_235_814_400),
        (LLAMA3_70B, 70_553_706_496),
    ],
)
def test_the_config_estimate_counts_public_models_exactly(config: dict[str, Any], parameters: int) -> None:
    assert baseline_bytes(config) == 2 * parameters


def test_storage_bits_per_weight_as_compressed_tensors_writes_them() -> None:
    def bits(scheme: str) -> float:
        tensors = SCHEME_FORMATS[scheme].linear_tensors("x", 4096, 4096, "BF16")
        return sum(t.nbytes for t in tensors if not t.name.endswith("weight_shape")) * 8 / 4096**2

    assert bits("W4A16") == 4.125  # INT4 packed 8 per int32 + a 16-bit scale per 128
    assert bits("AWQ_W4A16") == 4.15625  # + packed 4-bit zero points
    assert bits("W8A16") == 8.125
    assert bits("FP8_DYNAMIC") == pytest.approx(8 + 16 / 4096)  # per-channel scales
    assert bits("SMOOTHQUANT_GPTQ_W8A8") == pytest.approx(8 + 16 / 4096)
    assert bits("BF16") == 16


@pytest.mark.parametrize("scheme", RECORDED_SCHEMES)
def test_exact_bytes_equal_what_llmcompressor_wrote(recorded: dict[str, Path], scheme: str) -> None:
    """Recorded real outputs (tests/plan/fixtures, headers of llmcompressor 0.14's safetensors)."""
    folder = recorded[scheme]
    source = read_model(folder)
    assert source.scheme == scheme  # from quantization_config (+ recipe.yaml for GPTQ / SmoothQuant)
    exact = weight_bytes(source)
    assert exact.source == SOURCE_CHECKPOINT and exact.exact
    spans, header_len = header_data_bytes(folder / "model.safetensors")
    assert exact.stored_bytes == spans == recorded_file_size(f"demo-tiny-{scheme}") - 8 - header_len

    # The same scheme applied to the unquantized demo's real shapes: the very same tensors.
    shapes = weight_bytes(read_model(recorded["BF16"]), scheme)
    assert shapes.source == SOURCE_SHAPES
    assert {(t.name, t.dtype, t.shape) for t in shapes.tensors} == {
        (t.name, t.dtype, t.shape) for t in exact.tensors
    }

    # From the unquantized demo's config.json alone: an estimate, within 2 % (here: equal).
    estimate = weight_bytes(read_model(recorded["BF16"] / "config.json"), scheme)
    assert estimate.source == SOURCE_CONFIG and not estimate.exact
    assert estimate.stored_bytes == pytest.approx(exact.stored_bytes, rel=0.02)
    assert estimate.stored_bytes == exact.stored_bytes


def test_unquantized_folder_and_the_gpu_dtype(recorded: dict[str, Path]) -> None:
    source = read_model(recorded["BF16"])
    own = weight_bytes(source)
    assert own.scheme == "BF16" and own.source == SOURCE_CHECKPOINT and source.stored_dtype == "F32"
    assert own.stored_bytes == header_data_bytes(recorded["BF16"] / "model.safetensors")[0]
    assert own.gpu_bytes * 2 == own.stored_bytes  # vLLM serves a float32 checkpoint in 16 bits
    assert weight_bytes(source, "BF16").stored_bytes == own.gpu_bytes


def test_kv_bytes_per_token() -> None:
    arch = Architecture.from_config(LLAMA3_8B)
    assert arch.kv_bytes_per_token("bf16") == 2 * 32 * 8 * 128 * 2 == 131072
    assert arch.kv_bytes_per_token("fp8") == 65536
    assert arch.kv_bytes_per_token("bf16", tensor_parallel=2) == 65536
    assert arch.kv_bytes_per_token("bf16", tensor_parallel=16) == 2 * 32 * 1 * 128 * 2  # heads replicated
    with pytest.raises(ValueError):
        arch.kv_bytes_per_token("int3")


def _weights(config: dict[str, Any], scheme: str) -> tuple[Architecture, WeightBytes]:
    arch = Architecture.from_config(config)
    tensors = apply_format(arch.tensors(), SCHEME_FORMATS[scheme])
    return arch, WeightBytes(scheme, tuple(tensors), SOURCE_CONFIG, SCHEME_FORMATS[scheme])


def test_vllm_style_budget_arithmetic() -> None:
    arch, weights = _weights(LLAMA3_8B, "BF16")
    mem = replica_memory(weights, arch, GPU_BY_KEY["h100-sxm"], 8192)
    assert mem.tensor_parallel == 1 and mem.fits and mem.problem() is None
    assert mem.budget_bytes == int(81559 * 2**20 * 0.9)
    assert (
        mem.kv_cache_bytes
        == mem.budget_bytes - weights.gpu_bytes - mem.activation_peak_bytes - mem.overhead_bytes
    )
    assert mem.num_blocks == mem.kv_cache_bytes // (16 * 131072)
    assert mem.max_concurrency == pytest.approx(mem.num_blocks * 16 / 8192)
    assert 45 < mem.max_concurrency < 60  # ~55 sequences of 8k tokens on one H100
    # FP8 KV doubles the blocks; a 4-bit model leaves more room still.
    fp8 = replica_memory(weights, arch, GPU_BY_KEY["h100-sxm"], 8192, kv_dtype="fp8")
    assert fp8.num_blocks == pytest.approx(2 * mem.num_blocks, abs=1)
    arch4, w4 = _weights(LLAMA3_8B, "W4A16")
    assert replica_memory(w4, arch4, GPU_BY_KEY["h100-sxm"], 8192).num_blocks > mem.num_blocks


def test_tensor_parallel_when_one_gpu_is_not_enough() -> None:
    arch, bf16 = _weights(LLAMA3_70B, "BF16")
    mem = replica_memory(bf16, arch, GPU_BY_KEY["h100-sxm"], 8192)
    assert mem.tensor_parallel == 2 and mem.fits
    assert replica_memory(bf16, arch, GPU_BY_KEY["l40s"], 8192).tensor_parallel == 4
    arch4, w4 = _weights(LLAMA3_70B, "W4A16")
    assert replica_memory(w4, arch4, GPU_BY_KEY["h100-sxm"], 8192).tensor_parallel == 1
    forced = replica_memory(bf16, arch, GPU_BY_KEY["h100-sxm"], 8192, tensor_parallel=1)
    assert not forced.fits and "no KV cache" in (forced.problem() or "")
    assert replica_memory(bf16, arch, GPU_BY_KEY["l4"], 8192).tensor_parallel == 8
    too_long = replica_memory(bf16, arch, GPU_BY_KEY["l4"], 1_000_000)
    assert not too_long.fits and too_long.tensor_parallel == 8
    assert "larger than the maximum number of tokens" in (too_long.problem() or "")


def test_folders_the_planner_refuses(tmp_path: Path) -> None:
    with pytest.raises(PlanInputError, match="does not exist"):
        read_model(tmp_path / "nope")
    with pytest.raises(PlanInputError, match="no config.json"):
        read_model(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({**LLAMA3_8B, "quantization_config": {"quant_method": "gptq"}})
    )
    with pytest.raises(PlanInputError, match="compressed-tensors"):
        read_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA3_8B))
    with pytest.raises(PlanInputError, match="unknown scheme"):
        weight_bytes(read_model(tmp_path), "W3A16")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("h100_pcie", "h100-pcie"),
        ("a100", "a100-40gb"),
        ("a100_80g", "a100-80gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("NVIDIA H200", "h200"),
    ],
)
def test_gpu_names_as_clusters_spell_them(name: str, key: str) -> None:
    found = find_gpu_type(name)
    assert found is not None and found.key == key


def test_unknown_gpus_are_not_guessed() -> None:
    assert find_gpu_type("NVIDIA L40") is None and find_gpu_type("mi300x") is None
    assert GPU_BY_KEY["h200"].memory_gib == pytest.approx(140.4, abs=0.1)
    assert GPU_BY_KEY["h100-sxm"].bandwidth_bytes_per_s == 3.35e12
    assert all(g.memory_bytes > 20 * GIB for g in GPU_BY_KEY.values())
