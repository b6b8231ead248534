"""Recorded real outputs under tests/slurm/fixtures (SOURCES.md names where each comes from)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(name: str) -> str:
    """A fixture's text without its `##` source header."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("##")) + "\n"
