"""Build a small Llama model and its tokenizer locally (no downloads), so a new user can quantize now.

The tokenizer is a byte-level BPE trained on generated text of a small grammar; the model is trained on
the same kind of text until it has learned the grammar (held-out perplexity ~2.4 against 2048 for a
model that knows nothing, greedy continuations are sentences of the grammar), so its quantization errors
show in perplexity.  Next to it: `calibration.jsonl` for the calibrating schemes and `heldout.jsonl`,
the held-out split `evaluate` uses by default, drawn apart from both the training and calibration texts.

Training runs on one thread: the layers are too narrow for a second thread to pay off on 2 cores
(on a busy machine two threads spin-waiting on each other made a step 3x slower), and one thread gives
the same model on every machine.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from msquant_desktop.domain.evaluate import (
    DEFAULT_SEQ_LEN,
    TEXT_JOINER,
    perplexity_from_nll,
    perplexity_windows,
    predicted_tokens,
    uniform_perplexity,
)
from msquant_desktop.domain.quantize import format_event
from msquant_desktop.quantize.demo_grammar import CALIBRATION_FILE, demo_splits
from msquant_desktop.quantize.heldout import DEMO_HELDOUT_FILE
from msquant_desktop.quantize.model_folder import new_folder_problem
from msquant_desktop.quantize.worker_evaluate import score_windows

SIZES = {
    # hidden, intermediate, layers, heads, kv heads, training steps, peak learning rate
    "tiny": (256, 768, 4, 8, 4, 64, 3e-3),
    "small": (768, 2048, 8, 12, 4, 48, 2e-3),
}
VOCAB = 2048
BATCH = 16
BLOCK = 64  # tokens per training sequence, cut from the training texts joined as evaluate joins them
WARMUP_STEPS = 5
SAMPLE_PROMPT = "The model computes"  # verify's default prompt


def _emit(event: dict[str, object]) -> None:
    print(format_event(event), flush=True)


def _train_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


def _train(model: LlamaForCausalLM, blocks: torch.Tensor, steps: int, lr: float, seed: int) -> float:
    """AdamW on random batches of packed blocks, linear warm-up then cosine decay; the last loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * step / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    started = time.monotonic()
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        batch = blocks[torch.randint(0, blocks.shape[0], (BATCH,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        loss_value = loss.item()
        elapsed = time.monotonic() - started
        _emit(
            {
                "type": "progress",
                "stage": "Training model",
                "done": step + 1,
                "total": steps,
                "fraction": (step + 1) / steps,
                "eta_s": round(elapsed / (step + 1) * (steps - step - 1), 1),
                "loss": round(loss_value, 3),
            }
        )
    model.eval()
    return loss_value


def build_demo_model(out: Path, size: str = "tiny", seed: int = 0) -> dict[str, object]:
    """Write a model folder to `out` (via `out.partial`, renamed at the end) and return a summary."""
    if size not in SIZES:
        raise ValueError(f"unknown demo model size {size!r}; choose one of {', '.join(SIZES)}")
    problem = new_folder_problem(out)
    if problem is not None:
        raise FileExistsError(problem)
    started = time.monotonic()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    hidden, inter, layers, heads, kv_heads, steps, lr = SIZES[size]
    texts, calibration, heldout = demo_splits(seed)
    _emit({"type": "stage", "stage": "Training tokenizer"})
    tokenizer = _train_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    _emit({"type": "stage", "stage": "Training model"})
    stream = tokenizer(TEXT_JOINER.join(texts), return_tensors="pt").input_ids[0]
    blocks = stream[: len(stream) // BLOCK * BLOCK].view(-1, BLOCK)
    final_loss = _train(model, blocks, steps, lr, seed)

    _emit({"type": "stage", "stage": "Scoring the held-out split"})
    heldout_ids = tokenizer(TEXT_JOINER.join(heldout), return_tensors="pt").input_ids[0]
    windows = perplexity_windows(len(heldout_ids), DEFAULT_SEQ_LEN)
    nll = score_windows(model, heldout_ids, windows, "cpu")["nll"]
    heldout_perplexity = perplexity_from_nll(nll, predicted_tokens(windows))
    prompt = tokenizer(SAMPLE_PROMPT, return_tensors="pt")
    generator: Any = model  # transformers types `generate` for its mixin's self type only
    with torch.inference_mode():
        generated = generator.generate(
            **prompt, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    sample = tokenizer.decode(generated[0], skip_special_tokens=True)

    _emit({"type": "stage", "stage": "Saving"})
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    for name, split in ((CALIBRATION_FILE, calibration), (DEMO_HELDOUT_FILE, heldout)):
        with (partial / name).open("w", encoding="utf-8") as fh:
            for text in split:
                fh.write(json.dumps({"text": text}) + "\n")
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return {
        "type": "result",
        "kind": "demo-model",
        "output": str(out),
        "size": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_steps": steps,
        "final_loss": round(final_loss, 3),
        "heldout_perplexity": round(heldout_perplexity, 4),
        "heldout_tokens": predicted_tokens(windows),
        "uniform_perplexity": uniform_perplexity(VOCAB),
        "sample": sample,
        "duration_s": round(time.monotonic() - started, 2),
    }


def main(out: str, size: str) -> int:
    try:
        result = build_demo_model(Path(out).expanduser().resolve(), size)
    except (ValueError, FileExistsError) as exc:
        _emit({"type": "error", "message": str(exc), "hint": "choose an empty or new output folder"})
        print(f"demo-model: {exc}", file=sys.stderr)
        return 2
    _emit(result)
    print(
        f"demo model ({size}, {result['parameters']:,} parameters) written to {result['output']}; "
        f"held-out perplexity {result['heldout_perplexity']:.2f} (uniform {result['uniform_perplexity']:.0f}); "
        f"sample: {result['sample']!r}"
    )
    return 0
