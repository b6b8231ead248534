"""`msquant-desktop demo-model`: build a small Llama model and tokenizer locally, no downloads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_demo_arguments
from msquant_desktop.quantize.model_folder import new_folder_problem


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo-model",
        help="build a small demo model (Llama + tokenizer + calibration.jsonl) to try quantization on",
        description="Build a small Llama model and its byte-level BPE tokenizer locally (no downloads), "
        "trained for a few steps, plus a calibration.jsonl for the calibrating schemes.",
    )
    add_demo_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    problem = new_folder_problem(Path(args.out).expanduser().resolve())
    if problem is not None:  # said before torch is imported (that takes seconds)
        print(f"demo-model: {problem}", file=sys.stderr)
        return 2
    from msquant_desktop.quantize.worker_demo import main

    return main(args.out, args.size)
