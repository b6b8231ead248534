"""A centred "nothing here yet" panel with a title, an explanation and real actions."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class EmptyState(QWidget):
    """Shown instead of an empty table: says what the tab is for and offers the first step."""

    def __init__(
        self,
        title: str,
        message: str,
        actions: list[tuple[str, Callable[[], None]]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title_label = QLabel(title)
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title_label.setFont(font)
        self.title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setTextFormat(Qt.TextFormat.RichText)
        self.message_label.setOpenExternalLinks(False)
        self.buttons: list[QPushButton] = []
        button_row = QHBoxLayout()
        button_row.addStretch(1)
        self._button_row = button_row
        for text, callback in actions or []:
            self.add_action(text, callback)
        button_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title_label)
        layout.addWidget(self.message_label)
        layout.addSpacing(12)
        layout.addLayout(button_row)
        layout.addStretch(2)

    def add_action(self, text: str, callback: Callable[[], None]) -> QPushButton:
        """Another first step (e.g. an area adds "New quantization…" to the Jobs tab)."""
        button = QPushButton(text)
        button.clicked.connect(callback)
        # Before the trailing stretch, after the other buttons.
        self._button_row.insertWidget(len(self.buttons) + 1, button)
        self.buttons.append(button)
        return button

    def set_message(self, message: str) -> None:
        self.message_label.setText(message)
