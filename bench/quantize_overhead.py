"""Overhead of our quantize worker vs a plain script calling llmcompressor's `oneshot` directly.

Same model, scheme, data and limits; runs alternate (plain, worker, plain, worker, ...) so load from
other work hits both alike.  Prints wall time, CPU time (user+sys, less
sensitive than wall time to other work sharing the cores) and peak RSS (from wait4's rusage) for each, medians,
the ratios worker/plain, and the time from spawning the worker to its first progress event and to
its first calibration progress event.

    PYTHONPATH=$PWD .venv/bin/python bench/quantize_overhead.py [--model DIR] [--scheme GPTQ_W4A16] [--runs 3]
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

from msquant_desktop.domain.quantize import parse_event

PLAIN_SCRIPT = """
import json, sys
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.gptq import GPTQModifier
from llmcompressor.modifiers.quantization import QuantizationModifier
model, scheme, out, data, samples, seq_len = sys.argv[1:7]
samples, seq_len = int(samples), int(seq_len)
kwargs = {}
if scheme == "GPTQ_W4A16":
    recipe = GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"])
    texts = [json.loads(l)["text"] for l in open(data) if l.strip()][:samples]
    kwargs = dict(dataset=Dataset.from_dict({"text": texts}), num_calibration_samples=len(texts), max_seq_length=seq_len)
else:
    recipe = QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"])
oneshot(model=model, recipe=recipe, output_dir=out, **kwargs)
"""


def run_measured(argv: list[str], watch_events: bool, threads: int) -> dict[str, float | None]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    first_progress: list[float] = []
    first_calibration: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_event(line) if watch_events else None
            if event and event["type"] == "progress":
                if not first_progress:
                    first_progress.append(time.monotonic() - started)
                if event.get("phase") == "Calibrating" and not first_calibration:
                    first_calibration.append(time.monotonic() - started)

    reader = threading.Thread(target=read)
    reader.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed with {proc.returncode}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "first_progress_s": first_progress[0] if first_progress else None,
        "first_calibration_s": first_calibration[0] if first_calibration else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model folder (default: build the tiny demo model)")
    parser.add_argument(
        "--scheme", default="GPTQ_W4A16", choices=["GPTQ_W4A16", "FP8_DYNAMIC", "W4A16", "W8A16"]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument(
        "--paired", action="store_true", help="run plain and ours at the same time (fair on a loaded machine)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for both (1: idle OpenMP threads spinning on a shared machine inflate timings)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="msquant-bench-") as tmp:
        model = model_folder(args.model, tmp)
        data = model / "calibration.jsonl"
        plain: list[dict[str, float | None]] = []
        ours: list[dict[str, float | None]] = []
        for i in range(args.runs):
            out_plain, out_ours = Path(tmp) / f"plain{i}", Path(tmp) / f"ours{i}"
            plain.append(
                run_measured(
                    [sys.executable, "-c", PLAIN_SCRIPT, str(model), args.scheme, str(out_plain), str(data)]
                    + [str(args.samples), str(args.seq_len)],
                    watch_events=False,
                    threads=args.threads,
                )
            )
            worker = [sys.executable, "-m", "msquant_desktop", "quantize", "--model", str(model)]
            worker += ["--scheme", args.scheme, "--out", str(out_ours)]
            if args.scheme == "GPTQ_W4A16":
                worker += [
                    "--dataset",
                    str(data),
                    "--samples",
                    str(args.samples),
                    "--seq-len",
                    str(args.seq_len),
                ]
            ours.append(run_measured(worker, watch_events=True, threads=args.threads))
            print(
                f"run {i + 1}: plain {json.dumps(plain[-1])}\n       ours  {json.dumps(ours[-1])}", flush=True
            )

    def med(rows: list[dict[str, float | None]], key: str) -> float:
        return statistics.median(float(r[key] or 0.0) for r in rows)

    def least(rows: list[dict[str, float | None]], key: str) -> float:
        return min(float(r[key] or 0.0) for r in rows)

    print(
        f"\nmodel {model.name}, scheme {args.scheme}, {args.runs} runs each, OMP_NUM_THREADS={args.threads}:"
    )
    for key in ("wall_s", "cpu_s", "peak_rss_mib"):
        p, o = med(plain, key), med(ours, key)
        pl, ol = least(plain, key), least(ours, key)
        print(
            f"  {key:13s} median plain {p:8.2f} ours {o:8.2f} ratio {o / p:.3f} | "
            f"min plain {pl:8.2f} ours {ol:8.2f} ratio {ol / pl:.3f}"
        )
    print(f"  first progress event after spawn:    {med(ours, 'first_progress_s'):.2f} s")
    print(f"  first calibration progress event:    {med(ours, 'first_calibration_s'):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
