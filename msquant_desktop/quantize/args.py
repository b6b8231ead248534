"""Command-line arguments of the quantize, demo-model, verify and evaluate workers.  Standard library only.

Shared by the app's subcommands (`msquant-desktop quantize ...`) and the workers' own `python -m`
entry points, which another Python (Settings -> worker Python) runs without the GUI's dependencies.
"""

from __future__ import annotations

import argparse

from msquant_desktop.domain.evaluate import DEFAULT_SEQ_LEN, EvaluateRequest
from msquant_desktop.domain.quantize import SCHEMES, QuantizeRequest


def add_quantize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="Hugging Face model folder (local)")
    parser.add_argument(
        "--scheme",
        required=True,
        choices=[s.id for s in SCHEMES],
        help="quantization scheme; RECIPE uses --recipe FILE.yaml",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist yet)")
    parser.add_argument(
        "--dataset", metavar="PATH", help="calibration data: a local .jsonl/.json/.txt file or folder"
    )
    parser.add_argument("--samples", type=int, default=64, metavar="N", help="calibration samples (64)")
    parser.add_argument(
        "--seq-len", type=int, default=512, metavar="N", help="calibration tokens per sample (512)"
    )
    parser.add_argument(
        "--ignore",
        nargs="*",
        default=["lm_head"],
        metavar="LAYER",
        help="layers left unquantized: names, suffixes or re:REGEX (default: lm_head)",
    )
    parser.add_argument("--recipe", metavar="FILE.yaml", help="your own llmcompressor recipe")


def request_from_args(args: argparse.Namespace) -> QuantizeRequest:
    return QuantizeRequest(
        model=args.model,
        scheme=args.scheme,
        out=args.out,
        dataset=args.dataset,
        samples=args.samples,
        seq_len=args.seq_len,
        ignore=tuple(args.ignore or ()),
        recipe=args.recipe,
    )


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size", choices=["tiny", "small"], default="tiny", help="tiny: 4 M, small: 55 M parameters"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write the model to (new or empty)"
    )


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the quantized model folder")
    parser.add_argument("--original", metavar="DIR", help="the original model, to compare logits with")
    parser.add_argument("--prompt", default="The model computes", help="text to run and continue")
    parser.add_argument("--max-new-tokens", type=int, default=16, metavar="N")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the model folder to evaluate")
    parser.add_argument(
        "--original",
        metavar="DIR",
        help="the model it was quantized from: its perplexity on the same windows, top-1 agreement, KL",
    )
    parser.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="FILE",
        help="held-out text: a local .txt or .jsonl ('text' field) file or a folder of them; repeatable "
        "(default: the demo model's own held-out split)",
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=DEFAULT_SEQ_LEN,
        metavar="N",
        help=f"tokens per perplexity window ({DEFAULT_SEQ_LEN})",
    )
    parser.add_argument(
        "--max-windows", type=int, default=None, metavar="N", help="score only the first N windows (all)"
    )
    parser.add_argument(
        "--no-speed", action="store_true", help="skip the speed runs (prefill and decode tokens/s)"
    )
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: the GPU when there is one"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only the result as one JSON object on stdout (the event lines go to stderr)",
    )


def evaluate_request_from_args(args: argparse.Namespace) -> EvaluateRequest:
    return EvaluateRequest(
        model=args.model,
        original=args.original,
        texts=tuple(args.text or ()),
        seq_len=args.seq_len,
        max_windows=args.max_windows,
        speed=not args.no_speed,
        device=args.device,
    )
