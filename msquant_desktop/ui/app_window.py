"""The main window as the app assembles it, keeping the tabs that other parts reach into."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QVBoxLayout, QWidget

from msquant_desktop.services.settings_service import SettingsService
from msquant_desktop.ui.jobs_tab import JobsTab
from msquant_desktop.ui.main_window import MainWindow
from msquant_desktop.ui.plan.install import PlanUi
from msquant_desktop.ui.problem_banner import ProblemBanner
from msquant_desktop.ui.projects_tab import ProjectsTab
from msquant_desktop.ui.quantize.install import QuantizeUi


class AppWindow(MainWindow):
    """`MainWindow` plus typed handles on the Jobs and Projects tabs and the quantization UI
    (app.create_main_window wires them together; tests, benches and screenshot scripts drive them)."""

    def __init__(
        self,
        tabs: list[tuple[str, QWidget]],
        settings: SettingsService,
        ui_state_file: Path,
        log_file: Path,
        jobs_tab: JobsTab,
        projects_tab: ProjectsTab,
        quantize_ui: QuantizeUi,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(tabs, settings, ui_state_file, log_file, parent)
        self.jobs_tab = jobs_tab
        self.projects_tab = projects_tab
        self.quantize_ui = quantize_ui
        self.plan_ui: PlanUi | None = None  # set by app.create_main_window
        # The tabs under a problem bar (storage faults: see ProblemBanner).
        tabs_widget = self.takeCentralWidget()
        assert tabs_widget is not None  # MainWindow always sets the tab widget
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.problem_banner = ProblemBanner()
        column.addWidget(self.problem_banner)
        column.addWidget(tabs_widget, 1)
        self.setCentralWidget(body)

    def show_problem(self, text: str) -> None:
        """A problem the user must act on, in the window (not a dialog); also on the status bar."""
        self.problem_banner.show_problem(text)
        self.statusBar().showMessage(text, 15_000)
