"""Memory of one serving replica: weight bytes per scheme as compressed-tensors stores them, KV bytes
per token, and a vLLM-style budget (KV blocks, max concurrency, tensor-parallel degree).

Standard library only; `plan/checkpoint.py` reads the files.  Sources (facts "serving-planner"):

* **Weights** (compressed-tensors 0.19 as llmcompressor 0.14 writes it; checked against real outputs in
  tests/plan): every targeted Linear of shape (out, in) becomes
  - `pack-quantized` INT4/INT8 (W4A16, GPTQ_W4A16, AWQ_W4A16, W8A16): `weight_packed` int32
    (out, ⌈in/(32/bits)⌉), `weight_scale` (out, ⌈in/group⌉) in the model's dtype, `weight_shape` int64 [2];
    asymmetric (AWQ) adds `weight_zero_point` int32 packed along the output rows (⌈out/(32/bits)⌉, ⌈in/group⌉);
  - `int-quantized` INT8 (SMOOTHQUANT_GPTQ_W8A8): `weight` int8 (out, in) + per-channel `weight_scale` (out, 1);
  - `float-quantized` FP8 (FP8_DYNAMIC): `weight` float8_e4m3 (out, in) + `weight_scale` (out, 1)
    per channel, or [1] per tensor;
  and everything else — embeddings, `lm_head` (ignored by default), norms, biases — stays in the model's
  dtype; a tied `lm_head` is not stored at all.  A channel/tensor `weight_scale` is (out, 1)/[1]; a
  static activation scheme adds `input_scale` [1].
* **GPU bytes**: vLLM's `--dtype auto` serves a float32 checkpoint in 16 bits ("FP16 for FP32 and FP16
  models, BF16 for BF16 models", vLLM `ModelConfig`), so float32 tensors count 2 bytes on the GPU.
* **KV cache** per token = 2 · layers · kv_heads · head_dim · bytes (BF16 2, FP8 1); under tensor
  parallelism each GPU holds max(1, kv_heads // tp) heads (vLLM `get_num_kv_heads`).
* **Budget** (vLLM `gpu_worker.determine_available_memory`): KV memory = total × gpu_memory_utilization
  − (weights + activation peak of the profiling forward + non-torch memory such as NCCL/cuBLAS and CUDA
  graphs); blocks = KV memory // (block_size · KV bytes per token); max concurrency = blocks · block_size /
  max_model_len ("Maximum concurrency for N tokens per request"); the engine refuses to start when one
  max_model_len request does not fit (vLLM #2418).  The activation peak and the overhead are estimates
  (stated in `activation_peak_bytes` and `DEFAULT_OVERHEAD_BYTES`); weights and KV bytes are exact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from msquant_desktop.domain.gpu_catalog import GpuType
from msquant_desktop.domain.quantize import matches_ignore

BASELINE_SCHEME = "BF16"
"""The unquantized baseline: every tensor in 16 bits."""

PLAN_SCHEMES = (
    BASELINE_SCHEME,
    "FP8_DYNAMIC",
    "W8A16",
    "W4A16",
    "GPTQ_W4A16",
    "AWQ_W4A16",
    "SMOOTHQUANT_GPTQ_W8A8",
)
DEFAULT_IGNORE = ("lm_head",)  # the app's default (domain.quantize.QuantizeRequest.ignore)

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
TORCH_TO_SAFETENSORS = {
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
}
KV_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "auto": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}

GIB = 1024**3
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default
DEFAULT_BLOCK_SIZE = 16  # vLLM's default KV block (page) size on CUDA
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default max_num_seqs
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # tokens in vLLM's profiling forward (V1 default for the LLM class)
DEFAULT_OVERHEAD_BYTES = GIB  # non-torch memory + CUDA graphs on one GPU: an assumption, ~0.5-1.5 GiB seen
DEFAULT_OVERHEAD_BYTES_TP = int(1.5 * GIB)  # the same with NCCL buffers (tensor parallel > 1)
TP_DEGREES = (1, 2, 4, 8)


# ------------------------------------------------------------------------------------------------
# Tensors and storage formats
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One stored tensor: name, safetensors dtype code, shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_BYTES.get(self.dtype, 4)

    @property
    def gpu_nbytes(self) -> int:
        """Bytes once loaded by vLLM: float32/float64 tensors are served in 16 bits."""
        if self.dtype in ("F32", "F64"):
            return self.numel * 2
        return self.nbytes


@dataclass(frozen=True)
class WeightFormat:
    """How one scheme stores a targeted Linear (weights; activations only matter for `input_scale`)."""

    scheme: str
    num_bits: int | None  # None: unquantized (16-bit)
    kind: str = "int"  # "int" | "float"
    strategy: str = "channel"  # "channel" | "group" | "tensor"
    group_size: int | None = None
    symmetric: bool = True
    storage: str = "dense"  # "pack-quantized" | "int-quantized" | "float-quantized" | "dense"
    activations: str | None = None  # e.g. "int8 dynamic per token"
    static_input_scale: bool = False

    @property
    def quantized(self) -> bool:
        return self.num_bits is not None

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per weight of a large Linear, scales included (16-bit scales)."""
        if self.num_bits is None:
            return 16.0
        extra = 0.0
        if self.strategy == "group" and self.group_size:
            extra = 16.0 / self.group_size
            if not self.symmetric:
                extra += self.num_bits / self.group_size
        return self.num_bits + extra

    def linear_tensors(self, name: str, out: int, inp: int, dense_dtype: str) -> list[TensorSpec]:
        """The tensors this format writes for Linear `name` (without `.weight`) of shape (out, inp)."""
        if self.num_bits is None:
            return [TensorSpec(f"{name}.weight", dense_dtype, (out, inp))]
        if self.strategy == "group" and self.group_size:
            scale_shape: tuple[int, ...] = (out, -(-inp // self.group_size))
        elif self.strategy == "tensor":
            scale_shape = (1,)
        else:
            scale_shape = (out, 1)
        tensors: list[TensorSpec] = []
        if self.storage == "pack-quantized":
            per_int32 = 32 // self.num_bits
            tensors.append(TensorSpec(f"{name}.weight_packed", "I32", (out, -(-inp // per_int32))))
            tensors.append(TensorSpec(f"{name}.weight_scale", dense_dtype, scale_shape))
            tensors.append(TensorSpec(f"{name}.weight_shape", "I64", (2,)))
            if not self.symmetric:
                zp_rows = -(-scale_shape[0] // per_int32)
                tensors.append(TensorSpec(f"{name}.weight_zero_point", "I32", (zp_rows, *scale_shape[1:])))
        else:
            code = "F8_E4M3" if self.kind == "float" else "I8"
            tensors.append(TensorSpec(f"{name}.weight", code, (out, inp)))
            tensors.append(TensorSpec(f"{name}.weight_scale", dense_dtype, scale_shape))
            if not self.symmetric:
                tensors.append(
                    TensorSpec(f"{name}.weight_zero_point", "I8" if self.kind == "int" else code, scale_shape)
                )
        if self.static_input_scale:
            tensors.append(TensorSpec(f"{name}.input_scale", dense_dtype, (1,)))
        return tensors


SCHEME_FORMATS: dict[str, WeightFormat] = {
    BASELINE_SCHEME: WeightFormat(BASELINE_SCHEME, None),
    "FP8_DYNAMIC": WeightFormat(
        "FP8_DYNAMIC", 8, "float", "channel", None, True, "float-quantized", "fp8 dynamic per token"
    ),
    "W8A16": WeightFormat("W8A16", 8, "int", "group", 128, True, "pack-quantized"),
    "W4A16": WeightFormat("W4A16", 4, "int", "group", 128, True, "pack-quantized"),
    "GPTQ_W4A16": WeightFormat("GPTQ_W4A16", 4, "int", "group", 128, True, "pack-quantized"),
    "AWQ_W4A16": WeightFormat("AWQ_W4A16", 4, "int", "group", 128, False, "pack-quantized"),
    "SMOOTHQUANT_GPTQ_W8A8": WeightFormat(
        "SMOOTHQUANT_GPTQ_W8A8", 8, "int", "channel", None, True, "int-quantized", "int8 dynamic per token"
    ),
}


def format_from_quantization_config(qc: dict[str, Any], recipe_text: str = "") -> WeightFormat | None:
    """The storage format a folder's `quantization_config` describes (compressed-tensors), or None.

    The scheme id is inferred from the format (what matters for bytes) and refined by the folder's
    `recipe.yaml` when one is given: GPTQ and W4A16 store the same tensors, only the recipe tells them
    apart.
    """
    if qc.get("quant_method") != "compressed-tensors":
        return None
    groups = qc.get("config_groups") or {}
    if not isinstance(groups, dict) or not groups:
        return None
    group = next(iter(groups.values()))
    if not isinstance(group, dict):
        return None
    weights = group.get("weights") or {}
    acts = group.get("input_activations") or None
    storage = str(group.get("format") or qc.get("format") or "")
    bits = int(weights.get("num_bits") or 16)
    kind = str(weights.get("type") or "int")
    strategy = str(weights.get("strategy") or "channel")
    group_size = weights.get("group_size")
    symmetric = bool(weights.get("symmetric", True))
    static = bool(acts) and isinstance(acts, dict) and not acts.get("dynamic", False)
    act_text = None
    if isinstance(acts, dict):
        act_text = f"{acts.get('type', 'int')}{acts.get('num_bits', '')} " + (
            "dynamic" if acts.get("dynamic") else "static"
        )
        if acts.get("strategy"):
            act_text += f" per {acts['strategy']}"
    if kind == "float" and bits == 8:
        scheme = "FP8_DYNAMIC" if acts and not static else "FP8"
    elif bits == 4:
        scheme = "W4A16" if symmetric else "AWQ_W4A16"
        if symmetric and "GPTQModifier" in recipe_text:
            scheme = "GPTQ_W4A16"
    elif bits == 8 and acts:
        scheme = "SMOOTHQUANT_GPTQ_W8A8" if "SmoothQuant" in recipe_text or not recipe_text else "W8A8"
    elif bits == 8:
        scheme = "W8A16"
    else:
        scheme = f"W{bits}"
    return WeightFormat(
        scheme,
        bits,
        kind,
        strategy,
        int(group_size) if group_size else None,
        symmetric,
        storage or ("float-quantized" if kind == "float" else "pack-quantized"),
        act_text,
        static,
    )


def ignore_list(qc: dict[str, Any] | None) -> tuple[str, ...]:
    if qc and isinstance(qc.get("ignore"), list):
        return tuple(str(x) for x in qc["ignore"])
    return DEFAULT_IGNORE


# ------------------------------------------------------------------------------------------------
# Architecture (from config.json) and its tensors
# ------------------------------------------------------------------------------------------------


def _int(config: dict[str, Any], *keys: str, default: int = 0) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
            return int(value)
    return default


@dataclass(frozen=True)
class Architecture:
    """What sizes a decoder-only transformer, read from its config.json."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    dense_dtype: str = "BF16"
    max_position_embeddings: int = 0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Architecture:
        text = config.get("text_config")
        if isinstance(text, dict) and not config.get("hidden_size"):
            config = {**config, **text}  # multimodal wrappers keep the language model here
        hidden = _int(config, "hidden_size", "n_embd", "d_model")
        heads = _int(config, "num_attention_heads", "n_head", default=1)
        model_type = str(config.get("model_type", ""))
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
        if hidden <= 0:
            raise ValueError("config.json has no hidden_size: not a decoder-only transformer config")
        return cls(
            model_type=model_type,
            hidden_size=hidden,
            num_layers=_int(config, "num_hidden_layers", "n_layer", "num_layers"),
            num_heads=heads,
            num_kv_heads=_int(config, "num_key_value_heads", default=heads),
            head_dim=_int(config, "head_dim", default=hidden // heads),
            intermediate_size=_int(config, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
            vocab_size=_int(config, "vocab_size"),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", model_type == "qwen2")),
            mlp_bias=bool(config.get("mlp_bias", False)),
            qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3", "olmo2"),
            num_experts=_int(config, "num_local_experts", "num_experts", "n_routed_experts"),
            experts_per_token=_int(config, "num_experts_per_tok", "num_experts_per_token"),
            moe_intermediate_size=_int(config, "moe_intermediate_size", "intermediate_size"),
            shared_expert_intermediate_size=_int(config, "shared_expert_intermediate_size"),
            dense_dtype=TORCH_TO_SAFETENSORS.get(dtype, "BF16"),
            max_position_embeddings=_int(config, "max_position_embeddings", "n_positions", "max_seq_len"),
        )

    def kv_bytes_per_token(self, kv_dtype: str = "bf16", tensor_parallel: int = 1) -> int:
        """2 · layers · kv_heads · head_dim · bytes — per GPU when `tensor_parallel` > 1."""
        width = KV_DTYPE_BYTES.get(kv_dtype.lower())
        if width is None:
            raise ValueError(f"unknown KV cache dtype {kv_dtype!r}; choose bf16 or fp8")
        heads = max(1, self.num_kv_heads // tensor_parallel)
        return 2 * self.num_layers * heads * self.head_dim * width

    def tensors(self) -> list[tuple[TensorSpec, bool]]:
        """The unquantized model's tensors (Llama-style names), each with "is a Linear"."""
        d = self.dense_dtype
        h = self.hidden_size
        q_out = self.num_heads * self.head_dim
        kv_out = self.num_kv_heads * self.head_dim
        out: list[tuple[TensorSpec, bool]] = [
            (TensorSpec("model.embed_tokens.weight", d, (self.vocab_size, h)), False)
        ]
        for i in range(self.num_layers):
            p = f"model.layers.{i}"
            for proj, rows, cols in (
                ("q_proj", q_out, h),
                ("k_proj", kv_out, h),
                ("v_proj", kv_out, h),
                ("o_proj", h, q_out),
            ):
                out.append((TensorSpec(f"{p}.self_attn.{proj}.weight", d, (rows, cols)), True))
                if self.attention_bias and proj != "o_proj":
                    out.append((TensorSpec(f"{p}.self_attn.{proj}.bias", d, (rows,)), False))
            if self.qk_norm:
                out.append((TensorSpec(f"{p}.self_attn.q_norm.weight", d, (self.head_dim,)), False))
                out.append((TensorSpec(f"{p}.self_attn.k_norm.weight", d, (self.head_dim,)), False))
            out.extend(self._mlp_tensors(p))
            out.append((TensorSpec(f"{p}.input_layernorm.weight", d, (h,)), False))
            out.append((TensorSpec(f"{p}.post_attention_layernorm.weight", d, (h,)), False))
        out.append((TensorSpec("model.norm.weight", d, (h,)), False))
        if not self.tie_word_embeddings:
            out.append((TensorSpec("lm_head.weight", d, (self.vocab_size, h)), True))
        return out

    def _mlp_tensors(self, prefix: str) -> list[tuple[TensorSpec, bool]]:
        d = self.dense_dtype
        h = self.hidden_size

        def mlp(name: str, inter: int) -> list[tuple[TensorSpec, bool]]:
            rows = [
                (TensorSpec(f"{name}.gate_proj.weight", d, (inter, h)), True),
                (TensorSpec(f"{name}.up_proj.weight", d, (inter, h)), True),
                (TensorSpec(f"{name}.down_proj.weight", d, (h, inter)), True),
            ]
            if self.mlp_bias:
                rows += [
                    (TensorSpec(f"{name}.gate_proj.bias", d, (inter,)), False),
                    (TensorSpec(f"{name}.up_proj.bias", d, (inter,)), False),
                    (TensorSpec(f"{name}.down_proj.bias", d, (h,)), False),
                ]
            return rows

        if self.num_experts <= 0:
            return mlp(f"{prefix}.mlp", self.intermediate_size)
        rows = [(TensorSpec(f"{prefix}.mlp.gate.weight", d, (self.num_experts, h)), True)]
        for e in range(self.num_experts):
            rows += mlp(f"{prefix}.mlp.experts.{e}", self.moe_intermediate_size)
        if self.shared_expert_intermediate_size:
            rows += mlp(f"{prefix}.mlp.shared_expert", self.shared_expert_intermediate_size)
            rows.append((TensorSpec(f"{prefix}.mlp.shared_expert_gate.weight", d, (1, h)), True))
        return rows


# ------------------------------------------------------------------------------------------------
# Weight bytes
# ------------------------------------------------------------------------------------------------

SOURCE_CHECKPOINT = "checkpoint"  # the folder's own tensors, bytes read from the safetensors headers
SOURCE_SHAPES = "tensor shapes"  # another scheme applied to the folder's real tensor shapes
SOURCE_CONFIG = "config estimate"  # tensors rebuilt from config.json (no weights, or another scheme)


@dataclass(frozen=True)
class WeightBytes:
    """The weights of one model under one scheme."""

    scheme: str
    tensors: tuple[TensorSpec, ...]
    source: str
    format: WeightFormat | None = None

    @property
    def exact(self) -> bool:
        """True when the tensors are the checkpoint's own or built on its real shapes."""
        return self.source != SOURCE_CONFIG

    @cached_property
    def _totals(self) -> tuple[int, int, dict[int, int], int]:
        """One pass: (stored bytes, GPU bytes, {GPU bytes of a matrix: how many}, GPU bytes of all
        vectors) — what tensor parallelism splits and what it replicates (few distinct matrix sizes)."""
        stored = gpu = vectors = 0
        matrices: dict[int, int] = {}
        widths = DTYPE_BYTES
        for t in self.tensors:
            numel = math.prod(t.shape) if t.shape else 1
            width = widths.get(t.dtype, 4)
            stored += numel * width
            on_gpu = numel * (2 if t.dtype in ("F32", "F64") else width)
            gpu += on_gpu
            if len(t.shape) >= 2:
                matrices[on_gpu] = matrices.get(on_gpu, 0) + 1
            else:
                vectors += on_gpu
        return stored, gpu, matrices, vectors

    @property
    def stored_bytes(self) -> int:
        return self._totals[0]

    @property
    def gpu_bytes(self) -> int:
        return self._totals[1]

    def gpu_bytes_per_gpu(self, tensor_parallel: int) -> int:
        """Per GPU under tensor parallelism: matrices are split, vectors (norms, shapes) replicated."""
        if tensor_parallel <= 1:
            return self.gpu_bytes
        _, _, matrices, vectors = self._totals
        return sum(count * -(-size // tensor_parallel) for size, count in matrices.items()) + vectors


def apply_format(
    tensors: Iterable[tuple[TensorSpec, bool]],
    fmt: WeightFormat,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    dense_dtype: str | None = None,
) -> list[TensorSpec]:
    """What `fmt` writes for an unquantized model's tensors: targeted Linears converted, the rest kept.

    For the 16-bit baseline every float tensor is stored in BF16.
    """
    out: list[TensorSpec] = []
    for spec, is_linear in tensors:
        base = spec.name[: -len(".weight")] if spec.name.endswith(".weight") else spec.name
        keep_dtype = spec.dtype
        if fmt.num_bits is None:
            keep_dtype = "BF16" if spec.dtype in FLOAT_DTYPES else spec.dtype
            out.append(TensorSpec(spec.name, keep_dtype, spec.shape))
            continue
        if is_linear and len(spec.shape) == 2 and not any(matches_ignore(base, p) for p in ignore):
            out.extend(fmt.linear_tensors(base, spec.shape[0], spec.shape[1], dense_dtype or spec.dtype))
        else:
            out.append(spec)
    return out


LINEAR_NAME = re.compile(r"\.layers\.\d+\..*\.weight$")


def is_linear_tensor(spec: TensorSpec) -> bool:
    """A 2-D `.weight` inside the decoder layers of an unquantized checkpoint is a Linear."""
    return len(spec.shape) == 2 and LINEAR_NAME.search(spec.name) is not None or spec.name == "lm_head.weight"


# ------------------------------------------------------------------------------------------------
# The vLLM-style budget
# ------------------------------------------------------------------------------------------------


def activation_peak_bytes(
    arch: Architecture,
    tensor_parallel: int = 1,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
) -> int:
    """Estimate of the profiling forward's activation peak (what vLLM measures, we cannot).

    The largest live set of a decoder layer on `max_num_batched_tokens` tokens — the fused gate/up
    output (2·intermediate/tp) plus ~4 hidden-sized buffers (residual, normed input, attention output,
    MLP output), 16-bit — plus float32 logits for `max_num_seqs` sampled rows.  An estimate: vLLM's
    logs show the measured figure ("torch peak memory increase"), which can replace it.
    """
    inter = arch.intermediate_size
    if arch.num_experts > 0:
        inter = max(
            arch.moe_intermediate_size * max(arch.experts_per_token, 1), arch.shared_expert_intermediate_size
        )
    per_token = (2 * inter // max(tensor_parallel, 1) + 4 * arch.hidden_size) * 2
    logits = min(max_num_seqs, max_num_batched_tokens) * arch.vocab_size * 4
    return max_num_batched_tokens * per_token + logits


@dataclass(frozen=True)
class ReplicaMemory:
    """One replica (tensor_parallel GPUs of one type) under vLLM's accounting, per GPU."""

    gpu: GpuType
    tensor_parallel: int
    context_length: int
    weights_bytes_per_gpu: int
    activation_peak_bytes: int
    overhead_bytes: int
    kv_bytes_per_token_per_gpu: int
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    block_size: int = DEFAULT_BLOCK_SIZE

    @property
    def budget_bytes(self) -> int:
        return int(self.gpu.memory_bytes * self.gpu_memory_utilization)

    @property
    def kv_cache_bytes(self) -> int:
        return (
            self.budget_bytes - self.weights_bytes_per_gpu - self.activation_peak_bytes - self.overhead_bytes
        )

    @property
    def block_bytes(self) -> int:
        return self.block_size * self.kv_bytes_per_token_per_gpu

    @property
    def num_blocks(self) -> int:
        return max(0, self.kv_cache_bytes // self.block_bytes) if self.block_bytes else 0

    @property
    def kv_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def blocks_per_request(self) -> int:
        return -(-self.context_length // self.block_size)

    @property
    def max_concurrency(self) -> float:
        """vLLM's "Maximum concurrency for N tokens per request": KV tokens / N."""
        return self.kv_tokens / self.context_length if self.context_length else 0.0

    @property
    def max_sequences(self) -> int:
        """Whole sequences of `context_length` tokens that fit at once (blocks are per request)."""
        return self.num_blocks // self.blocks_per_request if self.blocks_per_request else 0

    @property
    def fits(self) -> bool:
        return self.max_sequences >= 1

    def problem(self) -> str | None:
        if self.kv_cache_bytes <= 0:
            return (
                f"the weights ({self.weights_bytes_per_gpu / GIB:.1f} GiB per GPU) and the activation "
                f"peak leave no KV cache in {self.gpu_memory_utilization:g} × "
                f"{self.gpu.memory_bytes / GIB:.1f} GiB of a {self.gpu.name}"
            )
        if not self.fits:
            return (
                f"the model's max seq len ({self.context_length}) is larger than the maximum number of "
                f"tokens that can be stored in KV cache ({self.kv_tokens}): vLLM refuses to start "
                "(raise gpu_memory_utilization, shorten the context or add GPUs)"
            )
        return None


def replica_memory(
    weights: WeightBytes,
    arch: Architecture,
    gpu: GpuType,
    context_length: int,
    kv_dtype: str = "bf16",
    tensor_parallel: int | None = None,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    overhead_bytes: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> ReplicaMemory:
    """The budget at `tensor_parallel` GPUs, or at the smallest of 1, 2, 4, 8 that fits (None).

    A degree must divide the attention heads (vLLM's rule); when none fits, the largest is returned
    and its `problem()` says why.
    """
    if context_length < 1:
        raise ValueError("the context length must be ≥ 1 token")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError("gpu_memory_utilization must be in (0, 1]")

    def at(tp: int) -> ReplicaMemory:
        overhead = overhead_bytes
        if overhead is None:
            overhead = DEFAULT_OVERHEAD_BYTES if tp == 1 else DEFAULT_OVERHEAD_BYTES_TP
        return ReplicaMemory(
            gpu=gpu,
            tensor_parallel=tp,
            context_length=context_length,
            weights_bytes_per_gpu=weights.gpu_bytes_per_gpu(tp),
            activation_peak_bytes=activation_peak_bytes(arch, tp, max_num_batched_tokens, max_num_seqs),
            overhead_bytes=overhead,
            kv_bytes_per_token_per_gpu=arch.kv_bytes_per_token(kv_dtype, tp),
            gpu_memory_utilization=gpu_memory_utilization,
            block_size=block_size,
        )

    if tensor_parallel is not None:
        if tensor_parallel < 1:
            raise ValueError("the tensor-parallel degree must be ≥ 1")
        return at(tensor_parallel)
    candidates = [tp for tp in TP_DEGREES if arch.num_heads % tp == 0] or [1]
    last = at(candidates[0])
    for tp in candidates:
        last = at(tp)
        if last.fits:
            return last
    return last
