"""`msquant-desktop evaluate`: perplexity, agreement with the original, speed and memory of a model."""

from __future__ import annotations

import argparse

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_evaluate_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="perplexity on held-out text, agreement with the original, speed and peak memory of a model",
        description="Evaluate a model folder (quantized or not): perplexity on held-out text as the GPTQ "
        "paper measures it (texts joined with a blank line, tokenized once, non-overlapping windows of "
        "--seq-len tokens, the partial last one dropped); with --original the original's perplexity on "
        "the same windows, next-token top-1 agreement and mean KL(original || model); load time, "
        "prefill and greedy decode tokens/s at batch 1 and 8, and peak memory. Prints "
        "'@@MSQUANT-EVENT@@ {json}' lines (stage, progress, error, result). Exits 2 on bad input.",
    )
    add_evaluate_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.quantize.worker_evaluate import main

    return main(args=args)
