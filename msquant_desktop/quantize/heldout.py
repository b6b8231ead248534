"""Held-out text for an evaluation, from local files only: .txt, .jsonl (`text` field) or a folder of them.

Never a hub name: everything runs offline.  The texts are returned as they are in the files (a .txt file
is one text, a .jsonl line's `text` one text, empty ones included, as the GPTQ reference evaluation keeps
WikiText's empty lines); the worker joins them with "\\n\\n" and tokenizes the whole once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.evaluate import EvaluationInputError
from msquant_desktop.domain.quantize import looks_like_hub_name

HELDOUT_SUFFIXES = (".txt", ".jsonl")
DEMO_HELDOUT_FILE = "heldout.jsonl"
"""The held-out split a demo model ships next to its weights (never the calibration samples)."""
OFFLINE_HINT = (
    "evaluation runs offline: give a local .txt or .jsonl file (or a folder of them); to use a hub "
    "dataset, download it first (e.g. `hf download ORG/NAME --repo-type dataset --local-dir DIR`)"
)


@dataclass(frozen=True)
class HeldoutText:
    texts: tuple[str, ...]
    sources: tuple[str, ...]
    """The files the texts came from, in order."""
    description: str
    """What the result says the text was: the files, or "demo held-out split (FILE)"."""


def heldout_files(spec: str) -> list[Path]:
    """The files a --text argument names; raises EvaluationInputError with the reason."""
    path = Path(spec).expanduser()
    if looks_like_hub_name(spec, path.exists()):
        raise EvaluationInputError(f"{spec!r} looks like a Hugging Face hub dataset; {OFFLINE_HINT}")
    if not path.exists():
        raise EvaluationInputError(f"evaluation text {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in HELDOUT_SUFFIXES)
        if not files:
            raise EvaluationInputError(f"folder {path} holds no .txt or .jsonl files")
        return files
    if path.suffix not in HELDOUT_SUFFIXES:
        raise EvaluationInputError(f"{path}: evaluation text must be a .txt or .jsonl file (or a folder)")
    return [path]


def _read_utf8(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvaluationInputError(f"cannot read evaluation text {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from exc


def read_heldout_file(path: Path) -> list[str]:
    """The texts of one file: a .txt file whole, each line's `text` of a .jsonl file."""
    raw = _read_utf8(path)
    if path.suffix == ".txt":
        return [raw]
    texts = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise EvaluationInputError(f"{path}:{number}: not valid JSON ({exc})") from exc
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise EvaluationInputError(f"{path}:{number}: a record without a string 'text' field")
        texts.append(text)
    return texts


def load_heldout(specs: list[str] | tuple[str, ...]) -> HeldoutText:
    """Every text of every file the --text arguments name, in order."""
    files = [file for spec in specs for file in heldout_files(spec)]
    texts = [text for file in files for text in read_heldout_file(file)]
    if not any(t.strip() for t in texts):
        raise EvaluationInputError(f"the evaluation text ({', '.join(map(str, files))}) is empty")
    return HeldoutText(tuple(texts), tuple(str(f) for f in files), ", ".join(str(f) for f in files))


def default_heldout(model_dir: Path, original_dir: Path | None) -> HeldoutText:
    """The held-out split a demo model ships (in the model's folder, else the original's)."""
    for folder in (model_dir, original_dir):
        if folder is not None and (folder / DEMO_HELDOUT_FILE).is_file():
            file = folder / DEMO_HELDOUT_FILE
            texts = read_heldout_file(file)
            return HeldoutText(tuple(texts), (str(file),), f"demo held-out split ({file})")
    raise EvaluationInputError(
        f"no evaluation text: give --text FILE (.txt or .jsonl, or a folder of them); only a demo model "
        f"ships its own held-out split ({DEMO_HELDOUT_FILE})"
    )
