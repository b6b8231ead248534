"""Jobs tab: supervised local jobs and SLURM jobs in one table, a details pane with the live log,
and the actions (new, cancel, re-run, open folder, delete, queue order).

Other areas extend it: `add_toolbar_action()` (e.g. "New quantization…") and `add_view()` (e.g. a
"Results" sub-view next to "All jobs").
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobRecord, JobState, JobSummary
from msquant_desktop.services.desktop_session import DesktopNotifier
from msquant_desktop.services.job_service import JobService
from msquant_desktop.services.protocols import SettingsSource
from msquant_desktop.store import StoreError
from msquant_desktop.ui.colors import chevrons_icon
from msquant_desktop.ui.empty_state import EmptyState
from msquant_desktop.ui.jobs.details import JobDetails
from msquant_desktop.ui.jobs.new_command_dialog import NewCommandDialog
from msquant_desktop.ui.jobs.sweep_groups import SWEEP_ROLE, SweepGroupingProxy
from msquant_desktop.ui.jobs.table_model import (
    FILTERS,
    JOB_ID_ROLE,
    Column,
    JobsFilterProxy,
    JobsTableModel,
    ProgressDelegate,
    state_label,
)

log = logging.getLogger(__name__)


class LegibleToolBar(QToolBar):
    """A toolbar whose overflow button ("»", shown when the window is too narrow for every action)
    is drawn in the palette's text colour, so it can be found on a dark palette too."""

    EXTENSION_BUTTON = "qt_toolbar_ext_button"  # Qt's own object name for it (qtoolbarextension.cpp)

    def __init__(self) -> None:
        super().__init__()
        self._fit_extension_button()

    def changeEvent(self, event: QEvent) -> None:  # Qt override
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._fit_extension_button()

    def extension_button(self) -> QToolButton | None:
        return self.findChild(QToolButton, self.EXTENSION_BUTTON)

    def _fit_extension_button(self) -> None:
        button = self.extension_button()
        if button is not None:
            button.setIcon(chevrons_icon(self.palette()))


