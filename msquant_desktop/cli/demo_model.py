"""`msquant-desktop demo-model`: build a small Llama model and tokenizer locally, no downloads."""

from __future__ import annotations

import argparse

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_demo_arguments


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
    from msquant_desktop.quantize.worker_demo import main

    return main(args.out, args.size)
