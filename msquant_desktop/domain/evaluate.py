"""Evaluation of a (quantized) model: the perplexity windows, the speed runs, the result's shape and how
an evaluation job is linked to the quantization it evaluates.  Standard library only.

Perplexity follows the GPTQ paper's reference evaluation (`datautils.py` + `opt_eval` of
IST-DASLab/gptq): the texts are joined with "\\n\\n" and tokenized once, the token stream is cut into
non-overlapping windows of `seq_len` tokens (the last, partial window is dropped), each window is scored
on its own (no context carried over), and perplexity = exp(mean negative log-likelihood over every
predicted token).  A window of `seq_len` tokens predicts `seq_len - 1` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EVALUATE_KIND = "evaluate"
"""The `kind` of an evaluation's result event."""
EVALUATES_META_KEY = "evaluates"
"""An evaluation job's `meta` key holding the id of the quantize job whose output it evaluates."""

TEXT_JOINER = "\n\n"
DEFAULT_SEQ_LEN = 512
MIN_SEQ_LEN = 8

# The speed runs: fixed, stated lengths so figures of different schemes and machines compare.
SPEED_PROMPT_TOKENS = 128
SPEED_NEW_TOKENS = 32
SPEED_BATCHES = (1, 8)

REQUIRED_RESULT_KEYS: tuple[str, ...] = (
    "perplexity",
    "original_perplexity",
    "tokens_evaluated",
    "top1_agreement",
    "kl_divergence",
    "load_s",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "decode_tokens_per_s_batch8",
    "peak_memory_mib",
    "device",
    "seq_len",
)
"""Keys every evaluation result carries (a value may be None: no original, speed runs skipped)."""


class EvaluationInputError(ValueError):
    """An evaluation that cannot run as asked; the message names the problem and what to do."""


@dataclass(frozen=True)
class EvaluateRequest:
    """One evaluation.  `texts` empty: the model's own held-out split (the demo model ships one)."""

    model: str
    original: str | None = None
    texts: tuple[str, ...] = ()
    seq_len: int = DEFAULT_SEQ_LEN
    max_windows: int | None = None
    speed: bool = True
    device: str = "auto"

    def to_args(self) -> list[str]:
        """The `evaluate` subcommand's arguments for this request."""
        args = ["--model", self.model]
        if self.original:
            args += ["--original", self.original]
        for text in self.texts:
            args += ["--text", text]
        args += ["--seq-len", str(self.seq_len)]
        if self.max_windows is not None:
            args += ["--max-windows", str(self.max_windows)]
        if not self.speed:
            args.append("--no-speed")
        if self.device != "auto":
            args += ["--device", self.device]
        return args

    def to_meta(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "original": self.original,
            "texts": list(self.texts),
            "seq_len": self.seq_len,
            "max_windows": self.max_windows,
            "speed": self.speed,
            "device": self.device,
        }


def evaluation_meta(quantize_job_id: int | None, request: EvaluateRequest) -> dict[str, Any]:
    """The `meta` of an evaluation job; with a quantize job id it shows on that job's result row."""
    meta: dict[str, Any] = {"evaluate": request.to_meta()}
    if quantize_job_id is not None:
        meta[EVALUATES_META_KEY] = int(quantize_job_id)
    return meta


def evaluation_target(meta: dict[str, Any]) -> int | None:
    """The quantize job an evaluation job's meta points at (None: a free-standing evaluation)."""
    value = meta.get(EVALUATES_META_KEY)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def request_problems(request: EvaluateRequest) -> list[str]:
    """Problems that need no file system: numbers in range."""
    problems = []
    if request.seq_len < MIN_SEQ_LEN:
        problems.append(f"--seq-len must be at least {MIN_SEQ_LEN} tokens (got {request.seq_len})")
    if request.max_windows is not None and request.max_windows < 1:
        problems.append(f"--max-windows must be at least 1 (got {request.max_windows})")
    if request.device not in ("auto", "cpu", "cuda"):
        problems.append(f"--device must be auto, cpu or cuda (got {request.device!r})")
    return problems


