"""Held-out text for evaluation: local .txt / .jsonl files or folders of them, never a hub name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msquant_desktop.domain.evaluate import EvaluationInputError
from msquant_desktop.quantize.heldout import DEMO_HELDOUT_FILE, default_heldout, load_heldout


def test_txt_files_are_whole_texts_and_jsonl_lines_give_their_text_field(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("First paragraph.\n\nSecond paragraph.\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"text": "one", "id": 1}) + "\n\n" + json.dumps({"text": ""}) + "\n", encoding="utf-8"
    )
    text = load_heldout([str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")])
    assert text.texts == (
        "First paragraph.\n\nSecond paragraph.\n",
        "one",
        "",
    )  # empty ones kept, as WikiText's
    assert text.sources == (str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl"))


def test_a_folder_gives_its_txt_and_jsonl_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "2.txt").write_text("two", encoding="utf-8")
    (tmp_path / "1.jsonl").write_text('{"text": "one"}\n', encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    assert load_heldout([str(tmp_path)]).texts == ("one", "two")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: "Salesforce/wikitext", "looks like a Hugging Face hub dataset; evaluation runs offline"),
        (lambda d: str(d / "missing.txt"), "does not exist"),
        (lambda d: str(d), "holds no .txt or .jsonl files"),
        (lambda d: _write(d / "data.csv", b"a,b\n"), "must be a .txt or .jsonl file"),
        (
            lambda d: _write(d / "latin1.txt", "café".encode("latin-1")),
            r"is not UTF-8 text \(byte 0xe9 at offset 3\)",
        ),
        (lambda d: _write(d / "bad.jsonl", b'{"text": "ok"}\n{"text": \n'), r"bad.jsonl:2: not valid JSON"),
        (
            lambda d: _write(d / "field.jsonl", b'{"content": "x"}\n'),
            r"field.jsonl:1: a record without a string 'text'",
        ),
        (lambda d: _write(d / "empty.txt", b"\n\n"), "is empty"),
    ],
)
def test_bad_text_is_refused_with_one_clear_message(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    spec = make(tmp_path)
    with pytest.raises(EvaluationInputError, match=message):
        load_heldout([spec])


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_the_demo_split_is_found_in_the_model_or_its_original(tmp_path: Path) -> None:
    model, original = tmp_path / "quantized", tmp_path / "demo"
    model.mkdir()
    original.mkdir()
    with pytest.raises(EvaluationInputError, match="no evaluation text: give --text FILE"):
        default_heldout(model, original)
    (original / DEMO_HELDOUT_FILE).write_text(
        '{"text": "The job loads the logits again."}\n', encoding="utf-8"
    )
    text = default_heldout(model, original)
    assert text.texts == ("The job loads the logits again.",)
    assert text.description.startswith("demo held-out split (")
