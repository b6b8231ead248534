"""Start-up to window shown: the PyInstaller bundle vs `python -m msquant_desktop`, and the bundle's size.

Run:  .venv/bin/python bench/startup_bench.py [--runs 5]
Needs the bundle built (bash packaging/build.sh).  Offscreen, with a fresh data dir per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "dist" / "msquant-desktop" / "msquant-desktop"


def startup_seconds(argv: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "MSQUANT_DATA_DIR": tmp,
            "MSQUANT_STARTUP_PROBE": "1",
        }
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    for line in proc.stdout.splitlines():
        if line.startswith("startup-to-window-shown"):
            return float(line.split()[1])
    raise RuntimeError(f"no startup figure from {argv}: {proc.stdout}{proc.stderr}")


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    candidates = {"python -m msquant_desktop": [sys.executable, "-m", "msquant_desktop"]}
    if BUNDLE.exists():
        candidates["bundle (onedir)"] = [str(BUNDLE)]
        size, count = tree_size(BUNDLE.parent)
        print(f"bundle size: {size / 1e6:.0f} MB in {count} files ({BUNDLE.parent})")
    else:
        print("bundle not built: run bash packaging/build.sh to include it")
    for name, argv in candidates.items():
        first = startup_seconds(argv)
        rest = [startup_seconds(argv) for _ in range(args.runs)]
        print(
            f"{name:28s} first run {first:.2f} s; median of {args.runs} {statistics.median(rest):.2f} s "
            f"(min {min(rest):.2f}, max {max(rest):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
