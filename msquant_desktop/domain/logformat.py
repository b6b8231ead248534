"""The stream-tagged log format shared by the supervisor, the run folder's log and the app.

Every output line of a job is stored and forwarded as one line with a two-byte tag:

    b"O " + line   a stdout line
    b"E " + line   a stderr line
    b"M " + json   a message of the supervisor itself (started, exited; skipped in the app's stream); never job output

Lines end with b"\n"; a job's last line without a newline gets one.  The text is the job's bytes,
decoded as UTF-8 with replacement only for display.  Standard library only.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from msquant_desktop.domain.markers import EVENT_PREFIX

if TYPE_CHECKING:
    from typing import Any

STDOUT_TAG = b"O "
STDERR_TAG = b"E "
META_TAG = b"M "
_EVENT_PREFIX_BYTES = EVENT_PREFIX.encode()


def tag_lines(tag: bytes, data: bytes) -> bytes:
    """Tag every line of `data` (complete lines, each ending in b"\\n")."""
    if not data:
        return b""
    body = data[:-1] if data.endswith(b"\n") else data
    return tag + body.replace(b"\n", b"\n" + tag) + b"\n"


def meta_line(message: dict[str, Any]) -> bytes:
    return META_TAG + json.dumps(message, separators=(",", ":")).encode() + b"\n"


class DecodedChunk:
    """What a block of tagged lines holds, grouped for the UI.

    A plain class, not a dataclass: the supervisor imports this module and `dataclasses` costs
    milliseconds on the click -> running path.
    """

    __slots__ = ("events", "line_count", "metas", "texts")

    def __init__(
        self,
        texts: list[tuple[str, bool]],
        events: list[dict[str, Any]],
        metas: list[dict[str, Any]],
        line_count: int,
    ) -> None:
        self.texts = texts
        """Runs of consecutive lines of one stream: (text ending in a newline, is_stderr)."""
        self.events = events
        self.metas = metas
        self.line_count = line_count


def parse_event(line: bytes) -> dict[str, Any] | None:
    """The event carried by a stdout line, or None (not an event, or JSON that is not an object)."""
    if not line.startswith(_EVENT_PREFIX_BYTES):
        return None
    try:
        value = json.loads(line[len(_EVENT_PREFIX_BYTES) :].decode("utf-8", "replace"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decode_tagged(block: bytes) -> DecodedChunk:
    """Split complete tagged lines into runs of text per stream, events and supervisor messages.

    Event lines are taken out of the text (they are data, shown as progress and results).  The common
    case — only stdout, no events — is handled with one bytes replace, so a flood stays cheap.
    """
    if not block:
        return DecodedChunk([], [], [], 0)
    line_count = block.count(b"\n")
    if (
        block.startswith(STDOUT_TAG)
        and b"\nE " not in block
        and b"\nM " not in block
        and _EVENT_PREFIX_BYTES not in block
    ):
        # Every line starts with b"O " here: one C-level replace (a MULTILINE regex took 2.3 ms per
        # 64 KiB, the replace 0.05 ms).
        text = block[2:].replace(b"\nO ", b"\n").decode("utf-8", "replace")
        return DecodedChunk([(text, False)], [], [], line_count)
    texts: list[tuple[str, bool]] = []
    events: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    run: list[bytes] = []
    run_is_err = False
    for line in block.split(b"\n"):
        if not line:
            continue
        tag, body = line[:2], line[2:]
        if tag == META_TAG:
            try:
                metas.append(json.loads(body))
            except ValueError:
                pass
            continue
        is_err = tag == STDERR_TAG
        if not is_err:
            event = parse_event(body)
            if event is not None:
                events.append(event)
                continue
        if run and is_err != run_is_err:
            texts.append((b"\n".join(run).decode("utf-8", "replace") + "\n", run_is_err))
            run = []
        run_is_err = is_err
        run.append(body)
    if run:
        texts.append((b"\n".join(run).decode("utf-8", "replace") + "\n", run_is_err))
    return DecodedChunk(texts, events, metas, line_count)


class LineSplitter:
    """Cuts a byte stream into complete lines; keeps the unfinished tail for the next chunk."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        """Complete lines from `data` (and earlier tails), possibly empty."""
        if not data:
            return b""
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """The unfinished tail as a complete line (end of stream)."""
        tail, self._tail = self._tail, b""
        return tail + b"\n" if tail else b""

    @property
    def pending(self) -> int:
        return len(self._tail)


# tqdm's default bar: "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate}]"
# (the bracket may be cut short by `bar_format`), and the total-less form "{desc}: {n}it [{elapsed}, {rate}]".
_PROGRESS_LINE = re.compile(
    r" *(?:.*?: *)?\d{1,3}%\|[^|]*\|(?: *[\d.]+[kMGTP]?(?:/[\d.?]+[kMGTP]?)?)?(?: *\[[^\]]*\])?\s*"
    r"| *(?:.*?: *)?\d+(?:\.\d+)?[kMGTP]?(?:it|B)? \[\d+:\d+(?::\d+)?, [^\]]*\]\s*"
)


def is_progress_line(text: str) -> bool:
    """A progress bar as tqdm draws it (what a terminal shows last after its \\r redraws).

    Such lines are written to stderr, but they are progress, not errors: the log shows them as such."""
    return ("%|" in text or "[" in text) and bool(_PROGRESS_LINE.fullmatch(text))


def split_progress(text: str) -> list[tuple[str, bool]]:
    """Lines of stderr `text` (each ending in a newline) grouped into runs: (text, is_progress)."""
    runs: list[tuple[str, bool]] = []
    for line in text.splitlines(keepends=True):
        progress = is_progress_line(line.rstrip("\n"))
        if runs and runs[-1][1] == progress:
            runs[-1] = (runs[-1][0] + line, progress)
        else:
            runs.append((line, progress))
    return runs