def perplexity_windows(
    token_count: int, seq_len: int, max_windows: int | None = None
) -> list[tuple[int, int]]:
    """[start, end) of each non-overlapping window of exactly `seq_len` tokens, the partial tail dropped;
    the first `max_windows` only when given.  Raises EvaluationInputError when not even one fits."""
    if seq_len < 2:
        raise EvaluationInputError(f"a window needs at least 2 tokens (got seq_len {seq_len})")
    count = token_count // seq_len
    if count == 0:
        raise EvaluationInputError(
            f"the evaluation text is {token_count} tokens long, shorter than one window of {seq_len} "
            "tokens: give more text or a smaller --seq-len"
        )
    if max_windows is not None:
        count = min(count, max_windows)
    return [(i * seq_len, (i + 1) * seq_len) for i in range(count)]


def predicted_tokens(windows: list[tuple[int, int]]) -> int:
    """Tokens whose likelihood is scored: each window predicts all its tokens but the first."""
    return sum(end - start - 1 for start, end in windows)


def perplexity_from_nll(total_nll: float, tokens: int) -> float:
    """exp(mean NLL); `total_nll` in nats summed over `tokens` predicted tokens."""
    if tokens <= 0:
        raise ValueError("no predicted tokens")
    return math.exp(total_nll / tokens)


def uniform_perplexity(vocab_size: int) -> float:
    """The perplexity of a model that knows nothing: every token equally likely."""
    return float(vocab_size)


def perplexity_delta(result: dict[str, Any]) -> float | None:
    """perplexity - original_perplexity, or None without an original."""
    ppl, original = result.get("perplexity"), result.get("original_perplexity")
    if isinstance(ppl, int | float) and isinstance(original, int | float):
        return float(ppl) - float(original)
    return None


def result_problems(event: dict[str, Any]) -> list[str]:
    """What is wrong with an evaluation result event (empty when it has the shape the views rely on)."""
    problems = []
    if event.get("type") != "result" or event.get("kind") != EVALUATE_KIND:
        problems.append("not an evaluation result event")
    for key in REQUIRED_RESULT_KEYS:
        if key not in event:
            problems.append(f"missing key {key!r}")
    ppl = event.get("perplexity")
    if not isinstance(ppl, int | float) or not math.isfinite(ppl) or ppl < 1.0:
        problems.append(f"perplexity must be a finite number >= 1 (got {ppl!r})")
    tokens = event.get("tokens_evaluated")
    if not isinstance(tokens, int) or tokens < 1:
        problems.append(f"tokens_evaluated must be a positive integer (got {tokens!r})")
    agreement = event.get("top1_agreement")
    if agreement is not None and not (isinstance(agreement, int | float) and 0.0 <= agreement <= 1.0):
        problems.append(f"top1_agreement must be within [0, 1] (got {agreement!r})")
    kl = event.get("kl_divergence")
    if kl is not None and not (isinstance(kl, int | float) and kl >= -1e-6):
        problems.append(f"kl_divergence must be >= 0 (got {kl!r})")
    return problems


def is_evaluation_result(event: dict[str, Any]) -> bool:
    return not result_problems(event)


def describe_result(result: dict[str, Any]) -> str:
    """One line for a terminal: perplexity (and vs the original), agreement, speed, memory."""
    parts = [f"perplexity {result['perplexity']:.4f} on {result['tokens_evaluated']} tokens"]
    if result.get("original_perplexity") is not None:
        delta = perplexity_delta(result) or 0.0
        parts.append(f"original {result['original_perplexity']:.4f} (Δ {delta:+.4f})")
        parts.append(f"top-1 agreement {result['top1_agreement']:.1%}")
        parts.append(f"KL {result['kl_divergence']:.5f}")
    if result.get("decode_tokens_per_s") is not None:
        parts.append(
            f"decode {result['decode_tokens_per_s']:.1f} tok/s (batch 8: "
            f"{result['decode_tokens_per_s_batch8']:.1f}), prefill {result['prefill_tokens_per_s']:.0f} tok/s"
        )
    if result.get("peak_memory_mib") is not None:
        parts.append(f"peak {result['peak_memory_mib']:.0f} MiB on {result['device']}")
    return "; ".join(parts)
