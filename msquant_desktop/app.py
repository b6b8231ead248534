"""Composition root: arguments, paths, logging, store, services, QApplication, MainWindow.

`main()` is the entry point of `msquant-desktop`, its console twin and `python -m msquant_desktop`.
With a subcommand it runs headless; without one it opens the window.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from msquant_desktop import APP_ID, APP_NAME, __version__
from msquant_desktop.cli import add_subcommands
from msquant_desktop.cli.context import CliContext
from msquant_desktop.config.logsetup import setup_logging
from msquant_desktop.config.paths import DATA_DIR_ENV, AppPaths, resolve_paths
from msquant_desktop.domain.settings import SettingsError
from msquant_desktop.store import StoreError
from msquant_desktop.store.db import store_error

if TYPE_CHECKING:  # the GUI's modules are imported only when the window opens (not for a subcommand)
    import sqlite3

    from PySide6.QtWidgets import QApplication, QWidget

    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.services.gpu_service import GpuService
    from msquant_desktop.services.job_service import JobService
    from msquant_desktop.services.project_launch import ProjectLauncher
    from msquant_desktop.services.project_service import ProjectService
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.services.settings_service import SettingsService
    from msquant_desktop.ui.app_window import AppWindow

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DISPLAY = 3

NO_DISPLAY_MESSAGE = """\
msquant-desktop: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the window cannot open.
  On a machine without a screen, run it on a virtual one:   xvfb-run -a msquant-desktop
  To check the installation without any display:            QT_QPA_PLATFORM=offscreen msquant-desktop --self-test
  Headless commands work anywhere:                          msquant-desktop --help
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msquant-desktop",
        description=f"{APP_NAME}: LLM quantization jobs, local GPUs and SLURM clusters in one window. "
        "Without a COMMAND it opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"keep config, data and logs under DIR instead of the user's folders (also ${DATA_DIR_ENV})",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open the window offscreen, visit every tab, check fonts, run a short job; exit 0 when all work",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    add_subcommands(parser)
    return parser


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for `ls | head -1`'s ls; our reader went away, nothing failed."""
EXIT_INTERRUPTED = 130
"""128 + SIGINT: Ctrl+C in a terminal (a job being waited for goes on; a queued one stays queued)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the window or a subcommand; a closed pipe or Ctrl+C ends it quietly with the shell's code.

    Everything that writes is inside the guard, the last flush of stdout included: Python flushes it
    again at exit, where a closed pipe would print "Exception ignored ... BrokenPipeError".
    """
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `... | head -1`: the reader is done; end quietly, as ls does
        _quiet_output()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _quiet_output(stdout_too=False)
        return EXIT_INTERRUPTED


