"""Real evaluations of the tiny demo model and its W4A16 quantization (torch + transformers on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.evaluate import REQUIRED_RESULT_KEYS, result_problems
from msquant_desktop.domain.quantize import parse_event
from msquant_desktop.quantize.demo_grammar import CALIBRATION_FILE, grammar_sentences
from msquant_desktop.quantize.heldout import DEMO_HELDOUT_FILE
from tests.quantize.conftest import needs_llmcompressor, run_cli

pytestmark = [pytest.mark.quantize, pytest.mark.slow, needs_llmcompressor]

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the suite shares 2 cores: two spinning threads only lose time


def evaluate_json(*args: str) -> tuple[dict, list[dict]]:
    """`evaluate --json ...`: the JSON object on stdout and the events (on stderr in this mode)."""
    code, _, stdout, stderr = run_cli("evaluate", *args, "--json", env=ONE_THREAD)
    assert code == 0, stdout[-2000:] + stderr[-4000:]
    events = [e for e in (parse_event(line) for line in stderr.splitlines()) if e is not None]
    return json.loads(stdout), events


REFERENCE = """
import json, math, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, data, seq_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = [json.loads(line)["text"] for line in open(data, encoding="utf-8") if line.strip()]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
ids = tokenizer("\\n\\n".join(texts), return_tensors="pt").input_ids
n = ids.shape[1] // seq_len
nlls = []
with torch.no_grad():
    for i in range(n):
        batch = ids[:, i * seq_len : (i + 1) * seq_len]
        nlls.append(model(batch, labels=batch).loss.double() * (seq_len - 1))
