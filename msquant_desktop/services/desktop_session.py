"""The desktop session over D-Bus: job-end notifications (freedesktop Notify) and a sleep inhibitor.

A desktop without a tray (GNOME) shows nothing for `QSystemTrayIcon.showMessage`; the freedesktop
notification service (`org.freedesktop.Notifications`, which every desktop's shell or a daemon such
as dunst provides) is what shows them there, so it comes first and the tray is the fallback.
Clicking a notification (its "default" action) emits `sig_job_activated(job_id)`.

While jobs run the machine should not fall asleep: `SleepInhibitor` holds an inhibition cookie
and releases it when the last job ends.  GNOME takes inhibitors only through its session manager
(`org.gnome.SessionManager.Inhibit` with the "suspend" flag, 4: automatic suspend is held off, the
screen may still lock); KDE and Xfce through `org.freedesktop.ScreenSaver.Inhibit`.  The first of
the two the session has is used, as wakepy and browsers pick them.

WORKAROUND for PySide6 (6.11) having no typed QVariant: QtDBus sends a Python int as int32, never as
uint32, so the calls whose arguments include a `u` (Notify's replaces_id, GNOME's flags, the
cookies) go through `gdbus call` in a QProcess, which types each argument from the service's own
introspection data; the inhibitor's calls all go that way, so none waits on the bus on the GUI
thread.  Presence and the ActionInvoked signal are QtDBus.  No gdbus, no session bus or no service: `available()` is False and callers use the tray.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import SLOT, QObject, QProcess, Signal, Slot
from PySide6.QtDBus import QDBusConnection, QDBusMessage

log = logging.getLogger(__name__)

NOTIFY_SERVICE = "org.freedesktop.Notifications"
NOTIFY_PATH = "/org/freedesktop/Notifications"
SCREENSAVER_SERVICE = "org.freedesktop.ScreenSaver"
SCREENSAVER_PATH = "/org/freedesktop/ScreenSaver"
GNOME_SESSION_SERVICE = "org.gnome.SessionManager"
GNOME_SESSION_PATH = "/org/gnome/SessionManager"
GNOME_INHIBIT_SUSPEND = 4
"""gnome-session's flag for "inhibit suspending the session or computer" (GsmInhibitorFlag)."""
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


_connection_numbers = itertools.count(1)
"""Qt keys bus connections by name and hands back an existing one for a name it knows: each of ours
gets a name never used before (`id()` of a collected object comes back, with its old bus)."""


class _SessionBus(QObject):
    """A session bus (the user's, or one at `address`) and a way to run `gdbus call` on it."""

    def __init__(self, address: str | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.address = address or session_bus_address()
        # Only a bus that is there: Qt's own look-up of a missing session bus warns on every start.
        self.bus = (
            QDBusConnection.connectToBus(self.address, f"msquant-{next(_connection_numbers)}")
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

    def gdbus_call(
        self,
        service: str,
        path: str,
        method: str,
        args: list[str],
        done: Callable[[str], None] | None = None,
        failed: Callable[[str], None] | None = None,
    ) -> None:
        """`gdbus call` in a QProcess; `done(stdout)` when it has answered, `failed(why)` if not."""
        if self.gdbus is None or not self.address:
            if failed is not None:
                failed("no gdbus or no session bus")
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
                if failed is not None:
                    failed(error)
            elif done is not None:
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


@dataclass(frozen=True)
class _InhibitApi:
    service: str
    path: str
    inhibit: str
    release: str

    def inhibit_args(self) -> list[str]:
        reason = gvariant_text("Jobs are running")
        if self.service == GNOME_SESSION_SERVICE:  # (app_id, toplevel_xid, reason, flags)
            return [gvariant_text(APP), "0", reason, str(GNOME_INHIBIT_SUSPEND)]
        return [gvariant_text(APP), reason]  # (application_name, reason_for_inhibit)


INHIBIT_APIS = (
    _InhibitApi(GNOME_SESSION_SERVICE, GNOME_SESSION_PATH, "Inhibit", "Uninhibit"),
    _InhibitApi(SCREENSAVER_SERVICE, SCREENSAVER_PATH, "Inhibit", "UnInhibit"),
)
"""In the order tried: GNOME's session manager, then the freedesktop screensaver."""


class SleepInhibitor(QObject):
    """Holds an inhibition while `set_active(True)`; released on `set_active(False)`.  The calls
    are asynchronous: `cookie` is set once the service has answered."""

    sig_changed = Signal(bool)
    """Whether an inhibition is held now."""

    def __init__(self, address: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session = _SessionBus(address, self)
        self.cookie: int | None = None
        self.api: _InhibitApi | None = None
        """The service that holds (or is asked for) the inhibition."""
        self._wanted = False
        self._asking = False

    def set_active(self, active: bool) -> None:
        self._wanted = active
        if active and self.cookie is None and not self._asking:
            api = next((a for a in INHIBIT_APIS if self._session.has(a.service)), None)
            if api is None:
                return
            self.api, self._asking = api, True
            self._session.gdbus_call(
                api.service,
                api.path,
                f"{api.service}.{api.inhibit}",
                api.inhibit_args(),
                self._answered,
                self._refused,
            )
        elif not active and self.cookie is not None:
            self._release()

    def _refused(self, why: str) -> None:
        self._asking = False  # a later set_active(True) tries again
        log.warning("could not inhibit sleep: %s", why)

    def _answered(self, output: str) -> None:
        self._asking = False
        found = _REPLY_NUMBER.search(output)
        if found is None or self.api is None:
            log.warning("could not inhibit sleep: %s answered %r", self.api, output.strip())
            return
        self.cookie = int(found.group(1))
        log.info("sleep inhibited while jobs run (%s, cookie %d)", self.api.service, self.cookie)
        self.sig_changed.emit(True)
        if not self._wanted:  # the jobs ended while it was being asked for
            self._release()

    def _release(self) -> None:
        cookie, self.cookie = self.cookie, None
        if cookie is None or self.api is None:
            return
        api = self.api
        self._session.gdbus_call(api.service, api.path, f"{api.service}.{api.release}", [str(cookie)])
        self.sig_changed.emit(False)

    def wait_idle(self) -> None:
        self._session.wait_idle()
