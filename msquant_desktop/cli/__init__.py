"""Headless subcommands of the `msquant-desktop` executable.

Each module in SUBCOMMAND_MODULES has `register(subparsers)`, which adds its parser and sets
`func(args, ctx) -> int` as the handler.  Modules are imported only when the parser is built, and
none of them may import torch/llmcompressor at module level (the worker does that lazily).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: the job supervisor's fast path loads this package
    import argparse

SUBCOMMAND_MODULES: list[str] = [
    "msquant_desktop.cli.jobs",
    "msquant_desktop.cli.supervise",
    "msquant_desktop.cli.gpu",
    "msquant_desktop.cli.doctor",
    "msquant_desktop.cli.slurm",
    "msquant_desktop.cli.quantize",
    "msquant_desktop.cli.demo_model",
    "msquant_desktop.cli.verify",
    "msquant_desktop.cli.evaluate",
    "msquant_desktop.cli.results",
    "msquant_desktop.cli.projects_cmd",
    "msquant_desktop.cli.plan",
]


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    import importlib

    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
