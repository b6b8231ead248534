"""Model folder facts come from the files transformers loads, not from every weight file in the folder.

The layout is that of a Mistral release on the hub (mistralai/Mistral-7B-Instruct-v0.3: sharded
`model-0000N-of-00003.safetensors` + `model.safetensors.index.json` for transformers, and the same
weights again as `consolidated.safetensors` with mistral-inference names, plus `params.json`), scaled
down to tiny widths; the files are real safetensors written by the safetensors library.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from msquant_desktop.quantize.memory import estimate_memory
from msquant_desktop.quantize.model_folder import (
    ModelFolderError,
    inspect_model_folder,
    loaded_weight_files,
    read_causal_lm_config,
    weights_size,
)

HIDDEN, INTER, VOCAB, LAYERS = 128, 256, 96, 2


def _hf_tensors() -> dict[str, np.ndarray]:
    tensors = {"model.embed_tokens.weight": np.zeros((VOCAB, HIDDEN), np.float16)}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        tensors |= {
            f"{p}.self_attn.q_proj.weight": np.zeros((HIDDEN, HIDDEN), np.float16),
            f"{p}.self_attn.k_proj.weight": np.zeros((HIDDEN // 4, HIDDEN), np.float16),
            f"{p}.self_attn.v_proj.weight": np.zeros((HIDDEN // 4, HIDDEN), np.float16),
            f"{p}.self_attn.o_proj.weight": np.zeros((HIDDEN, HIDDEN), np.float16),
            f"{p}.mlp.gate_proj.weight": np.zeros((INTER, HIDDEN), np.float16),
            f"{p}.mlp.up_proj.weight": np.zeros((INTER, HIDDEN), np.float16),
            f"{p}.mlp.down_proj.weight": np.zeros((HIDDEN, INTER), np.float16),
            f"{p}.input_layernorm.weight": np.zeros((HIDDEN,), np.float16),
            f"{p}.post_attention_layernorm.weight": np.zeros((HIDDEN,), np.float16),
        }
    tensors |= {
        "model.norm.weight": np.zeros((HIDDEN,), np.float16),
        "lm_head.weight": np.zeros((VOCAB, HIDDEN), np.float16),
    }
    return tensors


def _mistral_names(name: str) -> str:
    """The mistral-inference name of a transformers tensor (as in consolidated.safetensors)."""
    renames = {
        "model.embed_tokens.weight": "tok_embeddings.weight",
        "model.norm.weight": "norm.weight",
        "lm_head.weight": "output.weight",
    }
    if name in renames:
        return renames[name]
    for old, new in (
        ("model.layers.", "layers."),
        ("self_attn.q_proj", "attention.wq"),
        ("self_attn.k_proj", "attention.wk"),
        ("self_attn.v_proj", "attention.wv"),
        ("self_attn.o_proj", "attention.wo"),
        ("mlp.gate_proj", "feed_forward.w1"),
        ("mlp.down_proj", "feed_forward.w2"),
        ("mlp.up_proj", "feed_forward.w3"),
        ("input_layernorm", "attention_norm"),
        ("post_attention_layernorm", "ffn_norm"),
    ):
        name = name.replace(old, new)
    return name


def write_mistral_style_folder(folder: Path, shards: int = 3) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    config = {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "vocab_size": VOCAB,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "params.json").write_text(json.dumps({"dim": HIDDEN, "n_layers": LAYERS}))
    (folder / "tokenizer_config.json").write_text("{}")
    tensors = _hf_tensors()
    names = list(tensors)
    weight_map = {}
    for k in range(shards):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[k::shards]}
        save_file(part, str(folder / shard), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, shard)
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    consolidated = {_mistral_names(n): t for n, t in tensors.items()}
    save_file(consolidated, str(folder / "consolidated.safetensors"))
    return tensors


def test_a_consolidated_copy_does_not_double_parameters_size_or_memory(tmp_path: Path) -> None:
    folder = tmp_path / "Mistral-tiny"
    tensors = write_mistral_style_folder(folder)
    expected = sum(t.size for t in tensors.values())

    files = loaded_weight_files(folder)
    assert [f.name for f in files] == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    assert weights_size(folder) == sum(f.stat().st_size for f in files)
    assert weights_size(folder) < (folder / "consolidated.safetensors").stat().st_size * 1.01

    info = inspect_model_folder(folder)
    assert info.parameters == expected  # not 2 x expected
    assert info.dtype == "float16" and info.weight_bytes == expected * 2
    assert set(info.linear_shapes) == {
        n[: -len(".weight")] for n in tensors if ".layers." in n and tensors[n].ndim == 2
    }
    assert info.linear_shapes["model.layers.0.mlp.down_proj"] == (HIDDEN, INTER)

    # The estimate is the same as for the folder without the extra copy.
    (folder / "consolidated.safetensors").unlink()
    without = inspect_model_folder(folder)
    assert without.parameters == info.parameters
    estimate = estimate_memory(info, "W8A16", 1, 8, host_available=2**40).host_bytes
    assert estimate == estimate_memory(without, "W8A16", 1, 8, host_available=2**40).host_bytes


def test_a_single_model_file_wins_over_other_weight_files(tmp_path: Path) -> None:
    folder = tmp_path / "single"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "vocab_size": 8}))
    save_file({"lm_head.weight": np.zeros((8, 4), np.float32)}, str(folder / "model.safetensors"))
    save_file({"output.weight": np.zeros((8, 4), np.float32)}, str(folder / "consolidated.safetensors"))
    assert [f.name for f in loaded_weight_files(folder)] == ["model.safetensors"]
    assert inspect_model_folder(folder).parameters == 32


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    write_mistral_style_folder(folder)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"incomplete: .* 1 missing shard\(s\) \(model-00002-of-00003"):
        inspect_model_folder(folder)


def test_evaluation_accepts_causal_lms_only(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_mistral_style_folder(folder)
    assert read_causal_lm_config(folder)["model_type"] == "mistral"
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"architectures": ["MistralModel"]}))
    with pytest.raises(
        ModelFolderError, match="is not a causal language model: .* architecture MistralModel"
    ):
        read_causal_lm_config(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(ModelFolderError, match="has no tokenizer"):
        read_causal_lm_config(folder)
