"""Inspect a Hugging Face model folder without loading it: config.json, weights on disk, shapes.

Cheap (reads JSON and safetensors headers only), so the form can run it on every folder change.
Parameters and sizes are counted from the files transformers actually loads (`loaded_weight_files`):
a Mistral-style folder also holds `consolidated.safetensors` (the same weights for mistral-inference),
which `from_pretrained` never reads and which must not double the count.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msquant_desktop.domain.quantize import SUPPORTED_ARCHITECTURES, looks_like_hub_name, matches_ignore
from msquant_desktop.quantize.hf_cache import download_hint, hub_cache_dir, resolve_hub_name

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "int8": 1,
}
SAFETENSORS_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I8": 1, "U8": 1, "I32": 4, "F64": 8}
# transformers' names, in the order `from_pretrained` looks for them (modeling_utils: safetensors
# first, a single file before a sharded index; then the PyTorch pickles).
SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_WEIGHTS_INDEX = "pytorch_model.bin.index.json"


class ModelFolderError(ValueError):
    """A model folder that cannot be quantized; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What the form shows about a model folder."""

    path: Path
    architecture: str
    model_type: str
    parameters: int
    dtype: str
    size_on_disk: int
    hidden_size: int
    num_layers: int
    vocab_size: int
    already_quantized: bool
    linear_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (out, in)

    @property
    def weight_bytes(self) -> int:
        """Bytes the weights take in memory in their stored dtype."""
        return self.parameters * DTYPE_BYTES.get(self.dtype, 4)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _read_config(path: Path) -> dict[str, Any]:
    if looks_like_hub_name(str(path), path.exists()):
        raise ModelFolderError(
            f"{path} looks like a Hugging Face hub name and is not in the Hugging Face cache "
            f"({hub_cache_dir()}); this app works offline: {download_hint(str(path))}, or choose a "
            "local model folder"
        )
    if not path.exists():
        raise ModelFolderError(f"model folder {path} does not exist")
    if not path.is_dir():
        raise ModelFolderError(f"{path} is a file; choose the folder that holds config.json")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelFolderError(
            f"{path} is not a model folder: it has no config.json "
            "(choose the folder a Hugging Face model was saved or downloaded to)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{config_file} cannot be read as JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelFolderError(f"{config_file} does not hold a JSON object")
    return config


def _index_shards(folder: Path, index_name: str) -> list[Path]:
    """The shard files a `*.index.json` maps weights to; raises ModelFolderError when one is missing."""
    index_file = folder / index_name
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        names = sorted({str(name) for name in weight_map.values()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFolderError(f"{index_file} cannot be read as a weight index: {exc}") from exc
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ModelFolderError(
            f"{folder} is incomplete: {index_name} names {len(missing)} missing shard(s) "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); finish the download"
        )
    return [folder / name for name in names]


def loaded_weight_files(folder: Path) -> list[Path]:
    """The weight files `from_pretrained` reads from a local folder, found as transformers finds them;
    a folder with none of its names (an unusual export): every weight file there."""
    if (folder / SAFE_WEIGHTS).is_file():
        return [folder / SAFE_WEIGHTS]
    if (folder / SAFE_WEIGHTS_INDEX).is_file():
        return _index_shards(folder, SAFE_WEIGHTS_INDEX)
    if (folder / TORCH_WEIGHTS).is_file():
        return [folder / TORCH_WEIGHTS]
    if (folder / TORCH_WEIGHTS_INDEX).is_file():
        return _index_shards(folder, TORCH_WEIGHTS_INDEX)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def weights_size(folder: Path) -> int:
    """Bytes of the weight files the model loads (not the other copies a folder may hold)."""
    return sum(p.stat().st_size for p in loaded_weight_files(folder))


def _safetensors_headers(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Tensor name -> {dtype, shape} from the given *.safetensors files' headers (no tensor data read)."""
    tensors: dict[str, dict[str, Any]] = {}
    for file in files:
        if file.suffix != ".safetensors":
            continue
        with file.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                continue
            (length,) = struct.unpack("<Q", raw)
            if length > 100_000_000:
                continue
            try:
                header = json.loads(fh.read(length))
            except ValueError:
                continue
        for name, value in header.items():
            if name != "__metadata__" and isinstance(value, dict):
                tensors[name] = value
    return tensors


