"""`msquant-desktop gpu [--json] [--watch SECONDS]`: print GPU snapshots from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from msquant_desktop.cli.context import CliContext, non_negative_float, positive_int
from msquant_desktop.domain.gpu import MIN_SAMPLE_INTERVAL_S as MIN_INTERVAL_S
from msquant_desktop.domain.gpu import GpuReading, GpuSnapshot, describe_throttle
from msquant_desktop.services.job_json import envelope

EXIT_NO_GPU = 4
"""Distinct from failures (1) and usage errors (2): scripts can tell "no GPU here" apart."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gpu",
        help="print the GPUs' utilization, memory, temperature, power and processes",
        description="Print one snapshot of every NVIDIA GPU (or keep printing with --watch). "
        f"Exits {EXIT_NO_GPU} when no GPU can be read.",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per snapshot, one per line (see README)"
    )
    parser.add_argument(
        "--watch",
        type=non_negative_float,
        metavar="SECONDS",
        help=f"print a snapshot every SECONDS (at least {MIN_INTERVAL_S}) until interrupted",
    )
    parser.add_argument(
        "--count", type=positive_int, metavar="N", help="with --watch: stop after N snapshots"
    )
    parser.set_defaults(func=handle)


def reading_to_dict(reading: GpuReading) -> dict[str, Any]:
    """One snapshot in the documented `gpu --json` shape (README.md, "JSON output"): written out
    field by field, so a new field in the internal dataclasses never changes the contract unnoticed."""
    return envelope(
        timestamp=reading.timestamp,
        driver_version=reading.driver_version,
        gpus=[_gpu_json(g) for g in reading.gpus],
        processes=[
            {
                "pid": p.pid,
                "gpu_index": p.gpu_index,
                "used_memory_bytes": p.used_memory_bytes,
                "user": p.user,
                "command": p.command,
                "ppid": p.ppid,
                "job_id": p.job.job_id if p.job else None,
                "job_run_dir": p.job.run_dir if p.job else None,
            }
            for p in reading.processes
        ],
        host=None
        if reading.host is None
        else {
            "cpu_percent": reading.host.cpu_percent,
            "memory_used_bytes": reading.host.memory_used_bytes,
            "memory_total_bytes": reading.host.memory_total_bytes,
        },
    )


def _gpu_json(g: GpuSnapshot) -> dict[str, Any]:
    return {
        "index": g.index,
        "name": g.name,
        "uuid": g.uuid,
        "error": g.error,
        "utilization_gpu_percent": g.utilization_gpu,
        "utilization_memory_percent": g.utilization_memory,
        "memory_used_bytes": g.memory_used_bytes,
        "memory_total_bytes": g.memory_total_bytes,
        "temperature_c": g.temperature_c,
        "power_w": g.power_w,
        "power_limit_w": g.power_limit_w,
        "sm_clock_mhz": g.sm_clock_mhz,
        "memory_clock_mhz": g.memory_clock_mhz,
        "fan_percent": g.fan_percent,
        "throttle_reasons": list(g.throttle_words),
    }


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
