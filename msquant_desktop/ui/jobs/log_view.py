"""A live log view that never holds the event loop up, even under a flood of output.

The lines live in a bounded ring (`LogBuffer`: the newest `max_lines`, default 10,000) and the view
paints only the rows on screen, so its cost per frame does not grow with the log.  Output arrives
as text chunks, queued as they come (nearly free) and taken in once per frame (16 ms), at most
MAX_LINES_PER_SLICE lines a frame; when more than a ringful is queued, only the newest ringful is
kept and the rest is counted.  Whatever the view does not hold is announced by a "… N lines not
shown — open the full log" line (before the first line held, or inline where the supervisor or
the app skipped lines); the full log is always in the run folder.

Rows are drawn in a fixed-pitch font.  With Wrap on, a long line takes as many rows as it needs at
the view's width, cut by characters as a terminal does (cheap to lay out: rows = length / columns).
The vertical scroll bar counts lines, not rows (as QPlainTextEdit's does), so wrapping never needs
a layout of the whole log.  Selection is by whole lines (click, shift-click, drag; Ctrl+A), copied
with Ctrl+C or the context menu.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.logformat import split_progress
from msquant_desktop.ui.colors import MUTED, STDERR_TINT, readable
from msquant_desktop.ui.colors import STDERR as STDERR_HUE
from msquant_desktop.ui.jobs.log_buffer import MARKER, PROGRESS, STDERR, STDOUT, LogBuffer, marker_text

FRAME_MS = 16
"""Queued output is taken in once per frame."""
MAX_LINES_PER_SLICE = 20_000
"""At most this many lines are taken in per frame (a few ms of work), the rest on the next ones."""
STDERR_BACKGROUND = STDERR_TINT
MATCH_BACKGROUND = QColor(255, 214, 0, 150)
MARGIN = 4
LONG_LINE = 2000
"""Lines longer than this are drawn only where they are on screen (no-wrap mode)."""


def monospace() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class _Pending:
    """Queued output: text of one kind (split into lines only when taken in), or a gap marker."""

    __slots__ = ("count", "kind", "lines", "part_counts", "parts", "size")

    def __init__(self, kind: int, text: str = "", count: int = 0) -> None:
        self.kind = kind
        self.parts = deque([text] if text else [])  # complete lines, each part ending in a newline
        self.part_counts = deque([count] if text else [])
        self.size = len(text)
        self.lines: list[str] | None = None
        self.count = count  # lines, or for a marker the lines it stands for

    def add(self, text: str, count: int) -> None:
        self.parts.append(text)
        self.part_counts.append(count)
        self.size += len(text)
        self.count += count

    def drop_parts(self, most: int) -> int:
        """Drop whole unsplit parts from the front, at most `most` lines; returns the lines dropped.
        (Lines that will be skipped anyway are never split: in a flood most of a frame's text is.)"""
        dropped = 0
        while self.lines is None and len(self.parts) > 1 and self.part_counts[0] <= most - dropped:
            self.size -= len(self.parts.popleft())
            dropped += self.part_counts.popleft()
        self.count -= dropped
        return dropped

    def split(self) -> list[str]:
        if self.lines is None:
            self.lines = "".join(self.parts)[:-1].split("\n")
            self.parts.clear()
            self.part_counts.clear()
        return self.lines


class LogLinesView(QAbstractScrollArea):
    """Paints the visible part of a `LogBuffer`; scrolls by lines; selects whole lines."""

    sig_marker_activated = Signal()
    """A "lines not shown" line was double-clicked."""
    sig_follow_changed = Signal(bool)
    """The user scrolled away from the newest line (False) or back to it (True)."""

    def __init__(self, max_lines: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buffer = LogBuffer(max_lines)
        self._colors_for: int | None = None  # the palette `_colors` were made readable on
        self._colors = (QColor(), QColor())
        self.follow = True
        self.wrap = False
        self._top = 0
        """Entry index (row 0 being the head marker when there is one) of the first line on screen."""
        self._top_number: int | None = None
        """The line number shown at the top when not following (None: the head marker)."""
        self._anchor: int | None = None  # selection, as line numbers
        self._cursor: int | None = None
        self.match: tuple[int, int, int] | None = None
        """(line number, column, length) of the last find."""
        self._adjusting = False
        self._seen_version = -1
        self.setFont(monospace())
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        # Always there: a scroll bar that comes and goes with each job shown re-lays out the tab.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.viewport().setCursor(Qt.CursorShape.IBeamCursor)
        # paintEvent fills every pixel: without these Qt would first paint the background and the
        # widgets underneath (the whole tab page, ~6 ms) for each frame of a flood.
        self.viewport().setAutoFillBackground(False)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self.viewport().update())
        self._font_changed()

    # -- geometry -------------------------------------------------------------------------------------
    def _font_changed(self) -> None:
        metrics = QFontMetricsF(self.font())
        self._char_w = max(1.0, metrics.horizontalAdvance("0"))
        self._line_h = max(1.0, float(metrics.lineSpacing()))
        self._ascent = metrics.ascent()
        self._italic = QFont(self.font())
        self._italic.setItalic(True)

    def _columns(self) -> int:
        return max(8, int((self.viewport().width() - 2 * MARGIN) / self._char_w))

    def _visible_rows(self) -> int:
        return max(1, int(self.viewport().height() / self._line_h))

    def _has_head(self) -> bool:
        return self.buffer.head_hidden > 0

    def entry_count(self) -> int:
        return len(self.buffer) + (1 if self._has_head() else 0)

    def _entry(self, entry: int) -> tuple[str, int, int | None]:
        """(text, kind, line number or None for the head marker) of an entry index."""
        if self._has_head():
            if entry == 0:
                return marker_text(self.buffer.head_hidden), MARKER, None
            entry -= 1
        return self.buffer.text(entry), self.buffer.kind(entry), self.buffer.first + entry

    def _index_of(self, number: int | None) -> int:
        """Entry index of a line number (clamped to what is held); None is the head marker."""
        head = 1 if self._has_head() else 0
        if number is None or number < self.buffer.first:
            return 0
        return min(number - self.buffer.first, len(self.buffer) - 1) + head

    def _rows_of(self, text: str, columns: int) -> int:
        return max(1, -(-len(text) // columns)) if self.wrap else 1

    def _max_top(self) -> int:
        """The top entry that shows the newest line at the bottom of the view."""
        count = self.entry_count()
        rows = self._visible_rows()
        if not self.wrap:
            return max(0, count - rows)
        columns = self._columns()
        used = 0
        entry = count
        while entry > 0:
            needed = self._rows_of(self._entry(entry - 1)[0], columns)
            if used + needed > rows and used > 0:
                break
            used += needed
            entry -= 1
        return entry

    # -- content changed --------------------------------------------------------------------------------
    def content_changed(self) -> None:
        """Re-fit the scroll bars to the buffer; keep following, or keep the same line on top."""
        self._seen_version = self.buffer.version
        bar = self.verticalScrollBar()
        maximum = self._max_top()
        self._adjusting = True
        try:
            bar.setRange(0, maximum)
            bar.setPageStep(max(1, self._visible_rows() - 1))
            bar.setSingleStep(1)
            if self.follow:
                self._top = maximum
            else:
                self._top = min(self._index_of(self._top_number), maximum)
            bar.setValue(self._top)
            hbar = self.horizontalScrollBar()
            if self.wrap:
                hbar.setRange(0, 0)
            else:
                width = int(self.buffer.max_chars * self._char_w + 2 * MARGIN)
                hbar.setRange(0, max(0, width - self.viewport().width()))
                hbar.setPageStep(max(1, self.viewport().width()))
                hbar.setSingleStep(max(1, int(self._char_w * 4)))
        finally:
            self._adjusting = False
        if self.isVisible():
            self.viewport().update()

    def _on_scrolled(self, value: int) -> None:
        self._top = value
        if self._adjusting:
            return
        self._top_number = self._entry(value)[2] if self.entry_count() else None
        at_bottom = value >= self.verticalScrollBar().maximum()
        if at_bottom != self.follow:
            self.follow = at_bottom
            self.sig_follow_changed.emit(at_bottom)
        self.viewport().update()

    def set_follow(self, on: bool) -> None:
        self.follow = on
        if not on and self.entry_count():
            self._top_number = self._entry(min(self._top, self.entry_count() - 1))[2]
        self.content_changed()

    def set_wrap(self, on: bool) -> None:
        if not self.follow and self.entry_count():
            self._top_number = self._entry(min(self._top, self.entry_count() - 1))[2]
        self.wrap = on
        self.content_changed()

    def scroll_to_line(self, number: int) -> None:
        """Show line `number` (about a third down the view) and stop following."""
        self.follow = False
        self.sig_follow_changed.emit(False)
        index = self._index_of(number)
        self._top_number = self._entry(max(0, index - self._visible_rows() // 3))[2]
        self.content_changed()
        if not self.wrap and self.match is not None:  # bring the match's column into view
            x = self.match[1] * self._char_w
            hbar = self.horizontalScrollBar()
            if not hbar.value() <= x <= hbar.value() + self.viewport().width() - 4 * self._char_w:
                hbar.setValue(int(max(0.0, x - self.viewport().width() / 3)))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.content_changed()

    def changeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._font_changed()
            self.content_changed()

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        if self._seen_version != self.buffer.version:
            self.content_changed()

    # -- painting -------------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self.viewport())
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        palette = self.palette()
        width = self.viewport().width()
        height = self.viewport().height()
        painter.fillRect(0, 0, width, height, palette.base())
        count = self.entry_count()
        if not count:
            return
        columns = self._columns()
        x0 = MARGIN - (0 if self.wrap else self.horizontalScrollBar().value())
        selected = self._selection()
        text_color = palette.text().color()
        stderr_color, marker_color = self._kind_colors(palette)
        highlight = palette.highlight()
        highlighted_text = palette.highlightedText().color()
        font = self.font()
        y = 0.0
        entry = min(self._top, count - 1)
        while entry < count and y < height:
            text, kind, number = self._entry(entry)
            pieces = self._pieces(text, columns)
            rows_h = self._line_h * len(pieces)
            is_selected = selected is not None and number is not None and selected[0] <= number <= selected[1]
            if is_selected:
                painter.fillRect(QRectF(0, y, width, rows_h), highlight)
            elif kind == STDERR:
                painter.fillRect(QRectF(0, y, width, rows_h), STDERR_BACKGROUND)
            if self.match is not None and number == self.match[0]:
                self._paint_match(painter, text, y, x0, columns)
            if kind == MARKER:
                painter.setFont(self._italic)
                painter.setPen(highlighted_text if is_selected else marker_color)
            else:
                painter.setFont(font)
                if is_selected:
                    painter.setPen(highlighted_text)
                else:
                    painter.setPen(stderr_color if kind == STDERR else text_color)
            for offset, piece in pieces:
                painter.drawText(QPointF(x0 + offset * self._char_w, y + self._ascent), piece)
                y += self._line_h
            entry += 1

    def _kind_colors(self, palette: QPalette) -> tuple[QColor, QColor]:
        """stderr and marker text colours readable on this palette (worked out once per palette)."""
        key = palette.cacheKey()
        if self._colors_for != key:
            self._colors_for = key
            self._colors = (readable(STDERR_HUE, palette, STDERR_TINT), readable(MUTED, palette))
        return self._colors

    def _pieces(self, text: str, columns: int) -> list[tuple[int, str]]:
        """(first column, text) of each row a line takes."""
        if self.wrap:
            if len(text) <= columns:
                return [(0, text)]
            return [(0, text[i : i + columns]) for i in range(0, len(text), columns)]
        if len(text) > LONG_LINE:  # draw only the part on screen
            first = max(0, int(self.horizontalScrollBar().value() / self._char_w) - 1)
            return [(first, text[first : first + columns + 2])]
        return [(0, text)]

    def _paint_match(self, painter: QPainter, text: str, y: float, x0: float, columns: int) -> None:
        assert self.match is not None
        _number, column, length = self.match
        row, col = divmod(column, columns) if self.wrap else (0, column)
        rect = QRectF(x0 + col * self._char_w, y + row * self._line_h, length * self._char_w, self._line_h)
        painter.fillRect(rect, MATCH_BACKGROUND)

    # -- selection ----------------------------------------------------------------------------------------
    def _selection(self) -> tuple[int, int] | None:
        if self._anchor is None or self._cursor is None:
            return None
        low, high = sorted((self._anchor, self._cursor))
        low = max(low, self.buffer.first)
        high = min(high, self.buffer.end - 1)
        return (low, high) if low <= high else None

    def select_lines(self, first: int, last: int) -> None:
        self._anchor, self._cursor = first, last
        self.viewport().update()

    def clear_selection(self) -> None:
        self._anchor = self._cursor = None
        self.viewport().update()

    def select_all(self) -> None:
        if len(self.buffer):
            self.select_lines(self.buffer.first, self.buffer.end - 1)

    def selected_text(self) -> str:
        span = self._selection()
        if span is None:
            return ""
        first = span[0] - self.buffer.first
        return self.buffer.join(first, span[1] - self.buffer.first + 1)

    def copy(self) -> None:
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text + "\n")

    def cursor_line(self) -> int | None:
        return self._cursor

    def _number_at(self, pos: QPoint) -> tuple[int | None, int]:
        """(line number or None for the head marker, entry index) under a viewport position."""
        count = self.entry_count()
        if not count:
            return None, -1
        columns = self._columns()
        y = 0.0
        entry = min(self._top, count - 1)
        if pos.y() < 0:
            entry = max(0, entry - 1)
        else:
            while entry < count:
                y += self._line_h * self._rows_of(self._entry(entry)[0], columns)
                if pos.y() < y:
                    break
                entry += 1
            entry = min(entry, count - 1)
        return self._entry(entry)[2], entry

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        number, _entry = self._number_at(event.position().toPoint())
        if number is None:
            number = self.buffer.first if len(self.buffer) else None
        if number is None:
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None:
            self._cursor = number
        else:
            self._anchor = self._cursor = number
        self.viewport().update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not event.buttons() & Qt.MouseButton.LeftButton or self._anchor is None:
            return
        pos = event.position().toPoint()
        bar = self.verticalScrollBar()
        if pos.y() < 0:
            bar.setValue(bar.value() - 1)
        elif pos.y() > self.viewport().height():
            bar.setValue(bar.value() + 1)
        number, _entry = self._number_at(pos)
        if number is not None:
            self._cursor = number
            self.viewport().update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        _number, entry = self._number_at(event.position().toPoint())
        if entry >= 0 and self._entry(entry)[1] == MARKER:
            self.sig_marker_activated.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        bar = self.verticalScrollBar()
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
        elif event.matches(QKeySequence.StandardKey.SelectAll):
            self.select_all()
        elif event.key() in (Qt.Key.Key_Home,) or event.matches(
            QKeySequence.StandardKey.MoveToStartOfDocument
        ):
            bar.setValue(0)
        elif event.key() in (Qt.Key.Key_End,) or event.matches(QKeySequence.StandardKey.MoveToEndOfDocument):
            bar.setValue(bar.maximum())
        else:
            super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = QMenu(self)
        copy = menu.addAction("Copy")
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setEnabled(self._selection() is not None)
        copy.triggered.connect(self.copy)
        select_all = menu.addAction("Select all")
        select_all.setShortcut(QKeySequence.StandardKey.SelectAll)
        select_all.triggered.connect(self.select_all)
        menu.addSeparator()
        menu.addAction("Open full log").triggered.connect(self.sig_marker_activated)
        menu.exec(event.globalPos())

    # -- compatibility ------------------------------------------------------------------------------------
    def maximumBlockCount(self) -> int:
        """As QPlainTextEdit's, which this view replaced (callers written against it keep working)."""
        return self.buffer.capacity


class LogView(QWidget):
    """The Log tab of a job: follow, wrap, find bar, "open full log", over a `LogLinesView`."""

    sig_open_full_log = Signal()
    """The user asked for the whole log (the view shows only a bounded tail)."""

    def __init__(self, max_lines: int = 10_000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = LogLinesView(max_lines)
        self.text.setObjectName("job_log_text")
        self.text.sig_marker_activated.connect(self.sig_open_full_log)

        self.follow = QCheckBox("Follow")
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep scrolling to the newest line")
        self.follow.toggled.connect(self.text.set_follow)
        self.text.sig_follow_changed.connect(self._on_follow_changed)
        self.wrap = QCheckBox("Wrap")
        self.wrap.setToolTip("Wrap long lines at the view's width")
        self.wrap.toggled.connect(self.text.set_wrap)
        self.find_status = QLabel("")
        self.find_edit = QLineEdit()
        self.find_edit.setPlaceholderText("Find in log…  (Ctrl+F)")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_edit.textChanged.connect(lambda _t: self.find_status.setText(""))
        self.find_button = QPushButton("Find next")
        self.find_button.clicked.connect(lambda: self.find_next())
        self.open_full = QPushButton("Open full log")
        self.open_full.clicked.connect(self.sig_open_full_log)
        find_shortcut = QShortcut(QKeySequence.StandardKey.Find, self)
        find_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find_shortcut.activated.connect(self.focus_find)
        for key, backward in (
            (QKeySequence.StandardKey.FindNext, False),
            (QKeySequence.StandardKey.FindPrevious, True),
        ):
            shortcut = QShortcut(key, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda backward=backward: self.find_next(backward=backward))

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for widget in (self.follow, self.wrap):
            bar.addWidget(widget)
        bar.addSpacing(12)
        bar.addWidget(self.find_edit, 1)
        bar.addWidget(self.find_button)
        bar.addWidget(self.find_status)
        bar.addStretch(0)
        bar.addWidget(self.open_full)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)

        self._pending: deque[_Pending] = deque()
        self._pending_lines = 0
        self._timer = QTimer(self)
        self._timer.setObjectName("log-view-frame")
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._on_frame)

    @property
    def buffer(self) -> LogBuffer:
        return self.text.buffer

    # -- feeding -----------------------------------------------------------------------------------------
    def clear(self) -> None:
        self._pending.clear()
        self._pending_lines = 0
        self.text.match = None
        self.text.clear_selection()
        self.buffer.clear()
        self.text.content_changed()

    def max_lines(self) -> int:
        return self.buffer.capacity

    def set_max_lines(self, max_lines: int) -> None:
        self.buffer.set_capacity(max_lines)
        self.text.content_changed()

    def append(self, text: str, is_stderr: bool = False) -> None:
        """Queue complete line(s); they appear with the next frame."""
        if not text:
            return
        if not text.endswith("\n"):
            text += "\n"
        if "\t" in text:
            text = text.expandtabs()
        if "\r" in text:  # a progress bar redrawn in place: keep what a terminal would show last
            text = "".join(piece.rstrip("\r").rsplit("\r", 1)[-1] + "\n" for piece in text[:-1].split("\n"))
        if is_stderr and ("|" in text or "it [" in text):  # a C-level look before any per-line work
            for run, progress in split_progress(text):
                self._queue(run, PROGRESS if progress else STDERR)
            return
        self._queue(text, STDERR if is_stderr else STDOUT)

    def _queue(self, text: str, kind: int) -> None:
        count = text.count("\n")
        last = self._pending[-1] if self._pending else None
        if last is not None and last.kind == kind and last.lines is None and last.size < 1 << 20:
            last.add(text, count)  # one entry per stream run: fewer, larger splits later
        else:
            self._pending.append(_Pending(kind, text, count))
        self._pending_lines += count
        if self._pending_lines > 2 * self.buffer.capacity + MAX_LINES_PER_SLICE:
            self._drop_overflow()  # bounded memory even if frames are late
        if not self._timer.isActive():
            self._timer.start()

    def show_hidden(self, count: int) -> None:
        """Announce `count` lines left out before what follows (e.g. the older part of a long log)."""
        self.note_skipped(count)

    def note_skipped(self, count: int) -> None:
        """`count` lines were dropped before what follows (by the supervisor for a frozen app, or
        by the app itself): they are in the full log, and the view says so where they were."""
        if count <= 0:
            return
        self._pending.append(_Pending(MARKER, count=count))
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Take in everything queued now (e.g. the tail of a log just opened)."""
        self._take(None)

    def _on_frame(self) -> None:
        if not self._pending:
            self._timer.stop()
            return
        self._take(MAX_LINES_PER_SLICE)

    def _drop_overflow(self) -> None:
        """Keep only the newest ringful of queued lines; the older ones are counted, not shown."""
        excess = self._pending_lines - self.buffer.capacity
        skipped = 0
        while excess > 0 and self._pending:
            head = self._pending[0]
            if head.kind == MARKER:
                skipped += head.count
                self._pending.popleft()
            elif head.count <= excess:
                skipped += head.count
                excess -= head.count
                self._pending_lines -= head.count
                self._pending.popleft()
            else:
                dropped = head.drop_parts(excess)
                skipped += dropped
                excess -= dropped
                self._pending_lines -= dropped
                if excess:
                    lines = head.split()
                    head.lines = lines[excess:]
                    head.count -= excess
                    skipped += excess
                    self._pending_lines -= excess
                    excess = 0
        if skipped:
            self.buffer.skip(skipped)

    def _take(self, budget: int | None) -> None:
        if not self._pending:
            return
        self._drop_overflow()
        buffer = self.buffer
        while self._pending and (budget is None or budget > 0):
            head = self._pending[0]
            if head.kind == MARKER:
                buffer.add_marker(head.count)
                self._pending.popleft()
                continue
            if budget is not None and head.count > budget:
                lines = head.split()
                buffer.extend(lines[:budget], head.kind)
                head.lines = lines[budget:]
                head.count -= budget
                self._pending_lines -= budget
                break
            buffer.extend(head.split(), head.kind)
            self._pending_lines -= head.count
            self._pending.popleft()
            if budget is not None:
                budget -= head.count
        self.text.content_changed()

    # -- viewing -------------------------------------------------------------------------------------------
    def _on_follow_changed(self, on: bool) -> None:
        self.follow.blockSignals(True)
        self.follow.setChecked(on)
        self.follow.blockSignals(False)

    def focus_find(self) -> None:
        self.find_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.find_edit.selectAll()

    def find_next(self, backward: bool = False) -> bool:
        """Find the text of the find bar after (or before) the last match, wrapping around; the
        line found is selected and shown, and following stops (the user is reading)."""
        needle = self.find_edit.text().lower()
        if not needle:
            self.find_status.setText("")
            return False
        found = self._search(needle, backward)
        view = self.text
        if found is None:
            view.match = None
            self.find_status.setText("not found")
            view.viewport().update()
            return False
        number, column = found
        view.match = (number, column, len(needle))
        view.select_lines(number, number)
        view.scroll_to_line(number)
        self.find_status.setText("")
        return True

    def _search(self, needle: str, backward: bool) -> tuple[int, int] | None:
        """(line number, column) of the next match, searching the joined text (in C, not per line)."""
        buffer = self.buffer
        count = len(buffer)
        if not count:
            return None
        match = self.text.match
        if match is not None and buffer.first <= match[0] < buffer.end:
            line, column = match[0] - buffer.first, match[1]
        else:
            cursor = self.text.cursor_line()
            line = cursor - buffer.first if cursor is not None and buffer.first <= cursor < buffer.end else -1
            column = -1
            if backward and line < 0:
                line = count
        if backward:
            # lines up to the current match (only occurrences starting before it), then wrap around
            spans = [(0, line + 1 if 0 <= line < count else count), (max(0, line), count)]
        else:
            spans = [(max(0, line), count), (0, max(0, line) + 1)]
        for index, (start, stop) in enumerate(spans):
            text = buffer.join(start, stop).lower()
            if backward:
                limit = len(text)
                if index == 0 and 0 <= line < count:  # where the current match starts, in `text`
                    match_at = len(text) - len(buffer.text(line)) + max(0, column)
                    limit = match_at + len(needle) - 1
                position = text.rfind(needle, 0, limit)
            else:
                begin = column + 1 if index == 0 and line >= 0 and column >= 0 else 0
                position = text.find(needle, begin)
            if position >= 0:
                line_index = start + text.count("\n", 0, position)
                line_start = text.rfind("\n", 0, position) + 1
                return buffer.first + line_index, position - line_start
        return None

    def line_count(self) -> int:
        return len(self.buffer)

    @property
    def total_hidden(self) -> int:
        """Lines of the log that the view does not hold (announced by "not shown" lines)."""
        return self.buffer.total_hidden

    def plain_text(self) -> str:
        body = self.buffer.join()
        if self.buffer.head_hidden:
            return marker_text(self.buffer.head_hidden) + ("\n" + body if body else "")
        return body

    def last_line(self) -> str:
        return self.buffer.last()
