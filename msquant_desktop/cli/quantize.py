"""`msquant-desktop quantize`: one llmcompressor run in this process, reported as JSON events.

This is what a quantization job runs.  llmcompressor is imported only inside the handler.
"""

from __future__ import annotations

import argparse

from msquant_desktop.cli.context import CliContext
from msquant_desktop.quantize.args import add_quantize_arguments, request_from_args


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize a local Hugging Face model folder with llmcompressor",
        description="Quantize a local model folder with llmcompressor. Prints '@@MSQUANT-EVENT@@ {json}' "
        "lines (stage, progress, warning, error, result) among the ordinary log lines.",
    )
    add_quantize_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.quantize.worker_quantize import run

    return run(request_from_args(args))
