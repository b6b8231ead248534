"""The desktop session over D-Bus: job-end notifications (freedesktop Notify) and a sleep inhibitor.

A desktop without a tray (GNOME) shows nothing for `QSystemTrayIcon.showMessage`; the freedesktop
notification service (`org.freedesktop.Notifications`, which every desktop's shell or a daemon such
as dunst provides) is what shows them there, so it comes first and the tray is the fallback.
Clicking a notification (its "default" action) emits `sig_job_activated(job_id)`.

While jobs run the machine should not fall asleep: `SleepInhibitor` holds an
`org.freedesktop.ScreenSaver.Inhibit` cookie (KDE, GNOME, Xfce implement it on the session bus) and
releases it with `UnInhibit` when the last job ends.

WORKAROUND for PySide6 (6.11) having no typed QVariant: QtDBus sends a Python int as int32, never as
uint32, so the two calls whose arguments include a `u` (Notify's replaces_id, UnInhibit's cookie)
go through `gdbus call` in a QProcess (never blocking the loop), which types each argument from the
service's own introspection data; everything else (presence, Inhibit, the ActionInvoked signal) is
QtDBus.  No gdbus, no session bus or no service: `available()` is False and callers use the tray.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

from PySide6.QtCore import SLOT, QObject, QProcess, Signal, Slot
from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage

log = logging.getLogger(__name__)

NOTIFY_SERVICE = "org.freedesktop.Notifications"
NOTIFY_PATH = "/org/freedesktop/Notifications"
SCREENSAVER_SERVICE = "org.freedesktop.ScreenSaver"
SCREENSAVER_PATH = "/org/freedesktop/ScreenSaver"
APP = "MSQuant Desktop"
_REPLY_NUMBER = re.compile(r"\(uint32 (\d+),\)")


def session_bus_address() -> str:
    """The session bus's address: $DBUS_SESSION_BUS_ADDRESS, else systemd's $XDG_RUNTIME_DIR/bus; "" if none."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    socket = os.path.join(runtime, "bus") if runtime else ""
    return f"unix:path={socket}" if socket and os.path.exists(socket) else ""


def gvariant_text(value: str) -> str:
    """A string as GVariant text for `gdbus call` (JSON's string escapes are GVariant's too)."""
    return json.dumps(value)


class _SessionBus(QObject):
    """A session bus (the user's, or one at `address`) and a way to run `gdbus call` on it."""

    def __init__(self, address: str | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.address = address or session_bus_address()
        # Only a bus that is there: Qt's own look-up of a missing session bus warns on every start.
        self.bus = (
            QDBusConnection.connectToBus(self.address, f"msquant-{id(self)}")
            if self.address
            else QDBusConnection("msquant-no-session-bus")
        )
        self.gdbus = shutil.which("gdbus")
        self._running: list[QProcess] = []

    def has(self, service: str) -> bool:
        if not self.bus.isConnected():
            return False
        reply = self.bus.interface().isServiceRegistered(service)
        return bool(reply.isValid() and reply.value())

    def gdbus_call(self, service: str, path: str, method: str, args: list[str], done: object = None) -> None:
        """`gdbus call` in a QProcess; `done(stdout)` when it has answered (nothing on failure)."""
        if self.gdbus is None or not self.address:
            return
        process = QProcess(self)
        argv = [
            "call",
            "--address",
            self.address,
            "--dest",
            service,
            "--object-path",
            path,
            "--method",
            method,
        ]
        process.setProgram(self.gdbus)
        process.setArguments([*argv, "--", *args])

        def finished(code: int, _status: object) -> None:
            output = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
            if code != 0:
                error = bytes(process.readAllStandardError().data()).decode("utf-8", "replace").strip()
                log.warning("D-Bus call %s failed: %s", method, error)
            elif callable(done):
                done(output)
            self._running.remove(process)
            process.deleteLater()

        process.finished.connect(finished)
        self._running.append(process)
        process.start()

    def wait_idle(self, timeout_ms: int = 5000) -> None:
        """Tests and shutdown: let running calls end."""
        for process in list(self._running):
            process.waitForFinished(timeout_ms)


class DesktopNotifier(QObject):
    sig_job_activated = Signal(int)
    """The user clicked the notification of this job."""
    sig_notified = Signal(int, int)
    """(job id, notification id): the notification service took it."""

    def __init__(self, address: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = _SessionBus(address, self)
        self._jobs: dict[int, int] = {}  # notification id -> job id
        if self._session.bus.isConnected():
            # PySide6 takes the SLOT() string here (its stubs say bytes, which it refuses at run time).
            self._session.bus.connect(  # type: ignore[call-overload]
                NOTIFY_SERVICE,
                NOTIFY_PATH,
                NOTIFY_SERVICE,
                "ActionInvoked",
                self,
                SLOT("_on_action_invoked(QDBusMessage)"),
            )

    def available(self) -> bool:
        return self._session.gdbus is not None and self._session.has(NOTIFY_SERVICE)

    def notify(self, summary: str, body: str, job_id: int) -> bool:
        """Ask the notification service to show it (with an "Open job" action); False: not available."""
        if not self.available():
            return False

        def taken(output: str) -> None:
            found = _REPLY_NUMBER.search(output)
            if found:
                self._jobs[int(found.group(1))] = job_id
                self.sig_notified.emit(job_id, int(found.group(1)))

        args = [gvariant_text(APP), "0", gvariant_text("msquant-desktop"), gvariant_text(summary)]
        args += [gvariant_text(body), '["default", "Open job"]', "{}", "-1"]
        self._session.gdbus_call(NOTIFY_SERVICE, NOTIFY_PATH, f"{NOTIFY_SERVICE}.Notify", args, taken)
        return True

    @Slot(QDBusMessage)
    def _on_action_invoked(self, message: QDBusMessage) -> None:
        arguments = message.arguments()
        if len(arguments) == 2 and arguments[1] == "default":
            job_id = self._jobs.get(int(arguments[0]))
            if job_id is not None:
                self.sig_job_activated.emit(job_id)

    def wait_idle(self) -> None:
        self._session.wait_idle()


class SleepInhibitor(QObject):
    """Holds a ScreenSaver inhibition while `set_active(True)`; released on `set_active(False)`."""

    sig_changed = Signal(bool)
    """Whether an inhibition is held now."""

    def __init__(self, address: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = _SessionBus(address, self)
        self.cookie: int | None = None

    def set_active(self, active: bool) -> None:
        if active and self.cookie is None and self._session.has(SCREENSAVER_SERVICE):
            service = QDBusInterface(
                SCREENSAVER_SERVICE, SCREENSAVER_PATH, SCREENSAVER_SERVICE, self._session.bus
            )
            reply = service.call("Inhibit", APP, "Jobs are running")
            values = reply.arguments()
            if reply.type() == QDBusMessage.MessageType.ReplyMessage and values:
                self.cookie = int(values[0])
                log.info("sleep inhibited while jobs run (cookie %d)", self.cookie)
                self.sig_changed.emit(True)
            else:
                log.warning("could not inhibit sleep: %s", reply.errorMessage())
        elif not active and self.cookie is not None:
            cookie, self.cookie = self.cookie, None
            self._session.gdbus_call(
                SCREENSAVER_SERVICE, SCREENSAVER_PATH, f"{SCREENSAVER_SERVICE}.UnInhibit", [str(cookie)]
            )
            self.sig_changed.emit(False)

    def wait_idle(self) -> None:
        self._session.wait_idle()
