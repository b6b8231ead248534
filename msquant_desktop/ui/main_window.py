"""The main window: four tabs, a status bar, Settings and About; remembers geometry and last tab."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QShowEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QTabWidget, QWidget

from msquant_desktop import APP_NAME
from msquant_desktop.config.ui_state import UiState, load_ui_state, save_ui_state
from msquant_desktop.services.settings_service import SettingsService
from msquant_desktop.ui.about import show_about
from msquant_desktop.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

TAB_TITLES = ("Projects", "Clusters", "Jobs", "GPUs")

CloseGuard = Callable[[], bool]
"""Asked before the window closes; returns False to keep it open (e.g. the user chose "Don't quit")."""


class MainWindow(QMainWindow):
    def __init__(
        self,
        tabs: list[tuple[str, QWidget]],
        settings: SettingsService,
        ui_state_file: Path,
        log_file: Path,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)
        self.setObjectName("MainWindow")
        self._settings = settings
        self._ui_state_file = ui_state_file
        self._log_file = log_file
        self._close_guards: list[CloseGuard] = []
        self._tools_menu: QMenu | None = None

        self.tab_widget = QTabWidget()
        self.tab_widget.setDocumentMode(True)
        for title, widget in tabs:
            widget.setObjectName(f"tab_{title.lower()}")
            self.tab_widget.addTab(widget, title)
        self.setCentralWidget(self.tab_widget)

        self.jobs_status = QLabel("No jobs running")
        self.gpu_status = QLabel("GPU: —")
        self.cluster_status = QLabel("Clusters: none configured")
        for label in (self.jobs_status, self.gpu_status, self.cluster_status):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
            self.statusBar().addPermanentWidget(label)

        self._build_menus()
        self.resize(1200, 780)
        self._restore_state()

    # -- menus -------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.settings_action.triggered.connect(self.open_settings)
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self._add_tab_shortcuts()
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction(f"&About {APP_NAME}", self)
        self.about_action.triggered.connect(lambda: show_about(self, str(self._log_file)))
        help_menu.addAction(self.about_action)

    def add_tools_action(self, action: QAction) -> None:
        """An action in the Tools menu (made on first use, before Help)."""
        if self._tools_menu is None:
            help_action = self.menuBar().actions()[-1]
            self._tools_menu = QMenu("&Tools", self)
            self.menuBar().insertMenu(help_action, self._tools_menu)
        self._tools_menu.addAction(action)

    def _add_tab_shortcuts(self) -> None:
        """Ctrl+1..Ctrl+4 switch to the tabs in their order (as in browsers and most tabbed apps)."""
        self.tab_actions: list[QAction] = []
        for i in range(self.tab_widget.count()):
            action = QAction(self.tab_widget.tabText(i), self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _checked=False, i=i: self.tab_widget.setCurrentIndex(i))
            self.addAction(action)
            self.tab_actions.append(action)

    def open_settings(self) -> None:
        SettingsDialog(self._settings, self).exec()

    # -- tabs --------------------------------------------------------------------------------------
    def tab_titles(self) -> list[str]:
        return [self.tab_widget.tabText(i) for i in range(self.tab_widget.count())]

    def show_tab(self, title: str) -> None:
        for i in range(self.tab_widget.count()):
            if self.tab_widget.tabText(i) == title:
                self.tab_widget.setCurrentIndex(i)
                return
        raise KeyError(title)

    def current_tab_title(self) -> str:
        return self.tab_widget.tabText(self.tab_widget.currentIndex())

    # -- closing -----------------------------------------------------------------------------------
    def add_close_guard(self, guard: CloseGuard) -> None:
        self._close_guards.append(guard)

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt override
        for guard in self._close_guards:
            try:
                keep_open = not guard()
            except Exception:
                # An exception escaping a Qt virtual override crashes shiboken 6.11 while it reports
                # the error; a broken guard must never make the window impossible to close either.
                log.exception("close guard failed; closing anyway")
                keep_open = False
            if keep_open:
                event.ignore()
                return
        self.save_state()
        event.accept()

    # -- remembered state ----------------------------------------------------------------------------
    def _restore_state(self) -> None:
        state = load_ui_state(self._ui_state_file)
        if state.geometry:
            self.restoreGeometry(QByteArray(state.geometry))
        if state.window_state:
            self.restoreState(QByteArray(state.window_state))
        self.fit_to_screen()  # again on the first show, when the frame's size is known
        self._fit_on_show = True
        if state.last_tab in self.tab_titles():
            self.show_tab(state.last_tab)

    def showEvent(self, event: QShowEvent) -> None:  # Qt override
        super().showEvent(event)
        if self._fit_on_show:
            self._fit_on_show = False
            self.fit_to_screen()

    def fit_to_screen(self) -> None:
        """Keep the window on the screen it is on, whole: a geometry saved on a bigger screen, at
        another scale (QT_SCALE_FACTOR=2 halves the logical size) or the default size may not fit."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        frame = self.frameGeometry()
        # The frame (title bar, borders) is outside the geometry; keep room for it.
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        width = min(self.width(), area.width() - extra_w)
        height = min(self.height(), area.height() - extra_h)
        if (width, height) != (self.width(), self.height()):
            self.resize(max(width, self.minimumWidth()), max(height, self.minimumHeight()))
        # Contents wider than the screen (their minimum size): the top-left corner stays on it.
        x = max(area.x(), min(frame.x(), area.x() + area.width() - (self.width() + extra_w)))
        y = max(area.y(), min(frame.y(), area.y() + area.height() - (self.height() + extra_h)))
        if (x, y) != (frame.x(), frame.y()):
            self.move(x, y)

    def save_state(self) -> None:
        state = UiState(
            geometry=bytes(self.saveGeometry().data()),
            window_state=bytes(self.saveState().data()),
            last_tab=self.current_tab_title(),
        )
        try:
            save_ui_state(self._ui_state_file, state)
        except OSError as exc:
            log.warning("could not save window state to %s: %s", self._ui_state_file, exc)