class JobsTab(QWidget):
    sig_open_job = Signal(int)
    """The user clicked a job-end notification in the tray: show that job."""

    def __init__(
        self, service: JobService, settings: SettingsSource | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self._settings = settings
        max_lines = settings.settings.log_view_max_lines if settings is not None else 10_000
        self.empty = EmptyState(
            "No jobs yet",
            "Run a quantization or any command as a supervised job: live logs, a queue, and a cancel "
            "that stops the whole process tree. Jobs keep running when the app closes.",
            [("New command job…", self.new_command_job)],
        )
        self.model = JobsTableModel(service, self)
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.groups = SweepGroupingProxy(self.model, self)  # a sweep's members under one header row
        self.groups.setSourceModel(self.proxy)
        self.table = QTableView()
        self.table.setObjectName("jobs_table")
        self.table.setModel(self.groups)
        self.table.doubleClicked.connect(self._on_double_clicked)
        self.table.setSortingEnabled(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        for column, width in (
            (Column.STATUS, 130),
            (Column.KIND, 80),
            (Column.PROJECT, 90),
            (Column.STARTED, 140),
            (Column.DURATION, 90),
            (Column.GPUS, 50),
            (Column.PROGRESS, 320),
            (Column.EXIT, 150),
        ):
            self.table.setColumnWidth(column, width)
        self.details = JobDetails(service, max_lines)
        self.details.log_view.sig_open_full_log.connect(self.open_full_log)
        self.details.sig_record_shown.connect(self._update_actions)

        self.toolbar = LegibleToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.new_action = self._action("New command job…", self.new_command_job)
        self.cancel_action = self._action("Cancel", self.cancel_selected)
        self.rerun_action = self._action("Re-run", self.rerun_selected)
        self.open_folder_action = self._action("Open run folder", self.open_run_folder)
        self.delete_action = self._action("Delete", self.delete_selected)
        self.copy_command_action = self._action("Copy command", self.copy_command)
        self.copy_path_action = self._action("Copy path", self.copy_run_folder_path)
        self.refresh_action = self._action("Refresh", self.refresh)
        self.find_action = self._action("Filter jobs", self.focus_filter)
        self._add_shortcuts()
        self.up_action = self._action("Move up", lambda: self._move(-1))
        self.down_action = self._action("Move down", lambda: self._move(+1))
        self.up_action.setToolTip("Start this queued job earlier")
        self.down_action.setToolTip("Start this queued job later")
        for action in (
            self.new_action,
            self.cancel_action,
            self.rerun_action,
            self.open_folder_action,
            self.delete_action,
            self.up_action,
            self.down_action,
        ):
            self.toolbar.addAction(action)
        self._extra_actions_at = self.toolbar.insertSeparator(self.cancel_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        # Deleted jobs' folders are removed on a thread (a big run folder takes seconds): say so.
        self.deleting = QProgressBar()
        self.deleting.setObjectName("jobs_deleting")
        self.deleting.setRange(0, 0)  # busy indicator
        self.deleting.setFixedWidth(180)
        self.deleting.setTextVisible(True)
        self.deleting_action = self.toolbar.addWidget(self.deleting)
        self.deleting_action.setVisible(False)
        service.sig_deletes_pending.connect(self._on_deletes_pending)
        self.state_filter = QComboBox()
        self.state_filter.addItems(list(FILTERS))
        self.state_filter.currentTextChanged.connect(self.proxy.set_group)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter jobs…")
        self.search.setClearButtonEnabled(True)
        self.search.setFixedWidth(220)
        self.search.textChanged.connect(self.proxy.set_text)
        # Beside the toolbar, not in it: a narrow window folds the toolbar's buttons into its
        # overflow menu, and the filter must stay in view.
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 4, 0)
        top.addWidget(self.toolbar, 1)
        top.addWidget(self.state_filter)
        top.addWidget(self.search)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 400])
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(splitter, "All jobs")
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addLayout(top)
        content_layout.addWidget(self.views, 1)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        service.sig_job_submitted.connect(self.select_job)
        for sig in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset):
            sig.connect(self._update_stack)
        self.model.rowsInserted.connect(self._on_rows_inserted)
        self.model.sig_summary_changed.connect(self._on_summary_changed)
        self._clock = QTimer(self)
        self._clock.setObjectName("jobs-tab-durations")
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self.model.refresh_running_durations)
        self._clock.start()
        self._active_seen: set[int] = set()
        self.notifications: list[str] = []
        self._tray: QSystemTrayIcon | None = None
        self._tray_job = 0
        self.notifier: DesktopNotifier | None = None
        """Set by the app: job-end notifications go to the desktop's service first, the tray else."""
        self.model.load()
        self._active_seen = {
            r.id for r in (self.model.record_at(i) for i in range(self.model.rowCount())) if r.state.is_active
        }
        self._update_actions(None)

    # -- extension points for other areas ---------------------------------------------------------------
    def add_toolbar_action(self, action: QAction) -> None:
        """Add an action before Cancel (e.g. "New quantization…"); also offered in the empty state."""
        action.setIconText(action.text())
        self.toolbar.insertAction(self._extra_actions_at, action)
        self.empty.add_action(action.text(), action.trigger)

    def add_view(self, title: str, widget: QWidget) -> None:
        """Add a sub-view next to "All jobs" (e.g. "Results")."""
        self.views.addTab(widget, title)

    # -- actions ----------------------------------------------------------------------------------------
    def _action(self, text: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self)
        action.setIconText(text)  # keep the "…": tool buttons strip it from the plain text
        action.triggered.connect(slot)
        return action

    def selected_job_id(self) -> int | None:
        """The selected job (None also when a sweep's header row is selected: it is no job)."""
        rows = self.table.selectionModel().selectedRows()
        job_id = rows[0].data(JOB_ID_ROLE) if rows else None
        return int(job_id) if job_id is not None else None

    def select_job(self, job_id: int) -> None:
        self.groups.flush()
        model = self.table.model()
        for row in range(model.rowCount()):
            index = model.index(row, 0)
            if index.data(JOB_ID_ROLE) == job_id:
                flags = (
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
                )
                self.table.selectionModel().select(index, flags)
                self.table.scrollTo(index)
                return

    def _add_shortcuts(self) -> None:
        """Delete and Ctrl+F act from the table only: in the filter box Delete edits the text, and in
        the log pane Ctrl+F is the log's own search. F5 reloads from anywhere in the tab."""
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.find_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        for action in (self.delete_action, self.find_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            self.table.addAction(action)
        self.refresh_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.refresh_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(self.refresh_action)

    def context_menu(self) -> QMenu:
        """The row menu: the toolbar's own actions (same enablement, same service calls) plus copies."""
        menu = QMenu(self)
        for action in (self.cancel_action, self.rerun_action, self.open_folder_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.copy_command_action)
        menu.addAction(self.copy_path_action)
        menu.addSeparator()
        menu.addAction(self.delete_action)
        return menu

    @Slot(QPoint)
    def _show_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.select_job(int(index.data(JOB_ID_ROLE)))  # the menu acts on the row under the pointer
        menu = self.context_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.table.viewport().mapToGlobal(pos))  # not exec(): no nested event loop

    def copy_command(self) -> None:
        """The job's command as a shell line, each argument quoted as a shell would need it."""
        job_id = self.selected_job_id()
        if job_id is not None:
            QGuiApplication.clipboard().setText(shlex.join(self.service.get(job_id).spec.argv))

    def copy_run_folder_path(self) -> None:
        job_id = self.selected_job_id()
        folder = self.service.run_dir(job_id) if job_id is not None else None
        if folder is not None:
            QGuiApplication.clipboard().setText(str(folder))

    def refresh(self) -> None:
        """F5: notice what other processes wrote now, then reload the list (keeping the selection)."""
        job_id = self.selected_job_id()
        self.service.sync()
        self.model.load()
        if job_id is not None:
            self.select_job(job_id)

    def focus_filter(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def new_command_job(self) -> None:
        dialog = NewCommandDialog(self.service.gpu_count, self)
        if dialog.exec() == NewCommandDialog.DialogCode.Accepted:
            record = self.service.submit(dialog.spec())
            self.select_job(record.id)

    def cancel_selected(self) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self._guarded(lambda: self.service.cancel(job_id))

    def rerun_selected(self) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self._guarded(lambda: self.select_job(self.service.rerun(job_id).id))

    def delete_selected(self, *, confirm: bool = True) -> None:
        # `confirm` is keyword-only: the Delete action's triggered(bool) would fill a positional one
        # with False and delete without asking.
        job_id = self.selected_job_id()
        if job_id is None:
            return
        if confirm:
            answer = QMessageBox.question(self, "Delete job", self.delete_question(job_id))
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._guarded(lambda: self.service.delete(job_id))

    def delete_question(self, job_id: int) -> str:
        """Exactly what Delete removes and what it keeps, for the confirmation."""
        record = self.service.get(job_id)
        lines = [f"Delete job #{job_id}?"]
        run_dir = Path(record.run_dir) if record.run_dir else None
        if run_dir is not None:
            lines.append(f"This removes its run folder {run_dir} (output log, events, launch facts).")
        output = (record.result or {}).get("output")
        if isinstance(output, str) and output:
            if run_dir is not None and Path(output).is_relative_to(run_dir):
                lines.append(f"The model it made is inside that folder and is removed too: {output}")
            else:
                lines.append(f"The model it made is kept: {output}")
        return "\n\n".join(lines)

    @Slot(int)
    def _on_deletes_pending(self, count: int) -> None:
        self.deleting.setFormat(f"Removing {count} deleted job folder{'s' if count != 1 else ''}…")
        self.deleting.setToolTip("The jobs are gone from the list; their files are being removed")
        self.deleting_action.setVisible(count > 0)

    def open_run_folder(self) -> None:
        job_id = self.selected_job_id()
        folder = self.service.run_dir(job_id) if job_id is not None else None
        if folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def open_full_log(self) -> None:
        job_id = self.details.job_id
        path = self.service.log_file(job_id) if job_id is not None else None
        if path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def _move(self, delta: int) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self.service.move_in_queue(job_id, delta)
            self.select_job(job_id)

    def _guarded(self, work: Callable[[], object]) -> None:
        try:
            work()
        except (StoreError, ValueError, KeyError) as exc:
            self._show_problem(str(exc))

    def _show_problem(self, text: str) -> None:
        """An action that could not be done goes to the window's problem bar, as storage faults do:
        one line the user can read and dismiss, no modal dialog (dialogs are for confirmations)."""
        show = getattr(self.window(), "show_problem", None)
        if callable(show):
            show(text)
        else:  # the tab outside the app's window (embedded or tested alone)
            log.warning("Jobs: %s", text)

    # -- reacting ---------------------------------------------------------------------------------------
    def _update_stack(self, *args: Any) -> None:
        self.stack.setCurrentIndex(1 if self.model.rowCount() else 0)

    def _on_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        if self.selected_job_id() is None and self.model.rowCount():
            self.select_job(self.model.record_at(first).id)

    def _on_double_clicked(self, index: QModelIndex) -> None:
        sweep_id = index.data(SWEEP_ROLE)
        if sweep_id is not None:  # a sweep's header: fold or unfold its members
            self.groups.toggle(str(sweep_id))

    def _on_selection(self, *args: Any) -> None:
        self.details.show_job(self.selected_job_id())  # its sig_record_shown updates the actions

    def _on_summary_changed(self, summary: JobSummary) -> None:
        """A row was inserted or updated: notice jobs that finished (from the row, no store read)."""
        if summary.state.is_active:
            self._active_seen.add(summary.id)
        elif summary.state.is_final and summary.id in self._active_seen:
            self._active_seen.discard(summary.id)
            self._notify_finished(
                summary.name, summary.id, summary.outcome.describe() if summary.outcome else ""
            )

    def _update_actions(self, record: JobRecord | None) -> None:
        """Enable the actions for the shown job (the details pane read its record already)."""
        if record is not None and record.id != self.selected_job_id():
            record = None
        has = record is not None
        self.cancel_action.setEnabled(bool(record and record.state.is_cancellable))
        self.cancel_action.setText(
            "Cancelling…" if record and record.state is JobState.CANCELLING else "Cancel"
        )
        self.rerun_action.setEnabled(has)
        self.open_folder_action.setEnabled(bool(record and record.run_dir))
        self.copy_path_action.setEnabled(bool(record and record.run_dir))
        self.copy_command_action.setEnabled(has)
        self.delete_action.setEnabled(bool(record and not record.state.is_active))
        self.delete_action.setToolTip(
            "Cancel it first: a running job cannot be deleted"
            if record and record.state.is_active
            else "Forget this job"
        )
        queued = bool(record and record.state is JobState.QUEUED and record.spec.target.value == "local")
        self.up_action.setEnabled(queued)
        self.down_action.setEnabled(queued)

    def _notify_finished(self, name: str, job_id: int, outcome: str) -> None:
        enabled = self._settings is None or self._settings.settings.notify_when_job_finishes
        window = self.window()
        if not enabled or window.isActiveWindow():
            return
        message = f"Job #{job_id} {name}: {outcome or 'finished'}"
        self.notifications.append(message)
        if self.notifier is not None and self.notifier.notify("Job finished", message, job_id):
            return  # the desktop's notification service (GNOME has no tray); a click opens the job
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(QApplication.windowIcon(), self)
                self._tray.messageClicked.connect(lambda: self.sig_open_job.emit(self._tray_job))
                self._tray.show()
            self._tray_job = job_id
            self._tray.showMessage("Job finished", message)
        else:
            QApplication.alert(window)

    def state_text(self, job_id: int) -> str:
        return state_label(self.service.get(job_id).state)
