"""`msquant-desktop doctor [--json] [--clean [--yes]]`: orphans, lost GPU memory, throttling."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from msquant_desktop.cli.context import CliContext, non_negative_float
from msquant_desktop.domain.gpu import DoctorReport
from msquant_desktop.domain.json_contract import with_schema

EXIT_FINDINGS = 5
"""Something was found (0: nothing wrong)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="find orphaned job processes, GPU memory nobody holds and throttled GPUs",
        description="Look for processes carrying a job marker whose job is over or whose supervisor is "
        "gone, GPU memory held by processes whose parent is init or by no process at all, and GPUs "
        f"slowed by heat or power caps. Exits 0 when nothing is wrong (with --clean: when all it found "
        f"was cleaned up), {EXIT_FINDINGS} otherwise.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="end the orphans' process trees (TERM, then KILL after --grace); asks first unless --yes",
    )
    parser.add_argument("--yes", action="store_true", help="with --clean: do not ask")
    parser.add_argument("--grace", type=non_negative_float, default=5.0, metavar="SECONDS", help="TERM -> KILL wait (5)")
    parser.set_defaults(func=handle)


def report_to_dict(report: DoctorReport) -> dict[str, Any]:
    return {
        "healthy": report.healthy,
        "gpu_status": report.gpu_status,
        "findings": [f.to_dict() for f in report.findings],
    }


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    # Imported here: every subcommand builds this parser, and NVML/psutil/numpy cost ~16 MB and ~0.25 s.
    from msquant_desktop.gpu.monitor import GpuMonitor
    from msquant_desktop.services.gpu_doctor import clean_up, diagnose

    try:
        monitor = GpuMonitor()
    except ValueError as exc:
        print(f"msquant-desktop doctor: {exc}", file=sys.stderr)
        return 2
    try:
        reading = monitor.sample()
    finally:
        monitor.close()
    report = diagnose(reading)
    if args.json and not args.clean:
        print(json.dumps(with_schema(report_to_dict(report)), indent=2))
        return 0 if report.healthy else EXIT_FINDINGS
    if not args.json:
        print(report.gpu_status)
        if report.healthy:
            print("Nothing wrong found.")
        for finding in report.findings:
            hint = "  [can be cleaned up]" if finding.cleanable else ""
            print(f"- {finding.kind.value}: {finding.message}{hint}")
            if finding.command:
                print(f"    {finding.command[:120]}")
    if not args.clean:
        return 0 if report.healthy else EXIT_FINDINGS
    cleanable = report.cleanable
    if not cleanable:
        print("Nothing to clean up.")
        return 0 if report.healthy else EXIT_FINDINGS
    if not args.yes:
        if not sys.stdin.isatty():
            print("msquant-desktop doctor: --clean needs --yes when not run from a terminal", file=sys.stderr)
            return 2
        answer = input(
            f"End {len(cleanable)} process tree(s) (TERM, then KILL after {args.grace:g} s)? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was touched.")
            return EXIT_FINDINGS
    outcomes = clean_up(cleanable, args.grace)
    if args.json:
        data = report_to_dict(report)
        data["cleanup"] = [
            {"pid": o.pid, "ended": o.ended, "killed": o.killed, "skipped": o.skipped} for o in outcomes
        ]
        print(json.dumps(with_schema(data), indent=2))
    else:
        for outcome in outcomes:
            print(outcome.describe())
    # Clean only when everything found is gone now: throttling or memory nobody holds is still there.
    left = [f for f in report.findings if not f.cleanable]
    failed = [
        o for o in outcomes if o.skipped and not o.skipped.startswith(("already gone", "pid now belongs"))
    ]
    return 0 if not left and not failed else EXIT_FINDINGS
