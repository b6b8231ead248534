"""`msquant-desktop gpu [--json] [--watch SECONDS]`: print GPU snapshots from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from msquant_desktop.cli.context import CliContext
from msquant_desktop.domain.gpu import MIN_SAMPLE_INTERVAL_S as MIN_INTERVAL_S
from msquant_desktop.domain.gpu import GpuReading, describe_throttle

EXIT_NO_GPU = 4
"""Distinct from failures (1) and usage errors (2): scripts can tell "no GPU here" apart."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gpu",
        help="print the GPUs' utilization, memory, temperature, power and processes",
        description="Print one snapshot of every NVIDIA GPU (or keep printing with --watch). "
        f"Exits {EXIT_NO_GPU} when no GPU can be read.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per snapshot")
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help=f"print a snapshot every SECONDS (at least {MIN_INTERVAL_S}) until interrupted",
    )
    parser.add_argument("--count", type=int, metavar="N", help="with --watch: stop after N snapshots")
    parser.set_defaults(func=handle)


def reading_to_dict(reading: GpuReading) -> dict[str, Any]:
    data = asdict(reading)
    for gpu, snapshot in zip(data["gpus"], reading.gpus, strict=True):
        gpu["throttle_reasons"] = list(snapshot.throttle_words)
    return data


def format_reading(reading: GpuReading) -> str:
    if reading.unavailable:
        return reading.unavailable
    lines = [f"{len(reading.gpus)} GPU(s), driver {reading.driver_version or '—'}"]
    for g in reading.gpus:
        if g.error:
            lines.append(f"GPU {g.index} {g.name}: not answering ({g.error})")
            continue

        def fmt(value: float | None, pattern: str) -> str:
            return "—" if value is None else pattern.format(value)

        memory = "—"
        if g.memory_used_bytes is not None and g.memory_total_bytes:
            memory = f"{g.memory_used_bytes / 2**30:.1f}/{g.memory_total_bytes / 2**30:.0f} GiB"
        lines.append(
            f"GPU {g.index} {g.name}: util {fmt(g.utilization_gpu, '{:.0f}%')}, mem {memory}, "
            f"{fmt(g.temperature_c, '{:.0f} °C')}, {fmt(g.power_w, '{:.0f}')}/{fmt(g.power_limit_w, '{:.0f}')} W, "
            f"throttling: {describe_throttle(g.throttle_mask)}"
        )
    for p in reading.processes:
        job = f" [{p.job.describe()}]" if p.job else ""
        mib = "—" if p.used_memory_bytes is None else f"{p.used_memory_bytes / 2**20:.0f} MiB"
        lines.append(f"  pid {p.pid} ({p.user}) on GPU {p.gpu_index}: {mib}{job}  {p.command[:100]}")
    return "\n".join(lines)


def handle(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.watch is not None and args.watch < MIN_INTERVAL_S:
        print(f"msquant-desktop gpu: --watch must be at least {MIN_INTERVAL_S} seconds", file=sys.stderr)
        return 2
    try:
        from msquant_desktop.gpu.monitor import GpuMonitor  # NVML and numpy: only when asked

        monitor = GpuMonitor()
    except ValueError as exc:  # a bad MSQUANT_FAKE_NVML scenario name
        print(f"msquant-desktop gpu: {exc}", file=sys.stderr)
        return 2
    printed = 0
    try:
        while True:
            reading = monitor.sample()
            if reading.unavailable:
                print(reading.unavailable, file=sys.stderr)
                return EXIT_NO_GPU
            print(json.dumps(reading_to_dict(reading)) if args.json else format_reading(reading), flush=True)
            printed += 1
            if args.watch is None or (args.count is not None and printed >= args.count):
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        monitor.close()
