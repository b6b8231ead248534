"""A bar across the top of the window for a problem the user must act on (a full disk, a damaged
or read-only store): one line saying what is wrong and what to do, which stays until dismissed.

Storage faults are expected in the field, so they are shown here rather than in the exception
dialog, which is for bugs (and shows a traceback the user can do nothing about)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStyle, QWidget


class ProblemBanner(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("problem_banner")
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20, 20))
        layout.addWidget(icon)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.count_label = QLabel()
        layout.addWidget(self.count_label)
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(self.dismiss)
        layout.addWidget(dismiss)
        self._repeats = 0
        # The palette's own highlight pair keeps the contrast of the theme in use (light or dark).
        self.setStyleSheet(
            "#problem_banner { background: palette(highlight); }"
            " #problem_banner QLabel { color: palette(highlighted-text); }"
        )
        self.hide()

    def show_problem(self, text: str) -> None:
        """Show `text`; the same problem again (a write that keeps failing) only counts up."""
        if self.isVisible() and text == self.label.text():
            self._repeats += 1
            self.count_label.setText(f"×{self._repeats + 1}")
            return
        self._repeats = 0
        self.count_label.setText("")
        self.label.setText(text)
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.label.setText("")
