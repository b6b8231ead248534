"""The scheme comparison table: size | perplexity | Δ | top-1 | decode tok/s | peak MiB | quantization time.

Builds the demo model (`--size small` by default; or takes --model DIR with a heldout.jsonl or --text),
quantizes it with each scheme through our CLI (the calibrating ones on the demo model's calibration.jsonl),
evaluates each result against the original (`evaluate --original ... --json`: perplexity on the held-out
split, 512-token windows, top-1 agreement, KL, speed at batch 1 and 8, peak memory) and the original alone,
and prints a Markdown table.

    PYTHONPATH=$PWD .venv/bin/python bench/scheme_table.py [--size small] [--model DIR] [--schemes ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from msquant_desktop.domain.quantize import parse_event

SCHEMES = ["FP8_DYNAMIC", "W8A16", "W4A16", "GPTQ_W4A16", "AWQ_W4A16"]
CALIBRATING = {"GPTQ_W4A16", "AWQ_W4A16", "SMOOTHQUANT_GPTQ_W8A8"}


def cli(*args: str, threads: int) -> tuple[list[dict[str, Any]], str]:
    """Run our CLI; (events on stdout, stdout).  Fails loudly."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-m", "msquant_desktop", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"{args[:2]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return [e for e in map(parse_event, proc.stdout.splitlines()) if e], proc.stdout


def evaluate(model: Path, original: Path | None, text: list[str], threads: int) -> dict[str, Any]:
    args = ["evaluate", "--model", str(model), *text, "--json"]
    if original is not None:
        args += ["--original", str(original)]
    _, stdout = cli(*args, threads=threads)
    return json.loads(stdout)  # type: ignore[no-any-return]


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--model", help="a model folder instead of building the demo model")
    parser.add_argument("--text", action="append", default=[], help="held-out text (default: heldout.jsonl)")
    parser.add_argument("--schemes", nargs="*", default=SCHEMES)
    parser.add_argument("--samples", type=int, default=64, help="calibration samples (64)")
    parser.add_argument("--calibration-seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for every child (1)")
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    args = parser.parse_args()
    text = [a for t in args.text for a in ("--text", t)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="msquant-schemes-") as tmp:
        if args.model:
            model = Path(args.model)
            built: dict[str, Any] = {}
        else:
            model = Path(tmp) / f"demo-{args.size}"
            started = time.monotonic()
            events, _ = cli("demo-model", "--size", args.size, "--out", str(model), threads=args.threads)
            built = events[-1]
            print(
                f"demo model {args.size}: {json.dumps(built)} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        base = evaluate(model, None, text, args.threads)
        size_before = sum(p.stat().st_size for p in model.glob("*.safetensors"))
        rows.append({"scheme": "original", "size": size_before, "evaluation": base, "quantize_s": None})
        print(f"original: {json.dumps(base)}", flush=True)
        for scheme in args.schemes:
            out = Path(tmp) / scheme
            quantize = ["quantize", "--model", str(model), "--scheme", scheme, "--out", str(out)]
            if scheme in CALIBRATING:
                quantize += ["--dataset", str(model / "calibration.jsonl"), "--samples", str(args.samples)]
                quantize += ["--seq-len", str(args.calibration_seq_len)]
            events, _ = cli(*quantize, threads=args.threads)
            result = events[-1]
            evaluation = evaluate(out, model, text, args.threads)
            rows.append(
                {
                    "scheme": scheme,
                    "size": result["size_after"],
                    "evaluation": evaluation,
                    "quantize_s": result["duration_s"],
                }
            )
            print(f"{scheme}: {json.dumps(rows[-1])}", flush=True)
    print()
    print(
        f"model: {built.get('size', model.name)} demo ({built.get('parameters', '?')} parameters), "
        f"held-out: {base['text']}, {base['windows']} windows of {base['seq_len']} tokens "
        f"({base['tokens_evaluated']} predicted), uniform perplexity {base['uniform_perplexity']:.0f}, "
        f"OMP_NUM_THREADS={args.threads}, device {base['device']}"
    )
    print()
    print(
        "| scheme | size | perplexity | Δ | top-1 | KL | decode tok/s (b1 / b8) | peak MiB | quantization time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    original_ppl = base["perplexity"]
    for row in rows:
        e = row["evaluation"]
        delta = "" if row["scheme"] == "original" else f"{e['perplexity'] - original_ppl:+.4f}"
        top1 = "" if e["top1_agreement"] is None else f"{e['top1_agreement']:.1%}"
        kl = "" if e["kl_divergence"] is None else f"{e['kl_divergence']:.6f}"
        qtime = "" if row["quantize_s"] is None else f"{row['quantize_s']:.1f} s"
        print(
            f"| {row['scheme']} | {mib(row['size'])} | {e['perplexity']:.4f} | {delta} | {top1} | {kl} | "
            f"{e['decode_tokens_per_s']:.1f} / {e['decode_tokens_per_s_batch8']:.1f} | "
            f"{e['peak_memory_mib']:.0f} | {qtime} |"
        )
    by_scheme = {r["scheme"]: r["evaluation"]["perplexity"] for r in rows}
    if "W4A16" in by_scheme and "GPTQ_W4A16" in by_scheme:
        rtn, gptq = by_scheme["W4A16"] - original_ppl, by_scheme["GPTQ_W4A16"] - original_ppl
        verdict = "beats" if gptq < rtn else "does not beat"
        print(f"\nGPTQ W4A16 {verdict} RTN W4A16: Δ perplexity {gptq:+.4f} vs {rtn:+.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"demo": built, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
