"""Turn llmcompressor's tqdm bars and log messages into progress and stage events.  Standard library only.

llmcompressor's sequential pipeline draws `(k/N): Calibrating: x/total` and `(k/N): Propagating: x/total`
on stderr (N = decoder layers + 1); GPTQ logs `Quantizing 1 module(s): ['model.layers.L....']` per module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

SUBGRAPH_BAR_RE = re.compile(
    r"\((\d+)/(\d+)\): (Calibrating|Propagating)\S*\s*(?:\d+%\|[^|]*\|\s*)?(\d+)/(\d+)"
)
MODULE_RE = re.compile(r"Quantizing \d+ module\(s\): \[(.*)\]")
COMPRESSING_RE = re.compile(r"Compressing model:\s*(?:\d+%\|[^|]*\|\s*)?(\d+)/(\d+)")


class ProgressTracker:
    """Feeds on text (stderr segments, log messages) and calls `emit(event)` with throttled events.

    Calibration is the long phase, so `fraction` is the share of the N subgraphs done, each split
    half Calibrating, half Propagating; `eta_s` extrapolates the time since the first bar.
    """

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        min_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._min_interval = min_interval_s
        self._clock = clock
        self._started: float | None = None
        self._last_emit = -1e9
        self._last_key: tuple[int, str] | None = None
        self._module = ""
        self._pending = ""
        self.fraction = 0.0

    def feed_stderr(self, text: str) -> None:
        """A chunk of stderr; tqdm separates redraws with carriage returns.

        A chunk may end inside a bar; that tail waits for the rest unless it is already a whole bar
        (tqdm ends each redraw with its `[elapsed<eta, rate]` bracket).
        """
        segments = re.split(r"[\r\n]", self._pending + text)
        self._pending = segments.pop()
        if self._pending.endswith("]"):
            segments.append(self._pending)
            self._pending = ""
        elif len(self._pending) > 4096:
            self._pending = ""
        for segment in segments:
            match = SUBGRAPH_BAR_RE.search(segment)
            if match:
                k, n, phase, done, total = match.groups()
                self._bar(int(k), int(n), phase, int(done), int(total))
                continue
            match = COMPRESSING_RE.search(segment)
            if match:
                done, total = (int(g) for g in match.groups())
                self._compressing(done, total)

    def feed_log(self, message: str) -> None:
        """One llmcompressor log message (from a loguru sink)."""
        match = MODULE_RE.search(message)
        if match:
            names = [n.strip().strip("'\"") for n in match.group(1).split(",") if n.strip()]
            self._module = names[0] if len(names) == 1 else f"{len(names)} modules"
            self._emit({"type": "stage", "stage": "GPTQ", "module": self._module})

    def _compressing(self, done: int, total: int) -> None:
        """The final "Compressing model" bar: the whole run for data-free schemes, a blink after GPTQ."""
        now = self._clock()
        if done < total and now - self._last_emit < self._min_interval:
            return
        self._last_emit = now
        self.fraction = max(self.fraction, done / total if total else 1.0)
        self._emit(
            {
                "type": "progress",
                "stage": "Compressing",
                "phase": "Compressing",
                "done": done,
                "total": total,
                "fraction": round(self.fraction, 4),
                "eta_s": None,
            }
        )

    def _bar(self, k: int, n: int, phase: str, done: int, total: int) -> None:
        now = self._clock()
        if self._started is None:
            self._started = now
        inner = (done / total if total else 1.0) * 0.5 + (0.5 if phase == "Propagating" else 0.0)
        fraction = min(1.0, max(self.fraction, ((k - 1) + inner) / n if n else 0.0))
        key = (k, phase)
        finished_bar = total > 0 and done >= total
        if key == self._last_key and not finished_bar and now - self._last_emit < self._min_interval:
            self.fraction = fraction
            return
        self._last_key = key
        self._last_emit = now
        self.fraction = fraction
        elapsed = now - self._started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 and elapsed > 0 else None
        self._emit(
            {
                "type": "progress",
                "stage": f"{phase} layer {k}/{n}",
                "phase": phase,
                "layer": k,
                "layers": n,
                "done": done,
                "total": total,
                "fraction": round(fraction, 4),
                "eta_s": round(eta, 1) if eta is not None else None,
            }
        )