def _estimate_parameters(config: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer from its config (used when no safetensors)."""
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
    layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 0)
    inter = int(config.get("intermediate_size") or 4 * hidden)
    vocab = int(config.get("vocab_size") or 0)
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or (hidden // heads if heads else 0))
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * inter
    embed = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return layers * (attn + mlp + 2 * hidden) + embed + hidden


def inspect_model_folder(path: str | Path) -> ModelInfo:
    """Read a model folder; raises ModelFolderError naming the problem."""
    folder = Path(path).expanduser()
    # A hub name resolves offline to its cached snapshot (the folder from_pretrained would load).
    folder = resolve_hub_name(str(path)) or folder
    config = _read_config(folder)
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else ""
    if not architecture:
        raise ModelFolderError(
            f"{folder / 'config.json'} names no architecture (its 'architectures' is empty)"
        )
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ModelFolderError(
            f"unsupported architecture {architecture}: quantization here handles decoder-only causal "
            f"language models ({', '.join(sorted(SUPPORTED_ARCHITECTURES)[:6])}, ...)"
        )
    weights = loaded_weight_files(folder)
    if not weights:
        raise ModelFolderError(
            f"{folder} has a config.json but no weights (*.safetensors or *.bin): the download may be incomplete"
        )
    headers = _safetensors_headers(weights)
    if headers:
        parameters = 0
        for info in headers.values():
            count = 1
            for dim in info.get("shape", []):
                count *= int(dim)
            parameters += count
        dtypes = [str(info.get("dtype", "")) for info in headers.values()]
        main = max(set(dtypes), key=dtypes.count) if dtypes else ""
        dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}.get(main, main.lower())
    else:
        parameters = _estimate_parameters(config)
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    linear_shapes = {
        name[: -len(".weight")]: (int(info["shape"][0]), int(info["shape"][1]))
        for name, info in headers.items()
        if name.endswith(".weight") and len(info.get("shape", [])) == 2 and ".layers." in name
    }
    return ModelInfo(
        path=folder,
        architecture=architecture,
        model_type=str(config.get("model_type", "")),
        parameters=parameters,
        dtype=dtype,
        size_on_disk=folder_size(folder),
        hidden_size=int(config.get("hidden_size") or config.get("n_embd") or 0),
        num_layers=int(config.get("num_hidden_layers") or config.get("n_layer") or 0),
        vocab_size=int(config.get("vocab_size") or 0),
        already_quantized="quantization_config" in config,
        linear_shapes=linear_shapes,
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def read_causal_lm_config(path: str | Path) -> dict[str, Any]:
    """config.json of a folder transformers can load as a causal language model with its tokenizer
    (quantized or not), for evaluation; raises ModelFolderError naming the problem."""
    folder = Path(path).expanduser()
    # A hub name resolves offline to its cached snapshot (the folder from_pretrained would load).
    folder = resolve_hub_name(str(path)) or folder
    config = _read_config(folder)
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else ""
    causal = architecture in SUPPORTED_ARCHITECTURES or architecture.endswith(("ForCausalLM", "LMHeadModel"))
    if not causal:
        raise ModelFolderError(
            f"{folder} is not a causal language model: its config.json names "
            f"{'architecture ' + architecture if architecture else 'no architecture'} "
            "(evaluation needs a text-generating *ForCausalLM model)"
        )
    if not loaded_weight_files(folder):
        raise ModelFolderError(
            f"{folder} has a config.json but no weights (*.safetensors or *.bin): the download may be incomplete"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelFolderError(
            f"{folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)}): save the tokenizer with the model"
        )
    return config


def indivisible_layers(info: ModelInfo, group_size: int, ignore: tuple[str, ...] = ()) -> list[str]:
    """Linear layers whose input width is not a multiple of `group_size` (group quantization fails)."""
    bad = []
    for name, (_out, width_in) in sorted(info.linear_shapes.items()):
        if any(matches_ignore(name, pattern) for pattern in ignore):
            continue
        if width_in % group_size:
            bad.append(name)
    return bad


def describe_indivisible(layers: list[str], group_size: int, widths: dict[str, tuple[int, int]]) -> str:
    shown = ", ".join(f"{name} (in {widths[name][1]})" for name in layers[:6])
    more = f" and {len(layers) - 6} more" if len(layers) > 6 else ""
    return (
        f"{len(layers)} layer(s) have an input width not divisible by the group size {group_size}: "
        f"{shown}{more}. Add them to the ignore list (they stay unquantized) or choose another scheme."
    )


# -- checks cheap enough to make before torch is imported (seconds) --------------------------------


def not_a_model_folder(path: Path) -> str | None:
    """Why `path` is not a model folder (no config.json), or None."""
    if not (path / "config.json").is_file():
        return f"{path} is not a model folder (no config.json)"
    return None


def new_folder_problem(path: Path) -> str | None:
    """Why `path` cannot receive a new model (a file, or a folder with files in it), or None."""
    if path.exists() and not path.is_dir():
        return f"{path} is a file; choose a new folder"
    if path.is_dir() and any(path.iterdir()):
        return f"{path} already exists and is not empty; choose a new folder"
    return None
