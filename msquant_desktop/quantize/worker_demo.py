"""Build a small Llama model and its tokenizer locally (no downloads), so a new user can quantize now.

The tokenizer is a byte-level BPE trained on generated text; the model is trained for a few steps on
the same text so its weights (and so its quantization errors) are not those of random noise.  A
`calibration.jsonl` is written next to it for the calibrating schemes.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from msquant_desktop.domain.quantize import format_event

SIZES = {
    # hidden, intermediate, layers, heads, kv heads, training steps
    "tiny": (256, 768, 4, 8, 4, 8),
    "small": (768, 2048, 8, 12, 4, 4),
}
VOCAB = 2048
SUBJECTS = [
    "the model",
    "a quantized layer",
    "the cluster",
    "our GPU",
    "the job",
    "a tokenizer",
    "the engineer",
]
VERBS = ["computes", "stores", "compresses", "schedules", "measures", "loads", "saves", "reads"]
OBJECTS = ["eight bit weights", "the activations", "a calibration batch", "the logits", "a checkpoint"]
ENDINGS = [
    "quickly.",
    "on the CPU.",
    "without a download.",
    "in groups of one hundred twenty eight.",
    "again.",
]


def demo_texts(count: int, seed: int = 0) -> list[str]:
    """Deterministic English-like sentences: enough structure for a tokenizer and a few steps of training."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        sentences = [
            f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}"
            for _ in range(rng.randint(3, 8))
        ]
        texts.append(" ".join(sentences))
    return texts


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
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


def build_demo_model(out: Path, size: str = "tiny", seed: int = 0) -> dict[str, object]:
    """Write a model folder to `out` (via `out.partial`, renamed at the end) and return a summary."""
    if size not in SIZES:
        raise ValueError(f"unknown demo model size {size!r}; choose one of {', '.join(SIZES)}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty; choose a new folder")
    started = time.monotonic()
    torch.manual_seed(seed)
    hidden, inter, layers, heads, kv_heads, steps = SIZES[size]
    texts = demo_texts(600, seed)
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = tokenizer(
            texts[step * 8 : step * 8 + 8], return_tensors="pt", padding=True, truncation=True, max_length=64
        )
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        _emit(
            {
                "type": "progress",
                "stage": "Training model",
                "done": step + 1,
                "total": steps,
                "fraction": (step + 1) / steps,
                "eta_s": None,
                "loss": round(float(loss), 3),
            }
        )
    model.eval()
    _emit({"type": "stage", "stage": "Saving"})
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    with (partial / "calibration.jsonl").open("w", encoding="utf-8") as fh:
        for text in demo_texts(256, seed + 1):
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
        "final_loss": round(float(loss), 3),
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
    print(f"demo model ({size}, {result['parameters']:,} parameters) written to {result['output']}")
    return 0
