"""What every subcommand gets: the app's paths, settings and (lazily) the store."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

from msquant_desktop.config.paths import AppPaths
from msquant_desktop.config.settings_store import load_settings
from msquant_desktop.domain.settings import Settings
from msquant_desktop.store import connect


@dataclass
class CliContext:
    paths: AppPaths
    _conn: sqlite3.Connection | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.paths.settings_file)
        return self._settings

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.paths.database)
        return self._conn


_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")
MAX_ID = 2**63 - 1
"""SQLite's largest integer: a job id beyond it cannot exist (and would overflow the query)."""


def job_id_arg(text: str) -> int:
    """argparse type for a job id: a whole number from 1 to SQLite's largest integer."""
    import argparse

    # int() also takes " 7", "7\n", "1_0" and other scripts' digits ("٣"): a job id is ASCII digits only.
    if not _DIGITS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a whole number)") from None
    value = int(text, 10)
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text} is not a job id (ids run from 1 to {MAX_ID})")
    return value


def non_negative_float(text: str) -> float:
    """argparse type for seconds and the like: a finite number, 0 or more."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number of 0 or more")
    return value


MAX_NAME = 200


def job_name_arg(text: str) -> str:
    """argparse type for a job's name: one line of text (it is shown in tables and logs)."""
    import argparse

    if any(ord(c) < 32 or ord(c) == 127 or c in "\x85\u2028\u2029" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: a job name must be one line without control characters")
    if len(text) > MAX_NAME:
        raise argparse.ArgumentTypeError(f"a job name is at most {MAX_NAME} characters (got {len(text)})")
    return text


def positive_int(text: str) -> int:
    """argparse type for counts and limits: a whole number, 1 or more (and not absurdly large)."""
    import argparse

    if not _INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    value = int(text, 10)
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} must be from 1 to 1,000,000")
    return value


def _bounded_int(text: str, low: int, high: int, what: str) -> int:
    import argparse

    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    # More than 20 digits is out of any range here; int() would refuse past 4,300 digits anyway.
    value = int(stripped, 10) if len(stripped) <= 20 else None
    if value is None or not low <= value <= high:
        shown = stripped if len(stripped) <= 24 else stripped[:20] + "…"
        raise argparse.ArgumentTypeError(f"{shown} must be {what} from {low:,} to {high:,}")
    return value


MAX_GPUS_PER_JOB = 64
"""GPUs one job may reserve (one machine, or one SLURM node's gres): more is a typo, not a request."""


def gpu_count_arg(text: str) -> int:
    """argparse type for --gpus: a whole number from 0 to MAX_GPUS_PER_JOB."""
    return _bounded_int(text, 0, MAX_GPUS_PER_JOB, "a GPU count")


def non_negative_int(text: str) -> int:
    """argparse type for retries and the like: a whole number from 0 to 1,000,000."""
    return _bounded_int(text, 0, 1_000_000, "a whole number")


def token_count_arg(text: str) -> int:
    """argparse type for context lengths and token budgets: 1 to 100 million tokens."""
    return _bounded_int(text, 1, 100_000_000, "a token count")


def port_arg(text: str) -> int:
    """argparse type for a TCP port: 1 to 65535."""
    return _bounded_int(text, 1, 65_535, "a port")
