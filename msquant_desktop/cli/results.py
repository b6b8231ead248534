"""`msquant-desktop results`: finished quantizations with their newest evaluation and verification.

Read from the store: COMPLETED quantize jobs' results; evaluation jobs point at the quantization they
evaluate with meta {"evaluates": <quantize job id>}, verification jobs with {"verifies": ...}
(`domain/results.py` joins them, with the Results view's rule: the newest finished check is shown).

The table's columns are stable (scripts should use --json):

    ID  SCHEME  SIZE  PERPLEXITY  Δ  TOP-1  DECODE_TOK/S  PEAK_MIB  EVALUATION  OUTPUT

A figure that is not known is "-"; EVALUATION is "job N", "failed (job N)", "running" or "-"; the
OUTPUT of a quantization that ran on a cluster is `CLUSTER:PATH` (a path on that cluster), followed by
`(copy in DIR)` once `slurm download` or the Results view copied it here.
"""

from __future__ import annotations

import argparse
import json

from msquant_desktop.cli.context import CliContext
from msquant_desktop.domain.json_contract import envelope
from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.domain.results import ResultListing, evaluation_cells, output_label, result_listings
from msquant_desktop.services import job_lifecycle as lifecycle
from msquant_desktop.store.jobs_repo import JobRepository

COLUMNS = (
    "ID",
    "SCHEME",
    "SIZE",
    "PERPLEXITY",
    "Δ",
    "TOP-1",
    "DECODE_TOK/S",
    "PEAK_MIB",
    "EVALUATION",
    "OUTPUT",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "results",
        help="list finished quantizations with their evaluations (perplexity, Δ, speed, memory)",
        description="List finished quantizations, newest first, each with its newest evaluation "
        "(perplexity and Δ vs the original, top-1 agreement, decode tokens/s, peak memory) and "
        "verification.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON array (for scripts)")
    parser.set_defaults(func=handle)


def row_cells(listing: ResultListing) -> list[str]:
    """The table cells of one result (the order of COLUMNS)."""
    evaluation = listing.evaluation or {}
    failed = "failed" in evaluation
    figures = {} if failed else evaluation
    perplexity, delta, decode, peak = evaluation_cells(listing.evaluation)
    if listing.evaluating:
        state = "running"
    elif listing.evaluation_job_id is None:
        state = "-"
    else:
        state = f"{'failed (job ' if failed else 'job '}{listing.evaluation_job_id}{')' if failed else ''}"
    agreement = figures.get("top1_agreement")
    return [
        str(listing.job_id),
        listing.result.scheme,
        human_bytes(listing.result.size_after),
        perplexity,
        delta,
        f"{agreement:.1%}" if isinstance(agreement, int | float) else "-",
        decode,
        peak,
        state,
        output_label(listing.result.output, listing.cluster, listing.local_copy),
    ]


def format_table(listings: list[ResultListing]) -> str:
    rows = [list(COLUMNS)] + [row_cells(listing) for listing in listings]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i in (1, 8) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    repo = JobRepository(ctx.conn)
    lifecycle.settle_unwatched(repo)  # a job whose supervisor is gone gets its final state first
    listings = result_listings(repo.list_jobs())
    if args.json:
        print(json.dumps(envelope(results=[listing.to_dict() for listing in listings]), indent=1))
        return 0
    if not listings:
        print("no finished quantizations yet (start one with: msquant-desktop quantize ... or in the app)")
        return 0
    print(format_table(listings))
    return 0
