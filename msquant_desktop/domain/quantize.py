"""Quantization: the schemes we offer, the events a worker prints, and pure input checks.

Standard library only.  The worker (quantize/worker_*.py) turns a `QuantizeRequest` into an
llmcompressor recipe; the form and the CLI validate the same request with `request_problems()`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from msquant_desktop.domain.markers import EVENT_PREFIX

RECIPE_SCHEME = "RECIPE"
"""The scheme id for a user-supplied recipe YAML file."""


@dataclass(frozen=True)
class SchemeInfo:
    """One quantization scheme as the form and the worker know it."""

    id: str
    title: str
    description: str
    needs_data: bool
    group_size: int | None = None  # weight group size whose divisibility we check before launch
    default_samples: int = 0
    default_seq_len: int = 0


SCHEMES: tuple[SchemeInfo, ...] = (
    SchemeInfo(
        "FP8_DYNAMIC",
        "FP8 dynamic (W8A8 FP8)",
        "FP8 weights, dynamic per-token FP8 activations. Data-free, fast; best on Hopper/Ada GPUs.",
        needs_data=False,
    ),
    SchemeInfo(
        "W8A16",
        "W8A16 (round-to-nearest)",
        "INT8 weights, 16-bit activations, no calibration. Data-free.",
        needs_data=False,
    ),
    SchemeInfo(
        "W4A16",
        "W4A16 (round-to-nearest)",
        "INT4 weights in groups of 128, 16-bit activations, no calibration. Data-free.",
        needs_data=False,
        group_size=128,
    ),
    SchemeInfo(
        "GPTQ_W4A16",
        "GPTQ W4A16",
        "INT4 weights (groups of 128) chosen by GPTQ on calibration data: better accuracy than RTN.",
        needs_data=True,
        group_size=128,
        default_samples=64,
        default_seq_len=512,
    ),
    SchemeInfo(
        "SMOOTHQUANT_GPTQ_W8A8",
        "SmoothQuant + GPTQ W8A8",
        "INT8 weights and activations: SmoothQuant moves outliers into weights, then GPTQ. Needs data.",
        needs_data=True,
        default_samples=64,
        default_seq_len=512,
    ),
    SchemeInfo(
        "AWQ_W4A16",
        "AWQ W4A16 (asymmetric)",
        "Activation-aware INT4 weights (groups of 128). Needs data; slow on CPU.",
        needs_data=True,
        group_size=128,
        default_samples=64,
        default_seq_len=512,
    ),
    SchemeInfo(
        RECIPE_SCHEME,
        "Recipe file (YAML)",
        "Your own llmcompressor recipe. Give a dataset when its modifiers calibrate (GPTQ, AWQ, ...).",
        needs_data=False,
    ),
)
SCHEMES_BY_ID: dict[str, SchemeInfo] = {s.id: s for s in SCHEMES}

# Architectures llmcompressor's sequential pipeline handles as plain decoder-only causal LMs.
SUPPORTED_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
        "Qwen2MoeForCausalLM",
        "MixtralForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "Phi3ForCausalLM",
        "PhiForCausalLM",
        "GPT2LMHeadModel",
        "GPTNeoXForCausalLM",
        "OPTForCausalLM",
        "FalconForCausalLM",
        "GraniteForCausalLM",
        "OlmoForCausalLM",
        "Olmo2ForCausalLM",
        "StableLmForCausalLM",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "CohereForCausalLM",
        "InternLM2ForCausalLM",
    }
)

_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
HUB_NAME_RE = re.compile(rf"(?!.*(?:--|\.\.)){_HUB_PART}/{_HUB_PART}", re.ASCII)
"""`org/name` as the Hugging Face hub allows it (huggingface_hub's `validate_repo_id`): ASCII letters,
digits, `-`, `_` and `.`, one slash, at most 96 characters a part, no `--` or `..` (`--` joins the
parts in the cache's folder names), neither part starting or ending with `-` or `.`.  Use fullmatch."""

HUB_REVISION_RE = re.compile(r"(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}", re.ASCII)
"""A branch, tag or commit hash after `@` in `org/name@revision` (no slash, no `..`)."""


@dataclass(frozen=True)
class HubModel:
    """A model named by its Hugging Face repo id, optionally at a revision (else `main`)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def parse_hub_model(text: str) -> HubModel | None:
    """`org/name` or `org/name@revision` as a HubModel; None for anything else (a path, shell
    metacharacters, whitespace, a newline)."""
    repo_id, at, revision = text.partition("@")
    if HUB_NAME_RE.fullmatch(repo_id) is None:
        return None
    if at and HUB_REVISION_RE.fullmatch(revision) is None:
        return None
    return HubModel(repo_id, revision or None)


DATASET_SUFFIXES = (".jsonl", ".json", ".txt")


@dataclass(frozen=True)
class QuantizeRequest:
    """Everything one quantization run needs.  Paths are plain strings (may hold `{run_dir}`)."""

    model: str
    scheme: str
    out: str
    dataset: str | None = None
    samples: int = 64
    seq_len: int = 512
    ignore: tuple[str, ...] = ("lm_head",)
    recipe: str | None = None

    def to_meta(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scheme": self.scheme,
            "out": self.out,
            "dataset": self.dataset,
            "samples": self.samples,
            "seq_len": self.seq_len,
            "ignore": list(self.ignore),
            "recipe": self.recipe,
        }

    def to_args(self) -> list[str]:
        """The `quantize` subcommand's arguments for this request."""
        args = ["--model", self.model, "--scheme", self.scheme, "--out", self.out]
        if self.dataset:
            args += ["--dataset", self.dataset]
        args += ["--samples", str(self.samples), "--seq-len", str(self.seq_len)]
        args += ["--ignore", *self.ignore] if self.ignore else ["--ignore"]
        if self.recipe:
            args += ["--recipe", self.recipe]
        return args


def looks_like_hub_name(text: str, exists: bool) -> bool:
    """True for `org/name` strings that are not local paths: we never download at run time."""
    return not exists and HUB_NAME_RE.fullmatch(text) is not None


def matches_ignore(name: str, pattern: str) -> bool:
    """llmcompressor's ignore rule: `re:REGEX` matches by regex, anything else by name or suffix."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    return name == pattern or name.endswith("." + pattern)


def request_problems(request: QuantizeRequest) -> list[str]:
    """Problems with a request that need no file system: scheme known, data present, numbers sane."""
    problems: list[str] = []
    scheme = SCHEMES_BY_ID.get(request.scheme)
    if scheme is None:
        problems.append(
            f"unknown scheme {request.scheme!r}; choose one of: " + ", ".join(s.id for s in SCHEMES)
        )
        return problems
    if scheme.needs_data and not request.dataset:
        problems.append(
            f"{scheme.title} calibrates on data: choose a calibration dataset "
            "(a local .jsonl, .json or .txt file, or a folder of them)"
        )
    if scheme.id == RECIPE_SCHEME and not request.recipe:
        problems.append("the recipe scheme needs a recipe file (--recipe FILE.yaml)")
    if request.samples < 1:
        problems.append("the number of calibration samples must be at least 1")
    if request.seq_len < 8:
        problems.append("the calibration sequence length must be at least 8 tokens")
    if not request.out:
        problems.append("choose an output folder")
    return problems


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------


def format_event(event: dict[str, Any]) -> str:
    """One stdout line carrying `event`."""
    return EVENT_PREFIX + json.dumps(event, separators=(",", ":"), default=str)


def parse_event(line: str) -> dict[str, Any] | None:
    """The event on a stdout line, or None when the line is an ordinary log line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        value = json.loads(line[len(EVENT_PREFIX) :])
    except ValueError:
        return None
    return value if isinstance(value, dict) and "type" in value else None


@dataclass(frozen=True)
class QuantizeResult:
    """The final `result` event of a quantization, as the Results view shows it."""

    output: str
    scheme: str
    model: str
    size_before: int
    size_after: int
    duration_s: float
    peak_rss_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def compression_ratio(self) -> float:
        return self.size_before / self.size_after if self.size_after else 0.0

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> QuantizeResult | None:
        """The result carried by a `result` event of a quantization; None for anything else."""
        if event.get("type") != "result" or event.get("kind") != "quantize":
            return None
        try:
            return cls(
                output=str(event["output"]),
                scheme=str(event["scheme"]),
                model=str(event.get("model", "")),
                size_before=int(event["size_before"]),
                size_after=int(event["size_after"]),
                duration_s=float(event["duration_s"]),
                peak_rss_bytes=int(event.get("peak_rss_bytes", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_count(n: int) -> str:
    """4_200_000 -> '4.2 M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def explain_worker_exit(returncode: int | None, cancelled: bool) -> str | None:
    """A better reason for how a quantization worker ended; None keeps the engine's generic one."""
    if returncode == -9 and not cancelled:
        return (
            "killed by SIGKILL without a cancel: probably the OOM killer (the machine ran out of memory). "
            "Use fewer calibration samples, a shorter sequence length, or a machine with more RAM"
        )
    if returncode == 2:
        return "refused before starting: the inputs have problems (see the errors in the log)"
    return None


def default_output_name(model: str, scheme_id: str) -> str:
    """`TinyLlama-1.1B-w4a16`: the model folder's name and the scheme, safe as a folder name."""
    import re

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/").rsplit("/", 1)[-1]).strip("-.") or "model"
    return f"{base}-{scheme_id.lower().replace('_', '-')}"
