"""Overhead of `msquant-desktop evaluate` vs a plain transformers loop computing the same perplexity.

Same model, same text (the demo model's held-out split unless --text), same windows: the plain script
joins the texts with a blank line, tokenizes once, cuts non-overlapping windows of --seq-len tokens and
sums `model(window, labels=window).loss * (seq_len - 1)`.  Our worker runs with `--no-speed` (the speed
runs are work the plain loop does not do) and with everything else it does: input checks, events,
progress, peak memory.  Runs alternate (plain, ours, plain, ours, ...) in one invocation so load from
other work hits both alike, or with --paired start together (one core each on a 2-core machine, so a
burst of other work hits both at once); each prints wall time, CPU time (user+sys) and peak RSS from
wait4, and both perplexities (which must agree).  Ratios: of the medians, of the minima, and (paired)
the median of the per-pair ratios.

    PYTHONPATH=$PWD .venv/bin/python bench/evaluate_overhead.py [--model DIR] [--text FILE] [--seq-len 512] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from quantize_common import model_folder

PLAIN_SCRIPT = """
import json, math, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, data, seq_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
if data.endswith(".jsonl"):
    texts = [json.loads(line)["text"] for line in open(data, encoding="utf-8") if line.strip()]
else:
    texts = [open(data, encoding="utf-8").read()]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto").eval()
ids = tokenizer("\\n\\n".join(texts), return_tensors="pt").input_ids
n = ids.shape[1] // seq_len
nll = 0.0
with torch.no_grad():
    for i in range(n):
        window = ids[:, i * seq_len : (i + 1) * seq_len]
        nll += float(model(window, labels=window).loss) * (seq_len - 1)
print(json.dumps({"perplexity": math.exp(nll / (n * (seq_len - 1)))}))
"""


def start(argv: list[str], threads: int) -> tuple[subprocess.Popen[str], float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    return proc, started


def finish(proc: subprocess.Popen[str], started: float) -> dict[str, float]:
    """Wait for one run (its stdout read on a thread, so two runs never block each other)."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else ""))
    reader.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{proc.args!r} failed with {os.waitstatus_to_exitcode(status)}")
    result = json.loads(out[0].strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "perplexity": float(result["perplexity"]),
    }


def run_pair(
    plain_argv: list[str], ours_argv: list[str], threads: int, paired: bool
) -> tuple[dict[str, float], dict[str, float]]:
    if not paired:
        plain = finish(*start(plain_argv, threads))
        return plain, finish(*start(ours_argv, threads))
    first, second = start(plain_argv, threads), start(ours_argv, threads)
    results: dict[int, dict[str, float]] = {}
    waiter = threading.Thread(target=lambda: results.__setitem__(0, finish(*first)))
    waiter.start()
    results[1] = finish(*second)
    waiter.join()
    return results[0], results[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model folder (default: build the tiny demo model)")
    parser.add_argument("--text", help="a .txt or .jsonl file (default: the demo model's heldout.jsonl)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for both (1)")
    parser.add_argument("--paired", action="store_true", help="start plain and ours at the same time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="msquant-bench-") as tmp:
        model = model_folder(args.model, tmp)
        text = Path(args.text) if args.text else model / "heldout.jsonl"
        plain_argv = [sys.executable, "-c", PLAIN_SCRIPT, str(model), str(text), str(args.seq_len)]
        ours_argv = [sys.executable, "-m", "msquant_desktop", "evaluate", "--model", str(model)]
        ours_argv += ["--text", str(text), "--seq-len", str(args.seq_len), "--no-speed", "--json"]
        plain: list[dict[str, float]] = []
        ours: list[dict[str, float]] = []
        for i in range(args.runs):
            p, o = run_pair(plain_argv, ours_argv, args.threads, args.paired)
            plain.append(p)
            ours.append(o)
            print(
                f"run {i + 1}: plain {json.dumps(plain[-1])}\n       ours  {json.dumps(ours[-1])}", flush=True
            )

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def least(rows: list[dict[str, float]], key: str) -> float:
        return min(r[key] for r in rows)

    same = all(abs(o["perplexity"] / p["perplexity"] - 1) < 1e-4 for p, o in zip(plain, ours, strict=True))
    print(
        f"\nmodel {model.name}, text {text.name}, seq_len {args.seq_len}, {args.runs} runs each, "
        f"OMP_NUM_THREADS={args.threads}{', paired' if args.paired else ', alternating'}; perplexity plain {plain[0]['perplexity']:.6f} "
        f"ours {ours[0]['perplexity']:.6f} ({'same' if same else 'DIFFERENT'})"
    )
    for key in ("wall_s", "cpu_s", "peak_rss_mib"):
        p, o = med(plain, key), med(ours, key)
        pl, ol = least(plain, key), least(ours, key)
        pairs = statistics.median(b[key] / a[key] for a, b in zip(plain, ours, strict=True))
        print(
            f"  {key:13s} median plain {p:8.2f} ours {o:8.2f} ratio {o / p:.3f} | "
            f"min plain {pl:8.2f} ours {ol:8.2f} ratio {ol / pl:.3f} | median of pair ratios {pairs:.3f}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
