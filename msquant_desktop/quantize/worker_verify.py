"""Verify a quantized model: load it with transformers, run a forward pass and a short generate, and
compare its next-token predictions and logits with the original model's.  Reports one result event.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from msquant_desktop.domain.quantize import format_event
from msquant_desktop.quantize.args import add_verify_arguments
from msquant_desktop.quantize.model_folder import not_a_model_folder


def _emit(event: dict[str, Any]) -> None:
    print(format_event(event), flush=True)


def _load(folder: Path) -> tuple[Any, float]:
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype="auto")
    model.eval()
    return model, time.monotonic() - started


def verify(model_dir: Path, original_dir: Path | None, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    quant_method = (config.get("quantization_config") or {}).get("quant_method")
    _emit({"type": "stage", "stage": "Loading quantized model"})
    model, load_s = _load(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    inputs = tokenizer(prompt, return_tensors="pt")
    _emit({"type": "stage", "stage": "Forward pass"})
    with torch.no_grad():
        logits = model(**inputs).logits.float()
        generated = model.generate(
            **inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False
        )
    text = tokenizer.decode(generated[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    result: dict[str, Any] = {
        "type": "result",
        "kind": "verify",
        "model": str(model_dir),
        "quant_method": quant_method,
        "load_s": round(load_s, 3),
        "generated": text,
        "new_tokens": int(generated.shape[1] - inputs["input_ids"].shape[1]),
        "finite": bool(torch.isfinite(logits).all()),
    }
    if original_dir is not None:
        _emit({"type": "stage", "stage": "Comparing with the original"})
        original, original_load_s = _load(original_dir)
        with torch.no_grad():
            reference = original(**inputs).logits.float()
        agreement = (logits.argmax(-1) == reference.argmax(-1)).float().mean()
        cosine = torch.nn.functional.cosine_similarity(
            logits.flatten(0, 1), reference.flatten(0, 1), dim=-1
        ).mean()
        result.update(
            original=str(original_dir),
            original_load_s=round(original_load_s, 3),
            top1_agreement=round(float(agreement), 4),
            logits_cosine=round(float(cosine), 7),
            max_abs_logit_diff=round(float((logits - reference).abs().max()), 6),
        )
    return result


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    if args is None:
        parser = argparse.ArgumentParser(prog="msquant-verify", description="Verify a quantized model")
        add_verify_arguments(parser)
        args = parser.parse_args(argv)
    model_dir = Path(args.model).expanduser()
    message = not_a_model_folder(model_dir)
    if message is not None:
        _emit({"type": "error", "message": message, "hint": "choose the quantized model's output folder"})
        print(f"verify: {message}", file=sys.stderr)
        return 2
    original = Path(args.original).expanduser() if args.original else None
    if original is not None and not (original / "config.json").is_file():
        message = f"original model {original} is gone or not a model folder; verifying without comparison"
        _emit({"type": "warning", "message": message})
        original = None
    result = verify(model_dir, original, args.prompt, args.max_new_tokens)
    _emit(result)
    summary = f"loaded in {result['load_s']} s; generated {result['generated']!r}"
    if "top1_agreement" in result:
        summary += (
            f"; top-1 agreement {result['top1_agreement']:.1%}, logits cosine {result['logits_cosine']:.5f}"
        )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