def _quiet_output(stdout_too: bool = True) -> None:
    """Point stdout (and stderr, which may be the same closed pipe) at /dev/null, so the flushes at
    exit cannot fail and nothing more is printed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr) if stdout_too else (sys.stderr,):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        return run_self_test(args.data_dir)
    paths = resolve_paths(args.data_dir)
    try:
        try:
            paths.ensure()
            # One file per process kind: the window's, and the one all subcommands share.
            log_file = paths.log_file if getattr(args, "func", None) is None else paths.cli_log_file
            setup_logging(log_file, logging.DEBUG if args.debug else logging.INFO)
        except OSError as exc:
            raise StoreError(folder_problem(exc, paths.data_dir)) from exc
        if getattr(args, "func", None) is not None:
            return int(args.func(args, CliContext(paths)))
        if args.command is not None:
            parser.parse_args([args.command, "--help"])
        return run_gui(paths)
    except (StoreError, SettingsError, sqlite3.Error, OSError) as exc:
        problem = known_fault(exc, paths)
        if problem is None:
            raise
        print(f"msquant-desktop: {problem}", file=sys.stderr)
        return EXIT_FAILURE


# Errors of the world, not of the code: a full disk or quota, a read-only file system; and, for a
# named file, a folder that is not ours or a path through a file (a bare EPERM is a signal refused).
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_FILE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOTDIR})


def known_fault(exc: BaseException, paths: AppPaths) -> str | None:
    """One line for a user when `exc` is a storage fault (the store, the data folder, settings),
    None when it is something else (a bug).  The CLI prints it; the window shows it in its bar."""
    if isinstance(exc, (StoreError, SettingsError)):
        return str(exc)
    if isinstance(exc, sqlite3.Error):  # a store that broke while in use (disk full, damaged pages)
        return str(store_error(paths.database, exc))
    if isinstance(exc, OSError) and (
        exc.errno in _STORAGE_ERRNOS or (exc.errno in _FILE_ERRNOS and exc.filename is not None)
    ):
        return folder_problem(exc, paths.data_dir)
    return None


# ------------------------------------------------------------------------------------------------
# GUI composition
# ------------------------------------------------------------------------------------------------


def folder_problem(exc: OSError, fallback: Path) -> str:
    """One line for a data, config or log folder that cannot be used, with what to do about it."""
    where = exc.filename or fallback
    if exc.errno == errno.ENOSPC:
        todo = "free some disk space"
    elif exc.errno == errno.EDQUOT:
        todo = "your disk quota is used up: free some space"
    elif exc.errno == errno.ENOTDIR:
        todo = "a part of it is a file, not a folder: pass another --data-dir"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        todo = "it is read-only or not yours: fix its permissions or pass another --data-dir"
    else:
        todo = "pass another --data-dir"
    return f"cannot use {where} ({exc.strerror}): {todo}"


def display_problem() -> str | None:
    """Why no window can open here, or None.  Checked before Qt would abort with a cryptic error."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return NO_DISPLAY_MESSAGE
    return None


@dataclass
class AppServices:
    """Everything the window talks to, created once per process and closed on exit."""

    paths: AppPaths
    settings: SettingsService
    conn: sqlite3.Connection
    jobs: JobService
    gpu: GpuService
    """GPU and host sampling, history, doctor."""
    clusters: ClusterService
    quantize: QuantizeService
    """Checks, worker Python, quantization job specs, results."""
    projects: ProjectService
    project_launcher: ProjectLauncher
    on_shutdown: list[Callable[[], object]] = field(default_factory=list)
    """Called in reverse order by `shutdown`; one may return the names of threads it could not end."""
    threads_left: list[str] = field(default_factory=list)
    """Threads still running after `shutdown` (e.g. a cluster connection stuck in a TCP connect)."""

    def shutdown(self) -> None:
        for callback in reversed(self.on_shutdown):
            try:
                left = callback()
            except Exception:
                log.exception("error while shutting down")
                continue
            if isinstance(left, list):
                self.threads_left.extend(str(name) for name in left)


def create_services(paths: AppPaths) -> AppServices:
    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.services.job_service import JobService
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.services.settings_service import SettingsService
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    on_shutdown: list[Callable[[], object]] = []  # reverse order: each closes before what it uses
    conn = connect(paths.database)
    on_shutdown.append(conn.close)
    settings = SettingsService(paths.settings_file)
    jobs = JobService(JobRepository(conn), paths, settings)
    on_shutdown.append(jobs.shutdown)  # before conn.close; jobs keep running
    quantize = QuantizeService(jobs, settings, models_dir=paths.models_dir)
    on_shutdown.append(quantize.shutdown)  # before jobs.shutdown
    jobs.start()
    gpu = _create_gpu_service(settings)
    on_shutdown.append(gpu.shutdown)
    clusters = ClusterService(conn, paths.runs_dir, paths.clusters_file)
    on_shutdown.append(clusters.shutdown)
    # SLURM jobs live in the Jobs tab too: its Cancel goes to the cluster, its log view gets their lines.
    jobs.set_remote_canceller(lambda record: clusters.cancel(record.id))
    clusters.sig_log_text.connect(lambda job_id, text, _done: jobs.sig_log_text.emit(job_id, text, False))
    # A quantization on a cluster gets the same progress bar as a local one.
    clusters.sig_job_progress.connect(lambda job_id, event: jobs.sig_job_progress.emit(job_id, event))
    # A downloaded cluster result records its copy: the Results row shows it at once.
    clusters.downloads.sig_job_changed.connect(jobs.notify_changed)
    projects, launcher = _create_project_services(paths, conn, jobs, clusters)
    on_shutdown += [projects.close, launcher.close]
    return AppServices(
        paths=paths,
        settings=settings,
        conn=conn,
        jobs=jobs,
        gpu=gpu,
        clusters=clusters,
        quantize=quantize,
        projects=projects,
        project_launcher=launcher,
        on_shutdown=on_shutdown,
    )


