"""The lines a log view holds: a bounded ring of the newest lines, each with its kind.

Texts and kinds sit in two `deque(maxlen=capacity)`s of plain `str` and `int`, so a flood allocates
no per-line container objects (nothing for the cyclic garbage collector to walk) and every bulk
step — extend, evict, join — runs in C.  Lines are numbered from the start of the log (`first` is
the number of the oldest line held), so a selection or a scroll position survives older lines
falling out.  What is not held is counted, never lost silently: `head_hidden` lines before the
first one, and inline markers ("… N lines not shown") where lines were skipped in the middle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import islice, repeat

STDOUT = 0
STDERR = 1
MARKER = 2
PROGRESS = 3
"""A progress bar's last state (tqdm on stderr): shown as progress, not as an error."""


def marker_text(count: int) -> str:
    return f"… {count:,} lines not shown — open the full log"


class LogBuffer:
    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._texts: deque[str] = deque(maxlen=self._capacity)
        self._kinds: deque[int] = deque(maxlen=self._capacity)
        self._markers: dict[int, int] = {}
        """Line number of an inline marker -> how many lines it stands for."""
        self.first = 0
        """The number (from the start of the log) of the oldest line held."""
        self.head_hidden = 0
        """Lines of the log before the oldest one held (scrolled out, skipped or never loaded)."""
        self.max_chars = 0
        """The longest line added since the last clear (for the horizontal extent)."""
        self.version = 0
        """Changes whenever the content does (views compare it to know when to redo their layout)."""

    # -- size ---------------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        """Keep the newest `capacity` lines; older ones count as hidden."""
        capacity = max(1, capacity)
        if capacity == self._capacity:
            return
        drop = max(0, len(self._texts) - capacity)
        self._account_evicted(drop)
        self._capacity = capacity
        self._texts = deque(islice(self._texts, drop, None), maxlen=capacity)
        self._kinds = deque(islice(self._kinds, drop, None), maxlen=capacity)
        self.version += 1

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def end(self) -> int:
        """The number the next line will get."""
        return self.first + len(self._texts)

    # -- changes ------------------------------------------------------------------------------------
    def clear(self) -> None:
        self._texts.clear()
        self._kinds.clear()
        self._markers.clear()
        self.first = 0
        self.head_hidden = 0
        self.max_chars = 0
        self.version += 1

    def extend(self, lines: list[str], kind: int) -> None:
        """Add lines (without their newlines) of one kind; the oldest fall out past the capacity."""
        if not lines:
            return
        if len(lines) > self._capacity:
            self.skip(len(lines) - self._capacity)
            lines = lines[-self._capacity :]
        self._account_evicted(len(self._texts) + len(lines) - self._capacity)
        self._texts.extend(lines)
        self._kinds.extend(repeat(kind, len(lines)))
        longest = max(map(len, lines))
        if longest > self.max_chars:
            self.max_chars = longest
        self.version += 1

    def add_marker(self, count: int) -> None:
        """`count` lines were left out here (before what comes next)."""
        if count <= 0:
            return
        if not self._texts:
            self.head_hidden += count
            self.version += 1
            return
        last = self.end - 1
        if last in self._markers:  # two gaps with nothing between them are one gap
            self._markers[last] += count
            self._texts[-1] = marker_text(self._markers[last])
            self.version += 1
            return
        self.extend([marker_text(count)], MARKER)
        self._markers[self.end - 1] = count

    def skip(self, count: int) -> None:
        """`count` lines newer than all held were dropped unseen: so is everything held (newer lines
        fill the whole ring, so they would have pushed it out anyway)."""
        self._account_evicted(len(self._texts))
        self._texts.clear()
        self._kinds.clear()
        self.head_hidden += count
        self.first += count
        self.version += 1

    def _account_evicted(self, count: int) -> None:
        """The oldest `count` lines are about to leave: count them (a marker by what it stands for)."""
        if count <= 0:
            return
        count = min(count, len(self._texts))
        new_first = self.first + count
        hidden = count
        for number in [n for n in self._markers if n < new_first]:
            hidden += self._markers.pop(number) - 1
        self.head_hidden += hidden
        self.first = new_first

    # -- reading ------------------------------------------------------------------------------------
    def text(self, index: int) -> str:
        return self._texts[index]

    def kind(self, index: int) -> int:
        return self._kinds[index]

    def entries(self, start: int, stop: int | None = None) -> Iterator[tuple[str, int]]:
        """(text, kind) of the held lines [start, stop) by index."""
        return zip(islice(self._texts, start, stop), islice(self._kinds, start, stop), strict=True)

    def join(self, start: int = 0, stop: int | None = None) -> str:
        return "\n".join(islice(self._texts, start, stop))

    def last(self) -> str:
        return self._texts[-1] if self._texts else ""

    def is_marker(self, index: int) -> bool:
        return self._kinds[index] == MARKER

    @property
    def total_hidden(self) -> int:
        """Lines of the log that are not held: before the first line and behind inline markers."""
        return self.head_hidden + sum(self._markers.values())
