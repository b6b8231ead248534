"""`msquant-desktop verify`: load a quantized model, run it, compare it with the original."""

from __future__ import annotations

import argparse

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_verify_arguments


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
    from msquant_desktop.quantize.worker_verify import main

    return main(args=args)