def _create_gpu_service(settings_service: SettingsService) -> GpuService:
    from msquant_desktop.services.gpu_service import GpuService

    settings = settings_service.settings
    gpu = GpuService(settings.gpu_sample_interval_seconds, settings.gpu_history_seconds)
    settings_service.sig_settings_changed.connect(gpu.apply_settings)
    gpu.start()
    return gpu


def _create_project_services(
    paths: AppPaths, conn: sqlite3.Connection, jobs: JobService, clusters: ClusterService
) -> tuple[ProjectService, ProjectLauncher]:
    from msquant_desktop.services.project_launch import ProjectLauncher
    from msquant_desktop.services.project_service import ProjectService

    projects = ProjectService(conn, jobs=jobs, clusters=clusters)
    launcher = ProjectLauncher(
        projects,
        paths.data_dir / "project-snapshots",
        jobs=jobs,
        clusters=clusters,
        cluster_names=lambda: [p.name for p in clusters.profiles()],
    )
    return projects, launcher


def create_main_window(services: AppServices) -> AppWindow:
    from msquant_desktop.ui.app_window import AppWindow
    from msquant_desktop.ui.clusters_tab import ClustersTab
    from msquant_desktop.ui.gpus_tab import GpusTab
    from msquant_desktop.ui.jobs.close_guard import ask_with_dialog, make_close_guard
    from msquant_desktop.ui.jobs_tab import JobsTab
    from msquant_desktop.ui.plan.install import PlanUi
    from msquant_desktop.ui.projects_tab import ProjectsTab
    from msquant_desktop.ui.quantize.install import install_quantize_ui

    jobs_tab = JobsTab(services.jobs, services.settings)
    quantize_ui = install_quantize_ui(jobs_tab, services.quantize, services.clusters)
    projects_tab = ProjectsTab(services.projects, services.project_launcher)
    gpus_tab = GpusTab(services.gpu, grace_s=lambda: services.settings.settings.cancel_grace_seconds)
    tabs = [
        ("Projects", projects_tab),
        ("Clusters", ClustersTab(services.clusters, jobs=services.jobs)),
        ("Jobs", jobs_tab),
        ("GPUs", gpus_tab),
    ]
    window = AppWindow(
        tabs,
        settings=services.settings,
        ui_state_file=services.paths.config_dir / "ui-state.json",
        log_file=services.paths.log_file,
        jobs_tab=jobs_tab,
        projects_tab=projects_tab,
        quantize_ui=quantize_ui,
    )

    def show_job(job_id: int) -> None:
        window.show_tab("Jobs")
        jobs_tab.select_job(job_id)

    projects_tab.sig_show_job.connect(show_job)
    gpus_tab.sig_job_activated.connect(show_job)  # a process on a GPU, double-clicked: its job
    install_desktop_session(window, services, show_job)

    def show_running(count: int) -> None:
        window.jobs_status.setText(
            "No jobs running" if count == 0 else f"{count} job{'s' if count != 1 else ''} running"
        )

    services.jobs.sig_running_count_changed.connect(show_running)
    show_running(services.jobs.running_count())
    window.add_close_guard(make_close_guard(services.jobs, ask_with_dialog(window)))
    window.gpu_status.setText(services.gpu.summary)
    services.gpu.sig_summary_changed.connect(window.gpu_status.setText)
    clusters = services.clusters
    plan_ui = PlanUi(clusters, window)
    window.add_tools_action(plan_ui.action)
    quantize_ui.results.set_plan_serving(plan_ui.open_for_result)
    window.plan_ui = plan_ui

    def stop_planner() -> bool:
        plan_ui.shutdown()  # no planner job outlives the window (each takes a second at most)
        return True

    window.add_close_guard(stop_planner)
    window.cluster_status.setText(clusters.summary())
    clusters.sig_cluster_status.connect(lambda _name, _status: window.cluster_status.setText(clusters.summary()))
    return window


