"""`msquant-desktop verify`: load a quantized model, run it, compare it with the original."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_verify_arguments
from msquant_desktop.quantize.model_folder import not_a_model_folder


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="load a quantized model with transformers, run it and compare it with the original",
        description="Load a quantized model folder with transformers, run a forward pass and a short "
        "generate, and report load time, top-1 agreement and logits cosine against --original.",
    )
    add_verify_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    problem = not_a_model_folder(Path(args.model).expanduser())
    if problem is not None:  # said before torch is imported (that takes seconds)
        print(f"verify: {problem}", file=sys.stderr)
        return 2
    from msquant_desktop.quantize.worker_verify import main

    return main(args=args)
