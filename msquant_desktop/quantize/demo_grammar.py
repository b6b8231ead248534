"""The demo model's language: a small grammar of sentences about quantization, and its three splits.

Standard library only, so tests and benchmarks can read the grammar without torch.  A sentence is
SUBJECT VERB OBJECT ENDING (7 x 8 x 5 x 5 = 1400 sentences); a text is 3 to 8 of them.
"""

from __future__ import annotations

import random
import re

TRAIN_TEXTS = 600
CALIBRATION_TEXTS = 256
HELDOUT_TEXTS = 160
CALIBRATION_FILE = "calibration.jsonl"

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


def demo_splits(seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(training, calibration, held-out) texts; no held-out text is a training or calibration text."""
    train = demo_texts(TRAIN_TEXTS, seed)
    calibration = demo_texts(CALIBRATION_TEXTS, seed + 1)
    seen = set(train) | set(calibration)
    heldout = [t for t in demo_texts(2 * HELDOUT_TEXTS, seed + 2) if t not in seen][:HELDOUT_TEXTS]
    return train, calibration, heldout


SENTENCE_RE = re.compile(
    "(?:"
    + "|".join(re.escape(s.capitalize()) for s in SUBJECTS)
    + ") (?:"
    + "|".join(map(re.escape, VERBS))
    + ") (?:"
    + "|".join(map(re.escape, OBJECTS))
    + ") (?:"
    + "|".join(map(re.escape, ENDINGS))
    + ")"
)
"""One whole sentence of the grammar."""


def grammar_sentences(text: str) -> list[str]:
    """The whole sentences of the grammar found in `text`."""
    return SENTENCE_RE.findall(text)
