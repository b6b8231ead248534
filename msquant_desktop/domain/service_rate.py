"""How fast one replica decodes: ITL(n) = α + β·n seconds per step at batch n, with where it came from.

Standard library only.  Three sources, each labelled:

* **measured**: Evaluate's `decode_tokens_per_s` (batch 1) and `decode_tokens_per_s_batch8` (all 8
  sequences together, tokens/s) give ITL(1) = 1/tps₁ and ITL(8) = 8/tps₈, hence β = (ITL(8) − ITL(1))/7
  and α = ITL(1) − β (a negative β — batch 8 no slower per step — is clamped to 0 and said so);
* **entered**: α and β by hand, or a tokens/s at batch 1 (β = 0);
* **roofline**: an upper bound on speed from memory bandwidth (a decode step reads every weight once
  and each sequence's KV cache): α = weight bytes per GPU / bandwidth, β = KV bytes per sequence per
  GPU / bandwidth (facts "serving-planner": tokens/s ≤ HBM bandwidth / bytes read per step).  Real
  engines reach some fraction of it; `efficiency` scales the bandwidth when a measured fraction is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msquant_desktop.domain.batching import BatchingReplica

SOURCE_MEASURED = "measured"
SOURCE_ENTERED = "entered"
SOURCE_ROOFLINE = "roofline upper bound"

EVALUATE_BATCH1_KEY = "decode_tokens_per_s"
EVALUATE_BATCH8_KEY = "decode_tokens_per_s_batch8"


@dataclass(frozen=True)
class DecodeSpeed:
    """ITL(n) = alpha_s + beta_s·n, and where the two numbers came from."""

    alpha_s: float
    beta_s: float
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.alpha_s < 0 or self.beta_s < 0 or self.alpha_s + self.beta_s <= 0:
            raise ValueError("a decode speed needs α ≥ 0, β ≥ 0 and α + β > 0")

    def step_time(self, batch: int) -> float:
        return self.alpha_s + self.beta_s * batch

    def tokens_per_s(self, batch: int = 1) -> float:
        """Tokens per second of the whole batch."""
        return batch / self.step_time(batch)

    def service_rate(self, output_tokens: float, batch: int = 1) -> float:
        """Requests per second one replica completes while `batch` requests decode at once."""
        return batch / (output_tokens * self.step_time(batch))

    def replica(
        self, output_tokens: float, max_batch: int, kv_max_sequences: int | None = None
    ) -> BatchingReplica:
        return BatchingReplica(self.alpha_s, self.beta_s, output_tokens, max_batch, kv_max_sequences)

    def describe(self) -> str:
        text = f"{self.source}: ITL(n) = {self.alpha_s * 1e3:.3g} ms + {self.beta_s * 1e3:.3g} ms·n"
        return f"{text} ({self.note})" if self.note else text


def fit_measured(tokens_per_s_batch1: float, tokens_per_s_batch8: float) -> DecodeSpeed:
    """α and β from decode speeds at batch 1 and 8 (batch 8: tokens/s of all 8 together)."""
    if tokens_per_s_batch1 <= 0 or tokens_per_s_batch8 <= 0:
        raise ValueError("decode speeds must be > 0 tokens/s")
    itl1 = 1.0 / tokens_per_s_batch1
    itl8 = 8.0 / tokens_per_s_batch8
    beta = (itl8 - itl1) / 7.0
    note = f"{tokens_per_s_batch1:.4g} tok/s at batch 1, {tokens_per_s_batch8:.4g} tok/s at batch 8"
    if beta < 0:
        return DecodeSpeed(itl1, 0.0, SOURCE_MEASURED, note + "; batch 8 was no slower per step: β set to 0")
    alpha = itl1 - beta
    if alpha < 0:  # cannot happen for β ≤ ITL(1); kept for odd inputs
        return DecodeSpeed(0.0, itl1, SOURCE_MEASURED, note + "; α clamped to 0")
    return DecodeSpeed(alpha, beta, SOURCE_MEASURED, note)


def from_evaluate_result(result: dict[str, Any]) -> DecodeSpeed:
    """The decode speed in an `evaluate --json` result (its two decode keys)."""
    try:
        tps1 = float(result[EVALUATE_BATCH1_KEY])
        tps8 = float(result[EVALUATE_BATCH8_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"an evaluate result needs numbers under {EVALUATE_BATCH1_KEY!r} and {EVALUATE_BATCH8_KEY!r}"
        ) from exc
    speed = fit_measured(tps1, tps8)
    device = result.get("device")
    if device:
        return DecodeSpeed(speed.alpha_s, speed.beta_s, speed.source, f"{speed.note}, on {device}")
    return speed


def entered(alpha_s: float, beta_s: float = 0.0) -> DecodeSpeed:
    return DecodeSpeed(alpha_s, beta_s, SOURCE_ENTERED)


def entered_tokens_per_s(tokens_per_s: float) -> DecodeSpeed:
    """A single speed (batch 1) entered by hand: no batch dependence known, β = 0."""
    if tokens_per_s <= 0:
        raise ValueError("a decode speed must be > 0 tokens/s")
    return DecodeSpeed(1.0 / tokens_per_s, 0.0, SOURCE_ENTERED, f"{tokens_per_s:g} tok/s, β unknown (0)")


def roofline(
    weights_bytes_per_gpu: int,
    kv_bytes_per_token_per_gpu: int,
    mean_context_tokens: float,
    bandwidth_bytes_per_s: float,
    efficiency: float = 1.0,
) -> DecodeSpeed:
    """The bandwidth bound: α = W/BW, β = KV per sequence/BW (per GPU under tensor parallelism)."""
    if bandwidth_bytes_per_s <= 0 or not 0 < efficiency <= 1:
        raise ValueError("the bandwidth must be > 0 and the efficiency in (0, 1]")
    bw = bandwidth_bytes_per_s * efficiency
    alpha = weights_bytes_per_gpu / bw
    beta = kv_bytes_per_token_per_gpu * mean_context_tokens / bw
    note = f"{bandwidth_bytes_per_s / 1e12:.3g} TB/s" + (f" × {efficiency:g}" if efficiency < 1 else "")
    return DecodeSpeed(alpha, beta, SOURCE_ROOFLINE, note + f", mean context {mean_context_tokens:g} tokens")