print(json.dumps({"perplexity": math.exp(float(sum(nlls)) / (n * (seq_len - 1))), "windows": n}))
"""


def test_perplexity_is_the_straightforward_transformers_computation(demo_model: Path, tmp_path: Path) -> None:
    lines = (demo_model / DEMO_HELDOUT_FILE).read_text(encoding="utf-8").splitlines()[:24]
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, _ = evaluate_json(
        "--model", str(demo_model), "--text", str(short), "--seq-len", "96", "--no-speed"
    )
    reference = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(demo_model), str(short), "96"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ONE_THREAD},
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = json.loads(reference.stdout.strip().splitlines()[-1])
    assert expected["windows"] >= 5 and result["windows"] == expected["windows"]
    assert result["tokens_evaluated"] == expected["windows"] * 95
    assert result["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-4)
    assert result["original_perplexity"] is None and result["decode_tokens_per_s"] is None


def test_a_quantized_model_against_its_original(demo_model: Path, demo_w4a16: Path) -> None:
    result, events = evaluate_json("--model", str(demo_w4a16), "--original", str(demo_model))
    assert result_problems(result) == [] and set(REQUIRED_RESULT_KEYS) <= set(result)
    assert result.pop("schema") == 1  # --json is the result event with the JSON contract's version
    assert events[-1] == result  # the JSON object is the result event
    assert result["text"].startswith("demo held-out split") and result["seq_len"] == 512
    assert result["windows"] >= 10 and result["tokens_evaluated"] == result["windows"] * 511
    # The demo model has learned its grammar: far below the perplexity of knowing nothing.
    assert result["uniform_perplexity"] == 2048.0 and result["original_perplexity"] < 5.0
    # Rounding to 4 bits cannot make it better than the original beyond noise, and keeps it close.
    assert result["perplexity"] >= result["original_perplexity"] * (1 - 1e-3)
    assert result["perplexity"] < result["original_perplexity"] * 1.5
    assert 0.8 < result["top1_agreement"] < 1.0 and 0.0 < result["kl_divergence"] < 0.1
    assert result["quant_method"] == "compressed-tensors" and result["device"] == "cpu"
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_batch8", "load_s"):
        assert result[key] > 0, key
    assert result["speed_prompt_tokens"] == 128 and result["speed_new_tokens"] == 32
    assert 100 < result["peak_memory_mib"] < 4096
    stages = [e["stage"] for e in events if e["type"] == "stage"]
    assert stages[0] == "Checking inputs" and "Loading original" in stages and stages[-1] == "Perplexity"
    windows = [e for e in events if e["type"] == "progress" and e["stage"] == "Perplexity"]
    assert [e["done"] for e in windows] == list(range(1, result["windows"] + 1))
    assert events[-2]["fraction"] == 1.0


def test_the_demo_model_speaks_its_grammar_and_keeps_its_splits_apart(
    demo_model: Path, demo_w4a16: Path
) -> None:
    def texts(name: str) -> set[str]:
        lines = (demo_model / name).read_text(encoding="utf-8").splitlines()
        return {json.loads(line)["text"] for line in lines}

    assert len(texts(DEMO_HELDOUT_FILE)) >= 100 and not texts(DEMO_HELDOUT_FILE) & texts(CALIBRATION_FILE)
    # What a user sees after Build demo model -> quantize -> Verify.
    args = ("verify", "--model", str(demo_w4a16), "--original", str(demo_model))
    code, events, stdout, stderr = run_cli(*args, env=ONE_THREAD)
    assert code == 0, stdout[-2000:] + stderr[-3000:]
    generated = events[-1]["generated"]
    assert grammar_sentences("The model computes" + generated), generated  # a whole sentence of its grammar
    assert sum(c.isalpha() for c in generated) > len(generated) / 2, generated  # words, not punctuation


def _tree(*folders: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for f in folders for p in [f, *f.rglob("*")]}


def _other_tokenizer(demo_model: Path, folder: Path) -> Path:
    """The demo model with two tokens' ids swapped in its tokenizer."""
    shutil.copytree(demo_model, folder)
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    a, b = "Ġthe", "Ġmodel"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-config", "is not a model folder: it has no config.json"),
        ("not-causal", "is not a causal language model: its config.json names architecture BertForMaskedLM"),
        ("hub-text", "looks like a Hugging Face hub dataset; evaluation runs offline"),
        ("latin1", r"is not UTF-8 text (byte 0xe9 at offset 3)"),
        ("too-long-window", "--seq-len 2048 is longer than the model's context of 1024 tokens"),
        ("short", "tokens long, shorter than one window of 512 tokens"),
        ("other-tokenizer", "the original's tokenizer"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(
    demo_model: Path, tmp_path: Path, case: str, message: str
) -> None:
    model, extra = str(demo_model), []
    if case == "no-config":
        (tmp_path / "empty").mkdir()
        model = str(tmp_path / "empty")
    elif case == "not-causal":
        folder = tmp_path / "bert"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
        (folder / "model.safetensors").write_bytes(b"")
        model = str(folder)
    elif case == "hub-text":
        extra = ["--text", "Salesforce/wikitext"]
    elif case == "latin1":
        (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
        extra = ["--text", str(tmp_path / "latin1.txt")]
    elif case == "too-long-window":
        extra = ["--seq-len", "2048"]
    elif case == "short":
        (tmp_path / "short.txt").write_text("The job loads the logits again.", encoding="utf-8")
        extra = ["--text", str(tmp_path / "short.txt")]
    elif case == "other-tokenizer":
        extra = ["--original", str(_other_tokenizer(demo_model, tmp_path / "other"))]
    before = _tree(demo_model, tmp_path)
    code, events, stdout, stderr = run_cli("evaluate", "--model", model, *extra, env=ONE_THREAD)
    assert code == 2, stdout[-2000:] + stderr[-3000:]
    said = [line for line in stderr.splitlines() if line.startswith("evaluate: ")]
    assert len(said) == 1 and message in said[0], stderr[-3000:]
    assert [e["message"] for e in events if e["type"] == "error"] == [said[0].removeprefix("evaluate: ")]
    assert not any(e["type"] == "result" for e in events)
    assert _tree(demo_model, tmp_path) == before  # nothing written anywhere


def test_cancel_ends_the_evaluation_at_once_and_leaves_nothing(demo_model: Path, demo_w4a16: Path) -> None:
    before = _tree(demo_model, demo_w4a16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "msquant_desktop", "evaluate", "--model", str(demo_w4a16)]
        + ["--original", str(demo_model), "--seq-len", "16", "--no-speed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # as the Jobs engine starts it: its own process group
        env={**os.environ, **ONE_THREAD},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_event(line)
            if event and event["type"] == "progress" and event["stage"] == "Perplexity":
                assert event["done"] < event["total"]
                break
        else:
            pytest.fail(f"no perplexity progress; exit {proc.wait()}")
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert time.monotonic() - sent < 2.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    assert _tree(demo_model, demo_w4a16) == before
