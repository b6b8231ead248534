"""How this program re-invokes itself for helper processes (job supervisor, quantize worker, ...).

A frozen PyInstaller bundle has no `python -m`: its executable *is* the entry point and understands
the same subcommands.  Everything that starts a helper process goes through `self_command()` so both
installs behave the same.  Standard library only.
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def self_command(*args: str) -> list[str]:
    """argv that runs this program's CLI with `args`, frozen or not."""
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "msquant_desktop", *args]