def install_desktop_session(
    window: AppWindow, services: AppServices, show_job: Callable[[int], None]
) -> None:
    """Job-end notifications over freedesktop Notify (a click raises the window on the job) and the
    sleep inhibitor while local jobs run (Settings: inhibit_sleep_while_jobs_run)."""
    from msquant_desktop.services.desktop_session import DesktopNotifier, SleepInhibitor

    def open_job(job_id: int) -> None:
        window.showNormal()
        window.raise_()
        window.activateWindow()
        show_job(job_id)

    notifier = DesktopNotifier(parent=window)
    notifier.sig_job_activated.connect(open_job)
    window.jobs_tab.notifier = notifier
    window.jobs_tab.sig_open_job.connect(open_job)
    inhibitor = SleepInhibitor(parent=window)

    def inhibit(*_args: object) -> None:
        settings = services.settings.settings
        inhibitor.set_active(services.jobs.running_count() > 0 and settings.inhibit_sleep_while_jobs_run)

    services.jobs.sig_running_count_changed.connect(inhibit)
    services.settings.sig_settings_changed.connect(inhibit)
    inhibit()


def create_qapplication(argv: list[str]) -> QApplication:
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from msquant_desktop.services.qtlog import install_qt_message_handler

    install_qt_message_handler()
    from msquant_desktop.services.gc_policy import install_main_thread_gc

    existing = QApplication.instance()
    if existing is not None and not isinstance(existing, QApplication):
        raise RuntimeError(f"a {type(existing).__name__} exists already; the window needs a QApplication")
    app = existing or QApplication(argv)
    install_main_thread_gc(app)  # worker threads must never destroy GUI objects (see the module)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("msquant")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    icon_path = Path(__file__).parent / "assets" / "icons" / "msquant-desktop.svg"
    if icon_path.exists():
        app.setWindowIcon(QIcon(str(icon_path)))
    return app


STARTUP_PROBE_ENV = "MSQUANT_STARTUP_PROBE"
"""When set, the app prints the seconds from process start to the first painted window and quits."""


def _report_startup_and_quit(app: QApplication) -> None:
    import time

    import psutil
    from PySide6.QtCore import QTimer

    def report() -> None:
        elapsed = time.time() - psutil.Process().create_time()
        print(f"startup-to-window-shown {elapsed:.3f} s", flush=True)
        app.quit()

    # A zero timer runs after the first show/paint events have been processed.
    QTimer.singleShot(0, report)


def _tell_cannot_start(problem: str) -> None:
    """A person who double-clicked the app has no terminal: say why it cannot start, in a window
    with that one line (no traceback).  Offscreen there is no one to see a window: stderr only."""
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(None, f"{APP_NAME} cannot start", problem)


