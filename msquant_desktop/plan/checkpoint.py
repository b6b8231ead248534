"""Read what the planner needs from a model folder (or a lone config.json): no torch, no tensor data.

`config.json` gives the architecture and, for a quantized folder, its `quantization_config`;
`recipe.yaml` (llmcompressor writes it next to the weights) tells GPTQ from plain W4A16; the
safetensors headers (8-byte little-endian length, then JSON with dtype/shape/data_offsets per tensor)
give every stored tensor exactly.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.serving_memory import (
    BASELINE_SCHEME,
    SCHEME_FORMATS,
    SOURCE_CHECKPOINT,
    SOURCE_CONFIG,
    SOURCE_SHAPES,
    Architecture,
    TensorSpec,
    WeightBytes,
    WeightFormat,
    apply_format,
    format_from_quantization_config,
    ignore_list,
    is_linear_tensor,
)

MAX_HEADER_BYTES = 100_000_000


class PlanInputError(ValueError):
    """A model folder or config the planner cannot read; the message says why."""


@dataclass(frozen=True)
class ModelSource:
    """A model as the planner sees it."""

    path: Path
    config: dict[str, Any]
    architecture: Architecture
    tensors: tuple[TensorSpec, ...]
    quantization: WeightFormat | None
    ignore: tuple[str, ...]

    @property
    def has_weights(self) -> bool:
        return bool(self.tensors)

    @property
    def scheme(self) -> str:
        """The folder's own scheme id; BF16 (the baseline) for an unquantized model."""
        return self.quantization.scheme if self.quantization else BASELINE_SCHEME

    @property
    def stored_dtype(self) -> str:
        return self.architecture.dense_dtype


def read_safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise PlanInputError(f"{file} is not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER_BYTES:
            raise PlanInputError(f"{file} has a {length}-byte header: not a safetensors file")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise PlanInputError(f"{file}: its safetensors header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise PlanInputError(f"{file}: its safetensors header is not a JSON object")
    return header


def read_tensors(folder: Path) -> list[TensorSpec]:
    """Every tensor of the folder's safetensors files (those an index names, when there is one)."""
    index = folder / "model.safetensors.index.json"
    files: list[Path]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError) as exc:
            raise PlanInputError(f"{index} cannot be read: {exc}") from exc
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise PlanInputError(f"{folder} lacks shards its index names: {', '.join(missing[:3])}")
    else:
        files = sorted(folder.glob("*.safetensors"))
    tensors: list[TensorSpec] = []
    for file in files:
        for name, info in read_safetensors_header(file).items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            tensors.append(
                TensorSpec(name, str(info.get("dtype", "")), tuple(int(d) for d in info.get("shape", [])))
            )
    return tensors


def read_model(path: str | Path) -> ModelSource:
    """A model folder (config.json + safetensors) or a lone config.json (then: estimates only)."""
    target = Path(path).expanduser()
    if target.is_file():
        config_file, folder = target, target.parent
    elif target.is_dir():
        config_file, folder = target / "config.json", target
    else:
        raise PlanInputError(f"{target} does not exist")
    if not config_file.is_file():
        raise PlanInputError(f"{folder} has no config.json: choose a model folder or its config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanInputError(f"{config_file} cannot be read as JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise PlanInputError(f"{config_file} does not hold a JSON object")
    try:
        arch = Architecture.from_config(config)
    except ValueError as exc:
        raise PlanInputError(f"{config_file}: {exc}") from exc
    qc = config.get("quantization_config") if isinstance(config.get("quantization_config"), dict) else None
    recipe = folder / "recipe.yaml"
    recipe_text = recipe.read_text(encoding="utf-8", errors="replace") if recipe.is_file() else ""
    fmt = format_from_quantization_config(qc, recipe_text) if qc else None
    if qc and fmt is None:
        raise PlanInputError(
            f"{config_file}: quantization method {qc.get('quant_method')!r} is not compressed-tensors; "
            "the planner reads compressed-tensors checkpoints (what llmcompressor writes)"
        )
    tensors = read_tensors(folder) if target.is_dir() else []
    return ModelSource(folder, config, arch, tuple(tensors), fmt, ignore_list(qc))


def _same_storage(a: WeightFormat, b: WeightFormat) -> bool:
    return (a.num_bits, a.kind, a.strategy, a.group_size, a.symmetric, a.storage) == (
        b.num_bits,
        b.kind,
        b.strategy,
        b.group_size,
        b.symmetric,
        b.storage,
    )


def weight_bytes(source: ModelSource, scheme: str | None = None) -> WeightBytes:
    """The weights under `scheme` (None: the folder's own), exact whenever the tensors allow it.

    * the folder's own scheme (or one stored identically) with weights present: its tensors (exact);
    * another scheme on an unquantized folder with weights: that scheme applied to the real shapes;
    * otherwise: the tensors rebuilt from config.json (an estimate).
    """
    if scheme is not None and scheme not in SCHEME_FORMATS:
        raise PlanInputError(f"unknown scheme {scheme!r}; choose one of: {', '.join(SCHEME_FORMATS)}")
    own = source.quantization
    if scheme is None:
        scheme = source.scheme
        wanted = own or SCHEME_FORMATS[BASELINE_SCHEME]
        if source.has_weights:
            return WeightBytes(scheme, source.tensors, SOURCE_CHECKPOINT, own)
    else:
        wanted = SCHEME_FORMATS[scheme]
        if source.has_weights and own is not None and _same_storage(own, wanted):
            return WeightBytes(scheme, source.tensors, SOURCE_CHECKPOINT, own)
        if source.has_weights and own is None:
            marked = [(t, is_linear_tensor(t)) for t in source.tensors]
            return WeightBytes(
                scheme, tuple(apply_format(marked, wanted, source.ignore)), SOURCE_SHAPES, wanted
            )
    tensors = apply_format(
        source.architecture.tensors(), wanted, source.ignore, source.architecture.dense_dtype
    )
    return WeightBytes(scheme, tuple(tensors), SOURCE_CONFIG, wanted)
