"""Notifications and the sleep inhibitor against a real D-Bus session: a private `dbus-daemon` and a
real notification/screensaver service on it (tests/gui/dbus_session.py) that records what it gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtDBus import QDBusConnection, QDBusInterface

from tests.gui.dbus_session import start_session
from tests.jobs.conftest import make_engine  # noqa: F401 - the real job engine fixture

pytestmark = pytest.mark.skipif(
    shutil.which("dbus-daemon") is None or shutil.which("gdbus") is None,
    reason="needs dbus-daemon and gdbus (Debian: dbus, libglib2.0-bin; scripts/dev.sh installs them)",
)


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = start_session(tmp_path)
    yield s
    s.close()


def test_a_job_end_is_a_freedesktop_notification_and_its_click_opens_the_job(session, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.desktop_session import DesktopNotifier

    notifier = DesktopNotifier(session.address)
    assert notifier.available()
    with qtbot.waitSignal(notifier.sig_notified, timeout=10_000) as taken:
        assert notifier.notify("Job finished", 'Job #7 "train": exit 0', 7)
    notify = [c for c in session.calls() if c["call"] == "Notify"]
    assert notify == [
        {
            "call": "Notify",
            "app": "MSQuant Desktop",
            "summary": "Job finished",
            "body": 'Job #7 "train": exit 0',
            "actions": ["default", "Open job"],
            "id": 1,
        }
    ]
    assert taken.args == [7, 1]
    # The user clicks it: the service emits ActionInvoked(1, "default").
    bus = QDBusConnection.connectToBus(session.address, "clicker")
    clicker = QDBusInterface(
        "org.freedesktop.Notifications",
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        bus,
    )
    with qtbot.waitSignal(notifier.sig_job_activated, timeout=10_000) as opened:
        clicker.call("Click", 1)
    assert opened.args == [7]
    QDBusConnection.disconnectFromBus("clicker")


def test_without_a_notification_service_it_says_so(tmp_path: Path, qapp) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.desktop_session import DesktopNotifier

    notifier = DesktopNotifier(f"unix:path={tmp_path}/no-such-bus")
    assert not notifier.available() and not notifier.notify("x", "y", 1)


def test_sleep_is_inhibited_while_jobs_run_and_released_after(session, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.desktop_session import SleepInhibitor

    inhibitor = SleepInhibitor(session.address)
    inhibitor.set_active(True)
    inhibitor.set_active(True)  # a second running job, before the answer: still one inhibition
    qtbot.waitUntil(lambda: inhibitor.cookie == 41, timeout=10_000)
    inhibitor.set_active(True)  # and after it
    inhibitor.set_active(False)
    inhibitor.wait_idle()
    qtbot.waitUntil(lambda: any(c["call"] == "UnInhibit" for c in session.calls()), timeout=10_000)
    calls = [c for c in session.calls() if c["call"] in ("Inhibit", "UnInhibit")]
    assert calls == [
        {"call": "Inhibit", "app": "MSQuant Desktop", "reason": "Jobs are running", "cookie": 41},
        {"call": "UnInhibit", "cookie": 41},
    ]
    assert inhibitor.cookie is None


def test_on_gnome_the_session_manager_holds_off_suspend(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    """GNOME has no org.freedesktop.ScreenSaver.Inhibit that holds off suspend; its session manager
    does (flag 4, "suspend": the screen may still lock).  Jobs that end while the answer is on its
    way still release it."""
    from msquant_desktop.services.desktop_session import SleepInhibitor

    gnome = start_session(tmp_path, gnome=True)
    try:
        inhibitor = SleepInhibitor(gnome.address)
        inhibitor.set_active(True)
        qtbot.waitUntil(lambda: inhibitor.cookie == 701, timeout=10_000)
        inhibitor.set_active(False)
        inhibitor.set_active(True)
        inhibitor.set_active(False)  # ended before the service answered
        inhibitor.wait_idle()
        qtbot.waitUntil(
            lambda: [c["call"] for c in gnome.calls()].count("GnomeUninhibit") == 2, timeout=10_000
        )
        # Two gdbus processes may overtake each other (a release and the next inhibit): by cookie.
        calls = sorted(
            (c for c in gnome.calls() if c["call"] != "ready"), key=lambda c: (c["cookie"], c["call"])
        )
        inhibit = {"call": "GnomeInhibit", "app": "MSQuant Desktop", "reason": "Jobs are running", "flags": 4}
        assert calls == [
            {**inhibit, "cookie": 701},
            {"call": "GnomeUninhibit", "cookie": 701},
            {**inhibit, "cookie": 702},
            {"call": "GnomeUninhibit", "cookie": 702},
        ]
        assert inhibitor.cookie is None
    finally:
        gnome.close()


def test_a_finished_job_in_the_jobs_tab_goes_to_the_notification_service(session, make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import sys

    from msquant_desktop.domain.jobs import JobSpec
    from msquant_desktop.services.desktop_session import DesktopNotifier
    from msquant_desktop.ui.jobs_tab import JobsTab

    service = make_engine()
    tab = JobsTab(service)  # never shown, so never the active window: the user is elsewhere
    qtbot.addWidget(tab)
    tab.notifier = DesktopNotifier(session.address)
    record = service.submit(JobSpec(name="export", argv=(sys.executable, "-c", "raise SystemExit(3)")))
    qtbot.waitUntil(lambda: any(c["call"] == "Notify" for c in session.calls()), timeout=20_000)
    notify = next(c for c in session.calls() if c["call"] == "Notify")
    assert notify["summary"] == "Job finished" and notify["body"] == f"Job #{record.id} export: exit 3"


def test_a_slurm_job_that_ends_is_announced_too(session, make_engine, app_paths, qtbot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The cluster room records a SLURM job's end in the store (another connection, as its worker
    does); the Jobs tab sees the row end and announces it with SLURM's own final state."""
    from contextlib import closing

    from msquant_desktop.domain.jobs import JobSpec, JobState, JobTarget
    from msquant_desktop.services.desktop_session import DesktopNotifier
    from msquant_desktop.store import JobRepository, connect
    from msquant_desktop.ui.jobs_tab import JobsTab

    service = make_engine()
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.notifier = DesktopNotifier(session.address)
    spec = JobSpec(
        name="train on the cluster", argv=("python", "train.py"), target=JobTarget.SLURM, cluster="hpc"
    )
    with closing(connect(app_paths.database)) as conn:
        repo = JobRepository(conn)
        job = repo.create(spec, JobState.RUNNING, "sbatch accepted it")
        repo.update(job.id, slurm_job_id="4242")
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1, timeout=10_000)
    with closing(connect(app_paths.database)) as conn:
        JobRepository(conn).transition(job.id, JobState.TIMEOUT, "sacct: TIMEOUT", exit_code=0, signal=15)
    qtbot.waitUntil(lambda: any(c["call"] == "Notify" for c in session.calls()), timeout=20_000)
    notify = next(c for c in session.calls() if c["call"] == "Notify")
    assert notify["summary"] == "Job finished"
    assert notify["body"].startswith(f"Job #{job.id} train on the cluster: ")
    assert "time limit" in notify["body"].lower() or "timeout" in notify["body"].lower(), notify["body"]