def run_gui(paths: AppPaths) -> int:
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr, end="")
        return EXIT_NO_DISPLAY
    app = create_qapplication(sys.argv[:1])
    from msquant_desktop.services.single_instance import SingleInstance
    from msquant_desktop.ui.excepthook import install_excepthook

    instance = SingleInstance(paths.data_dir)
    if not instance.claim():
        print(f"msquant-desktop: already running for {paths.data_dir}; its window was raised")
        log.info("another instance holds %s: asked it to raise its window", paths.data_dir)
        return EXIT_OK
    try:
        services = create_services(paths)
    except (StoreError, SettingsError, sqlite3.Error, OSError) as exc:
        problem = known_fault(exc, paths)
        if problem is None:
            raise
        _tell_cannot_start(problem)
        raise StoreError(problem) from exc  # main() prints it on stderr and exits non-zero
    window = create_main_window(services)
    install_excepthook(
        str(paths.log_file), known_problem=lambda exc: known_fault(exc, paths), show_problem=window.show_problem
    )
    instance.sig_activation_requested.connect(lambda: raise_window(window))
    services.on_shutdown.append(instance.close)
    window.show()
    log.info("%s %s started; data in %s", APP_NAME, __version__, paths.data_dir)
    if os.environ.get(STARTUP_PROBE_ENV):
        _report_startup_and_quit(app)
    try:
        code = int(app.exec())
    finally:
        services.shutdown()
    if services.threads_left:
        # Qt aborts the process when it destroys a QThread that still runs, and nothing can cut a
        # TCP connect or DNS lookup short: end the process without tearing those objects down.
        log.warning("exiting with threads still running: %s", ", ".join(services.threads_left))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def raise_window(window: QWidget) -> None:
    """Bring the window to the front for a second start (restored if minimized)."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


# ------------------------------------------------------------------------------------------------
# Self-test
# ------------------------------------------------------------------------------------------------

SelfTestCheck = Callable[[AppServices, object], str | None]
"""An extra self-test step: returns None when fine, else what failed."""


def _job_self_test(services: AppServices, window: object) -> str | None:
    from msquant_desktop.services.job_selftest import run_job_self_test

    return run_job_self_test(services.jobs)


def _projects_self_test(services: AppServices, window: object) -> str | None:
    from msquant_desktop.services.project_selftest import run_projects_self_test

    return run_projects_self_test()


SELF_TEST_CHECKS: list[tuple[str, SelfTestCheck]] = [
    ("local job through the supervisor", _job_self_test),
    ("projects: git and Hydra composition", _projects_self_test),
]


def run_self_test(data_dir: str | None) -> int:
    """Open the window offscreen, visit every tab, check fonts and the extra checks; 0 when all pass."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="msquant-selftest-") as tmp:
        paths = resolve_paths(data_dir or tmp).ensure()
        setup_logging(paths.log_file, logging.INFO)
        failures = _self_test_in(paths)
    for failure in failures:
        print(f"self-test FAILED: {failure}", file=sys.stderr)
    if failures:
        return EXIT_FAILURE
    print(f"self-test passed ({APP_NAME} {__version__})")
    return EXIT_OK


def _self_test_in(paths: AppPaths) -> list[str]:
    from PySide6.QtGui import QFontDatabase, QFontInfo

    failures: list[str] = []
    try:
        app = create_qapplication([sys.argv[0]])
        services = create_services(paths)
    except Exception as exc:
        return [f"start-up: {exc}"]
    try:
        window = create_main_window(services)
        window.show()
        app.processEvents()
        for title in ("Projects", "Clusters", "Jobs", "GPUs"):
            try:
                window.show_tab(title)
                app.processEvents()
                if window.tab_widget.currentWidget().grab().isNull():
                    failures.append(f"tab {title}: rendered nothing")
            except KeyError:
                failures.append(f"tab {title}: missing")
        families = QFontDatabase.families()
        if not families:
            failures.append(
                "fonts: no font family available (install fontconfig-config and fonts-dejavu-core)"
            )
        elif QFontInfo(app.font()).family() not in families:
            failures.append(f"fonts: the UI font {QFontInfo(app.font()).family()!r} is not installed")
        for name, check in SELF_TEST_CHECKS:
            try:
                problem = check(services, window)
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                failures.append(f"{name}: {problem}")
        window.save_state()
        window.close()
        app.processEvents()
    finally:
        services.shutdown()
    return failures
