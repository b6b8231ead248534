"""A live log view that stays responsive under a flood.

Appends are coalesced on a ~50 ms timer and capped per tick (facts/qt-headless.md: one append per
line took 201 s for 1M lines with 3.4 s stalls; capped 50 ms batches kept the loop under ~45 ms).
Lines that do not fit are counted and shown as one "N lines not shown — open the full log" marker;
the full log is always in the run folder.  The view keeps at most `max_lines` lines.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

FLUSH_INTERVAL_MS = 50
MAX_LINES_PER_FLUSH = 1000
STDERR_BACKGROUND = QColor(208, 52, 44, 28)
STDERR_FOREGROUND = QColor("#b02a22")


class LogView(QWidget):
    sig_open_full_log = Signal()
    """The user asked for the whole log (the view shows only a bounded tail)."""

    def __init__(self, max_lines: int = 10_000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setMaximumBlockCount(max_lines)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setObjectName("job_log_text")

        self.follow = QCheckBox("Follow")
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep scrolling to the newest line")
        self.wrap = QCheckBox("Wrap")
        self.wrap.toggled.connect(self._on_wrap)
        self.find_edit = QLineEdit()
        self.find_edit.setPlaceholderText("Find in log…")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_button = QPushButton("Find next")
        self.find_button.clicked.connect(self.find_next)
        self.find_status = QLabel("")
        self.open_full = QPushButton("Open full log")
        self.open_full.clicked.connect(self.sig_open_full_log)

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

        self._pending: deque[tuple[str, bool]] = deque()
        self._pending_lines = 0
        self._hidden = 0
        self.total_hidden = 0
        self._timer = QTimer(self)
        self._timer.setObjectName("log-view-flush")
        self._timer.setInterval(FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self.flush)
        self._stderr_format = QTextCharFormat()
        self._stderr_format.setForeground(STDERR_FOREGROUND)
        self._stderr_format.setBackground(STDERR_BACKGROUND)
        self._stdout_format = QTextCharFormat()
        self._marker_format = QTextCharFormat()
        self._marker_format.setForeground(QColor("#7a7f87"))
        self._marker_format.setFontItalic(True)

    # -- feeding -----------------------------------------------------------------------------------------
    def clear(self) -> None:
        self._pending.clear()
        self._pending_lines = 0
        self._hidden = 0
        self.total_hidden = 0
        self.text.clear()

    def set_max_lines(self, max_lines: int) -> None:
        self.text.setMaximumBlockCount(max_lines)

    def show_hidden(self, count: int) -> None:
        """Announce lines left out before what follows (e.g. the older part of a long log)."""
        if count > 0:
            self._hidden += count
            if not self._timer.isActive():
                self._timer.start()

    def append(self, text: str, is_stderr: bool = False) -> None:
        """Queue complete line(s); they appear on the next tick."""
        if not text:
            return
        self._pending.append((text, is_stderr))
        self._pending_lines += text.count("\n")
        # Under a flood, drop the oldest queued output right away so memory stays bounded.
        while self._pending_lines > 4 * MAX_LINES_PER_FLUSH and len(self._pending) > 1:
            old, _ = self._pending.popleft()
            n = old.count("\n")
            self._pending_lines -= n
            self._hidden += n
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Insert what is queued (at most MAX_LINES_PER_FLUSH lines, newest kept)."""
        if not self._pending and not self._hidden:
            self._timer.stop()
            return
        batch = self._take_newest(MAX_LINES_PER_FLUSH)
        cursor = QTextCursor(self.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        if self._hidden:
            self.total_hidden += self._hidden
            self._insert(
                cursor, f"… {self._hidden:,} lines not shown — open the full log\n", self._marker_format
            )
            self._hidden = 0
        for text, is_err in batch:
            self._insert(cursor, text, self._stderr_format if is_err else self._stdout_format)
        cursor.endEditBlock()
        if self.follow.isChecked():
            bar = self.text.verticalScrollBar()
            bar.setValue(bar.maximum())

    def _take_newest(self, limit: int) -> list[tuple[str, bool]]:
        if self._pending_lines > limit:
            while self._pending and self._pending_lines - self._pending[0][0].count("\n") >= limit:
                old, _ = self._pending.popleft()
                n = old.count("\n")
                self._pending_lines -= n
                self._hidden += n
            if self._pending and self._pending_lines > limit:
                first, is_err = self._pending.popleft()
                lines = first.splitlines(keepends=True)
                drop = self._pending_lines - limit
                self._hidden += drop
                self._pending.appendleft(("".join(lines[drop:]), is_err))
                self._pending_lines -= drop
        batch = list(self._pending)
        self._pending.clear()
        self._pending_lines = 0
        return batch

    def _insert(self, cursor: QTextCursor, text: str, fmt: QTextCharFormat) -> None:
        # The document has one empty block at the start; our text always ends with "\n", so drop
        # the final newline and start each insert on a new block instead (no empty last line).
        body = text[:-1] if text.endswith("\n") else text
        if not self.text.document().isEmpty():
            cursor.insertBlock()
        cursor.insertText(body, fmt)

    # -- viewing -------------------------------------------------------------------------------------------
    def _on_wrap(self, on: bool) -> None:
        mode = QPlainTextEdit.LineWrapMode.WidgetWidth if on else QPlainTextEdit.LineWrapMode.NoWrap
        self.text.setLineWrapMode(mode)

    def find_next(self) -> bool:
        needle = self.find_edit.text()
        if not needle:
            self.find_status.setText("")
            return False
        found = self.text.find(needle)
        if not found:  # wrap around
            cursor = self.text.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            self.text.setTextCursor(cursor)
            found = self.text.find(needle, QTextDocument.FindFlag(0))
        self.find_status.setText("" if found else "not found")
        if found:
            self.follow.setChecked(False)  # the user is reading; stop jumping to the end
        return found

    def line_count(self) -> int:
        return self.text.document().blockCount() if not self.text.document().isEmpty() else 0

    def plain_text(self) -> str:
        return self.text.toPlainText()


def monospace() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
