"""The evaluation worker: perplexity on held-out text (as the GPTQ paper measures it), agreement with
the original model, speed and peak memory, reported as JSON events.

Run by the Jobs engine as `msquant-desktop evaluate ...` (or `python -m
msquant_desktop.quantize.worker_evaluate ...` with another Python).  `@@MSQUANT-EVENT@@ {json}` lines on
stdout carry stage, progress, error and the final result; with `--json` they go to stderr and stdout
holds only the result object.

Every input is checked before torch is imported (folders, text files, numbers), then the tokenizers
before a model is loaded (a text shorter than one window, an original with another tokenizer): bad
input costs seconds and exits 2 with one line saying what is wrong.  The worker writes no file, so a
cancel (SIGTERM, default action: the process ends at once) leaves nothing behind.

Order of work: load the evaluated model alone, run the speed tests and read the peak memory (so the
figure is the evaluated model's, never the original's too), then load the original if there is one and
score every window with both models (the perplexities, top-1 agreement and KL come from the same
forward passes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from msquant_desktop.domain.evaluate import (
    EVALUATE_KIND,
    SPEED_BATCHES,
    SPEED_NEW_TOKENS,
    SPEED_PROMPT_TOKENS,
    TEXT_JOINER,
    EvaluateRequest,
    EvaluationInputError,
    describe_result,
    perplexity_from_nll,
    perplexity_windows,
    predicted_tokens,
    uniform_perplexity,
)
from msquant_desktop.domain.json_contract import with_schema
from msquant_desktop.domain.quantize import format_event
from msquant_desktop.quantize.args import add_evaluate_arguments, evaluate_request_from_args
from msquant_desktop.quantize.evaluate_inputs import Inputs

EXIT_BAD_INPUT = 2
SPEED_MAX_RUNS = 5
SPEED_BUDGET_S = 2.0
Emit = Callable[[dict[str, Any]], None]


class EventWriter:
    """Writes each event as one flushed line to one stream (stdout, or stderr with --json)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        self._stream.write(format_event(event) + "\n")
        self._stream.flush()


# ------------------------------------------------------------------------------------------------
# Measurements (torch)
# ------------------------------------------------------------------------------------------------


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise EvaluationInputError("--device cuda: torch sees no CUDA GPU here")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_model(folder: Path, device: str) -> tuple[Any, float]:
    """The model in eval mode on `device`, and the seconds loading took (files to ready weights)."""
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    kwargs: dict[str, Any] = {"dtype": "auto"}
    if device != "cpu":
        kwargs["device_map"] = device
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    model.eval()
    _synchronize(device)
    return model, time.perf_counter() - started


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.model_max_length = sys.maxsize  # we cut windows ourselves; no "sequence too long" warning
    return tokenizer


def tokenize(tokenizer: Any, texts: tuple[str, ...]) -> Any:
    """The texts joined with "\\n\\n" and tokenized once (1-D tensor of token ids)."""
    return tokenizer(TEXT_JOINER.join(texts), return_tensors="pt").input_ids[0]


