"""The checked inputs of one evaluation, without torch: the worker checks them before it imports torch,
and the app's Evaluate form checks them in a thread before it queues the job (one rule for both).

Folders (a causal LM, a hub name resolved from the local cache), held-out text files, the window
length against the model's context, and the original's vocabulary against the model's.  The
tokenizers are compared later, by the worker (that needs them loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msquant_desktop.domain.evaluate import EvaluateRequest, EvaluationInputError, request_problems
from msquant_desktop.quantize.heldout import HeldoutText, default_heldout, load_heldout
from msquant_desktop.quantize.hf_cache import resolve_hub_name
from msquant_desktop.quantize.model_folder import ModelFolderError, read_causal_lm_config


class Inputs:
    """The checked inputs of one evaluation."""

    def __init__(self, request: EvaluateRequest) -> None:
        problems = request_problems(request)
        if problems:
            raise EvaluationInputError("; ".join(problems))
        # A hub name is evaluated from its cached snapshot (offline), like a quantization's model.
        model = str(resolve_hub_name(request.model) or request.model)
        self.model_dir = Path(model).expanduser().resolve()
        self.config = _config_of(model, "model")
        self.original_dir: Path | None = None
        self.original_config: dict[str, Any] | None = None
        if request.original:
            original = str(resolve_hub_name(request.original) or request.original)
            self.original_dir = Path(original).expanduser().resolve()
            self.original_config = _config_of(original, "original")
        self.text: HeldoutText = (
            load_heldout(request.texts)
            if request.texts
            else default_heldout(self.model_dir, self.original_dir)
        )
        context = self.config.get("max_position_embeddings")
        if isinstance(context, int) and request.seq_len > context:
            raise EvaluationInputError(
                f"--seq-len {request.seq_len} is longer than the model's context of {context} tokens "
                "(max_position_embeddings): choose a smaller --seq-len"
            )
        if self.original_config is not None:
            ours, theirs = self.config.get("vocab_size"), self.original_config.get("vocab_size")
            if ours != theirs:
                raise EvaluationInputError(
                    f"the original's vocabulary ({theirs} tokens) differs from the model's ({ours}): "
                    "choose the model this one was quantized from"
                )


def _config_of(folder: str, role: str) -> dict[str, Any]:
    try:
        return read_causal_lm_config(folder)
    except ModelFolderError as exc:
        raise EvaluationInputError(f"{role}: {exc}") from exc


def evaluation_problem(request: EvaluateRequest) -> str:
    """What is wrong with `request` before anything is loaded ("" when nothing is)."""
    try:
        Inputs(request)
    except EvaluationInputError as exc:
        return str(exc)
    return ""
