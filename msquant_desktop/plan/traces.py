"""Load traces for the replay: a CSV of `time,requests_per_s`, or a built-in shape.

The CSV holds one point per line (seconds from the start, requests per second); a first line that is
not numeric is a header, lines starting with `#` are comments.  Between points the rate is
interpolated linearly; before the first and after the last it stays at their values.

Shapes (rates in requests/s, times in seconds; the projectriff team's advice for autoscaler tests is
step, square and sine loads):
* `step`: `low` until `at` (default: half the duration), then `high`;
* `square`: `low` for half a `period`, then `high` for half, repeated;
* `sine`: (low + high)/2 + (high − low)/2 · sin(2πt/period);
* `diurnal`: a day: low + (high − low)·(1 − cos(2π(t − 4 h)/24 h))/2, lowest at 04:00 and highest
  at 16:00 (t = 0 is midnight).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = ("step", "square", "sine", "diurnal")
DAY_S = 86_400.0


class TraceError(ValueError):
    """A trace file or shape that cannot be used; the message says why."""


@dataclass(frozen=True)
class Trace:
    """Rates at points in time; `rate_at` interpolates."""

    times: np.ndarray
    rates: np.ndarray
    name: str

    @property
    def duration_s(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0

    def on_ticks(self, tick_s: float, duration_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(tick start times, rate at each tick start) over `duration_s` (default: the trace's)."""
        if tick_s <= 0:
            raise TraceError("the tick must be > 0 s")
        span = self.duration_s if duration_s is None else duration_s
        n = max(1, math.ceil(span / tick_s - 1e-9))
        t = np.arange(n) * tick_s
        return t, np.interp(t + float(self.times[0]), self.times, self.rates)


def load_trace_csv(path: str | Path) -> Trace:
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot read {file}: {exc}") from exc
    points: list[tuple[float, float]] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            t, rate = float(row[0]), float(row[1])
        except (ValueError, IndexError) as exc:
            if not points and number == 1:
                continue  # a header
            raise TraceError(f"{file} line {number}: expected `time,requests_per_s`, got {row!r}") from exc
        if not (math.isfinite(t) and math.isfinite(rate)) or rate < 0:
            raise TraceError(f"{file} line {number}: a rate must be a finite number ≥ 0")
        points.append((t, rate))
    if not points:
        raise TraceError(f"{file} holds no `time,requests_per_s` points")
    points.sort()
    times = np.array([p[0] for p in points])
    if np.any(np.diff(times) <= 0):
        raise TraceError(f"{file}: two points share a time")
    return Trace(times, np.array([p[1] for p in points]), file.name)


def shape(
    name: str,
    low: float,
    high: float,
    duration_s: float | None = None,
    period_s: float | None = None,
    at_s: float | None = None,
    resolution_s: float = 1.0,
) -> Trace:
    """One of SHAPES sampled every `resolution_s` (diurnal defaults to a day, the others to an hour)."""
    if name not in SHAPES:
        raise TraceError(f"unknown shape {name!r}; choose one of {', '.join(SHAPES)}")
    if low < 0 or high < 0:
        raise TraceError("rates must be ≥ 0")
    duration = duration_s if duration_s is not None else (DAY_S if name == "diurnal" else 3600.0)
    if duration <= 0:
        raise TraceError("the duration must be > 0 s")
    t = np.arange(0.0, duration + resolution_s, resolution_s)
    if name == "step":
        at = duration / 2 if at_s is None else at_s
        rates = np.where(t < at, low, high)
    elif name == "square":
        period = period_s or duration / 4
        rates = np.where((t % period) < period / 2, low, high)
    elif name == "sine":
        period = period_s or duration / 2
        rates = (low + high) / 2 + (high - low) / 2 * np.sin(2 * math.pi * t / period)
    else:
        period = period_s or DAY_S
        rates = low + (high - low) * (1 - np.cos(2 * math.pi * (t - 4 * 3600.0) / period)) / 2
    return Trace(t, rates.astype(float), name)