def tokenizers_differ(tokenizer: Any, other: Any, ids: Any, texts: tuple[str, ...]) -> str | None:
    """Why two tokenizers would not give comparable figures, or None when they are the same."""
    ours, theirs = tokenizer.get_vocab(), other.get_vocab()
    if ours != theirs:
        return f"vocabularies of {len(ours)} and {len(theirs)} tokens" + (
            "" if len(ours) != len(theirs) else " that map tokens to other ids"
        )
    other_ids = tokenize(other, texts)
    if other_ids.shape != ids.shape or not bool((other_ids == ids).all()):
        return "the same vocabulary, but it splits the evaluation text differently"
    return None


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def score_windows(
    model: Any,
    ids: Any,
    windows: list[tuple[int, int]],
    device: str,
    reference: Any = None,
    on_window: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Sum of NLL (nats) over every predicted token of every window, each window scored on its own;
    with `reference` (the original) also its NLL, the positions where both models' top-1 agree and
    the summed KL(reference ‖ model) of their next-token distributions."""
    import torch
    import torch.nn.functional as F

    totals = {"nll": 0.0, "reference_nll": 0.0, "agree": 0.0, "kl": 0.0}
    with torch.inference_mode():
        for number, (start, end) in enumerate(windows, start=1):
            window = ids[start:end].unsqueeze(0).to(device)
            targets = window[0, 1:]
            logits = model(window, use_cache=False).logits[0, :-1].float()
            logp = F.log_softmax(logits, dim=-1)
            totals["nll"] += float(F.nll_loss(logp, targets, reduction="sum").double())
            if reference is not None:
                ref_logits = reference(window, use_cache=False).logits[0, :-1].float()
                ref_logp = F.log_softmax(ref_logits, dim=-1)
                totals["reference_nll"] += float(F.nll_loss(ref_logp, targets, reduction="sum").double())
                totals["agree"] += float((logits.argmax(-1) == ref_logits.argmax(-1)).sum())
                kl = F.kl_div(logp, ref_logp, log_target=True, reduction="sum")
                totals["kl"] += float(kl.double())
            if on_window is not None:
                on_window(number)
    return totals


def _speed_prompt(ids: Any) -> Any:
    """The first SPEED_PROMPT_TOKENS tokens of the evaluation text (repeated if the text is shorter)."""
    import torch

    repeats = math.ceil(SPEED_PROMPT_TOKENS / len(ids))
    return torch.cat([ids] * repeats)[:SPEED_PROMPT_TOKENS] if repeats > 1 else ids[:SPEED_PROMPT_TOKENS]


def measure_speed(model: Any, tokenizer: Any, ids: Any, device: str, emit: Emit) -> dict[str, float]:
    """Prefill tokens/s (one forward pass over the prompt) and greedy decode tokens/s (the time of
    SPEED_NEW_TOKENS new tokens minus that of one, so the prefill is not counted) at each batch size.

    Each timing is the best of up to SPEED_MAX_RUNS runs (fewer once SPEED_BUDGET_S is spent on it):
    other work on the machine only ever makes a run slower, so the fastest one is the model's speed."""
    import torch

    prompt = _speed_prompt(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    figures: dict[str, float] = {}

    def best_time(call: Callable[..., Any], *args: Any) -> float:
        times: list[float] = []
        while len(times) < SPEED_MAX_RUNS and sum(times) < SPEED_BUDGET_S:
            _synchronize(device)
            started = time.perf_counter()
            call(*args)
            _synchronize(device)
            times.append(time.perf_counter() - started)
        return min(times)

    def generate(batch: Any, new_tokens: int) -> Any:
        return model.generate(
            input_ids=batch,
            attention_mask=torch.ones_like(batch),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )

    def prefill(batch: Any) -> Any:
        return model(batch, use_cache=False)

    with torch.inference_mode():
        warm = prompt.unsqueeze(0).to(device)
        generate(warm, 2)  # first calls pay for lazy initialisation, not the model's speed
        for batch_size in SPEED_BATCHES:
            emit({"type": "stage", "stage": f"Measuring speed (batch {batch_size})"})
            batch = prompt.unsqueeze(0).repeat(batch_size, 1).to(device)
            prefill_s = best_time(prefill, batch)
            one_s = best_time(generate, batch, 1)
            all_s = best_time(generate, batch, SPEED_NEW_TOKENS)
            decode_s = max(all_s - one_s, 1e-9)
            suffix = "" if batch_size == 1 else f"_batch{batch_size}"
            figures[f"prefill_tokens_per_s{suffix}"] = round(batch_size * SPEED_PROMPT_TOKENS / prefill_s, 2)
            figures[f"decode_tokens_per_s{suffix}"] = round(batch_size * (SPEED_NEW_TOKENS - 1) / decode_s, 2)
    return figures


def peak_memory(device: str) -> tuple[float, str]:
    """(MiB, what was measured): the process's peak RSS on CPU, torch's peak allocation on a GPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def _progress(
    emit: Emit,
    stage: str,
    fraction: float,
    done: int | None = None,
    total: int | None = None,
    eta_s: float | None = None,
) -> None:
    event: dict[str, Any] = {
        "type": "progress",
        "stage": stage,
        "fraction": round(fraction, 4),
        "eta_s": eta_s,
    }
    if done is not None:
        event.update(done=done, total=total)
    emit(event)


def evaluate(request: EvaluateRequest, emit: Emit) -> dict[str, Any]:
    """Run one evaluation; raises EvaluationInputError for bad input (before any model is loaded)."""
    started = time.monotonic()
    emit({"type": "stage", "stage": "Checking inputs"})
    _progress(emit, "Checking inputs", 0.0)
    inputs = Inputs(request)

    emit({"type": "stage", "stage": "Loading libraries"})
    import torch

    device = resolve_device(request.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    emit({"type": "stage", "stage": "Tokenizing"})
    _progress(emit, "Tokenizing", 0.02)
    tokenizer = load_tokenizer(inputs.model_dir)
    ids = tokenize(tokenizer, inputs.text.texts)
    windows = perplexity_windows(len(ids), request.seq_len, request.max_windows)
    if inputs.original_dir is not None:
        why = tokenizers_differ(tokenizer, load_tokenizer(inputs.original_dir), ids, inputs.text.texts)
        if why:
            raise EvaluationInputError(
                f"the original's tokenizer ({inputs.original_dir}) differs from the model's: {why}; "
                "perplexities and agreement would not be comparable: choose the model this one was "
                "quantized from"
            )

    emit({"type": "stage", "stage": "Loading model"})
    _progress(emit, "Loading model", 0.05)
    model, load_s = load_model(inputs.model_dir, device)
    vocab_size = int(model.config.get_text_config().vocab_size)
    result: dict[str, Any] = {
        "type": "result",
        "kind": EVALUATE_KIND,
        "model": str(inputs.model_dir),
        "original": str(inputs.original_dir) if inputs.original_dir else None,
        "text": inputs.text.description,
        "text_files": list(inputs.text.sources),
        "quant_method": (inputs.config.get("quantization_config") or {}).get("quant_method"),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "seq_len": request.seq_len,
        "windows": len(windows),
        "tokens_evaluated": predicted_tokens(windows),
        "text_tokens": len(ids),
        "vocab_size": vocab_size,
        "uniform_perplexity": uniform_perplexity(vocab_size),
        "load_s": round(load_s, 3),
        "speed_prompt_tokens": SPEED_PROMPT_TOKENS if request.speed else None,
        "speed_new_tokens": SPEED_NEW_TOKENS if request.speed else None,
        "prefill_tokens_per_s": None,
        "prefill_tokens_per_s_batch8": None,
        "decode_tokens_per_s": None,
        "decode_tokens_per_s_batch8": None,
    }
    if request.speed:
        _progress(emit, "Measuring speed", 0.15)
        result.update(measure_speed(model, tokenizer, ids, device, emit))
    memory_mib, memory_source = peak_memory(device)
    result.update(peak_memory_mib=round(memory_mib, 1), peak_memory_source=memory_source)

    original = None
    if inputs.original_dir is not None:
        emit({"type": "stage", "stage": "Loading original"})
        _progress(emit, "Loading original", 0.3)
        original, original_load_s = load_model(inputs.original_dir, device)
        result["original_load_s"] = round(original_load_s, 3)

    emit({"type": "stage", "stage": "Perplexity"})
    scoring_started = time.monotonic()

    def on_window(done: int) -> None:
        elapsed = time.monotonic() - scoring_started
        eta = elapsed / done * (len(windows) - done)
        _progress(emit, "Perplexity", 0.35 + 0.65 * done / len(windows), done, len(windows), round(eta, 1))

    totals = score_windows(model, ids, windows, device, original, on_window)
    tokens = result["tokens_evaluated"]
    result["perplexity"] = perplexity_from_nll(totals["nll"], tokens)
    result["original_perplexity"] = None
    result["top1_agreement"] = None
    result["kl_divergence"] = None
    if original is not None:
        result["original_perplexity"] = perplexity_from_nll(totals["reference_nll"], tokens)
        result["top1_agreement"] = totals["agree"] / tokens
        result["kl_divergence"] = max(totals["kl"] / tokens, 0.0)
    result["duration_s"] = round(time.monotonic() - started, 2)
    _progress(emit, "Done", 1.0, eta_s=0)
    return result


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[TextIO]:
    """With --json, everything but the result object goes to stderr; yields the real stdout."""
    real = sys.stdout
    if not enabled:
        yield real
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield real


def run(request: EvaluateRequest, as_json: bool = False) -> int:
    with _stdout_to_stderr(as_json) as stdout:
        emit = EventWriter(sys.stdout)
        try:
            result = evaluate(request, emit)
        except EvaluationInputError as exc:
            emit({"type": "error", "message": str(exc), "hint": "see the message above"})
            print(f"evaluate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as exc:  # a failure while running (memory, a broken file): say it and fail
            traceback.print_exc()
            emit({"type": "error", "message": f"{type(exc).__name__}: {exc}", "hint": _hint_for(exc)})
            return 1
        emit(result)
    if as_json:
        stdout.write(json.dumps(with_schema(result)) + "\n")  # README.md, "JSON output"
        stdout.flush()
    else:
        print(describe_result(result))
    return 0


def _hint_for(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, MemoryError) or "out of memory" in text:
        return "not enough memory: use a smaller --seq-len, evaluate on a bigger machine or on the GPU"
    return "see the log above for the full traceback"


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    if args is None:
        parser = argparse.ArgumentParser(prog="msquant-evaluate", description="Evaluate a model")
        add_evaluate_arguments(parser)
        args = parser.parse_args(argv)
    return run(evaluate_request_from_args(args), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
