"""Calibration text from local files only: .jsonl, .json, .txt, or a folder of them.

Never a hub name: everything runs offline.  Returns plain strings; the worker tokenizes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msquant_desktop.domain.quantize import DATASET_SUFFIXES, looks_like_hub_name

TEXT_KEYS = ("text", "content", "prompt", "question", "input")


class DatasetError(ValueError):
    """A calibration dataset that cannot be used; the message names the file and the problem."""


def _text_of(record: Any, where: str) -> str | None:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        for key in TEXT_KEYS:
            value = record.get(key)
            if isinstance(value, str):
                return value
        messages = record.get("messages")
        if isinstance(messages, list):
            parts = [m.get("content", "") for m in messages if isinstance(m, dict)]
            return "\n".join(p for p in parts if isinstance(p, str))
        raise DatasetError(f"{where}: a record has none of the fields {', '.join(TEXT_KEYS)} or 'messages'")
    return None


def _read_file(path: Path) -> list[str]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read calibration file {path}: {exc}") from exc
    if path.suffix == ".txt":
        # Paragraphs (blank-line separated) are samples; a file without blank lines: one line each.
        blocks = [b.strip() for b in raw.split("\n\n")]
        if len([b for b in blocks if b]) <= 1:
            blocks = [line.strip() for line in raw.splitlines()]
        return [b for b in blocks if b]
    if path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc})") from exc
            text = _text_of(record, f"{path}:{number}")
            if text:
                texts.append(text)
        return texts
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        for key in ("data", "train", "rows", "examples"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            if isinstance(data.get("text"), list):
                data = data["text"]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of records (or of strings)")
    return [t for t in (_text_of(r, str(path)) for r in data) if t]


def dataset_files(spec: str) -> list[Path]:
    """The local files a dataset argument names; raises DatasetError with the reason."""
    path = Path(spec).expanduser()
    if looks_like_hub_name(spec, path.exists()):
        raise DatasetError(
            f"{spec!r} looks like a Hugging Face hub dataset; this app works offline: calibration data "
            "must be a local .jsonl, .json or .txt file, or a folder of them"
        )
    if not path.exists():
        raise DatasetError(f"calibration dataset {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATASET_SUFFIXES)
        if not files:
            raise DatasetError(f"folder {path} holds no .jsonl, .json or .txt files")
        return files
    if path.suffix not in DATASET_SUFFIXES:
        raise DatasetError(f"{path}: calibration files must end in .jsonl, .json or .txt")
    return [path]


def load_calibration_texts(spec: str, samples: int) -> list[str]:
    """Up to `samples` non-empty texts from the dataset; at least one or DatasetError."""
    texts: list[str] = []
    for file in dataset_files(spec):
        texts.extend(_read_file(file))
        if len(texts) >= samples:
            break
    if not texts:
        raise DatasetError(f"calibration dataset {spec} holds no text")
    return texts[:samples]
