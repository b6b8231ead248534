"""A real D-Bus session for tests: `dbus-daemon --session` on a private socket, and a small real
notification + screensaver service on it (a child process) that records every call it gets; with
`gnome=True` also GNOME's session manager, with the Inhibit/Uninhibit signatures of gnome-session's
org.gnome.SessionManager.xml.

Run as a script it is that service: `python dbus_session.py ADDRESS [--gnome]` prints one JSON line
per call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def _serve(address: str, gnome: bool) -> int:
    from PySide6.QtCore import ClassInfo, QCoreApplication, QObject, Signal, Slot
    from PySide6.QtDBus import QDBusConnection

    def record(**call: object) -> None:
        print(json.dumps(call), flush=True)

    @ClassInfo({"D-Bus Interface": "org.freedesktop.Notifications"})
    class Notifications(QObject):
        ActionInvoked = Signal("uint", str)

        def __init__(self) -> None:
            super().__init__()
            self.last = 0

        @Slot(str, "uint", str, str, str, "QStringList", "QVariantMap", int, result="uint")
        def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):  # type: ignore[no-untyped-def]
            self.last += 1
            record(call="Notify", app=app, summary=summary, body=body, actions=list(actions), id=self.last)
            return self.last

        @Slot(result="QStringList")
        def GetCapabilities(self):  # type: ignore[no-untyped-def]
            return ["actions", "body"]

        @Slot(int)
        def Click(self, notification_id: int) -> None:
            self.ActionInvoked.emit(notification_id, "default")

    @ClassInfo({"D-Bus Interface": "org.freedesktop.ScreenSaver"})
    class ScreenSaver(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.cookie = 40

        @Slot(str, str, result="uint")
        def Inhibit(self, app, reason):  # type: ignore[no-untyped-def]
            self.cookie += 1
            record(call="Inhibit", app=app, reason=reason, cookie=self.cookie)
            return self.cookie

        @Slot("uint")
        def UnInhibit(self, cookie):  # type: ignore[no-untyped-def]
            record(call="UnInhibit", cookie=int(cookie))

    @ClassInfo({"D-Bus Interface": "org.gnome.SessionManager"})
    class GnomeSession(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.cookie = 700

        @Slot(str, "uint", str, "uint", result="uint")
        def Inhibit(self, app_id, toplevel_xid, reason, flags):  # type: ignore[no-untyped-def]
            self.cookie += 1
            record(call="GnomeInhibit", app=app_id, reason=reason, flags=int(flags), cookie=self.cookie)
            return self.cookie

        @Slot("uint")
        def Uninhibit(self, cookie):  # type: ignore[no-untyped-def]
            record(call="GnomeUninhibit", cookie=int(cookie))

    app = QCoreApplication([])
    bus = QDBusConnection.connectToBus(address, "service")
    options = QDBusConnection.RegisterOption.ExportAllSlots | QDBusConnection.RegisterOption.ExportAllSignals
    notifications, screensaver, gnome_session = Notifications(), ScreenSaver(), GnomeSession()
    ok = (
        bus.registerObject("/org/freedesktop/Notifications", notifications, options)
        and bus.registerService("org.freedesktop.Notifications")
        and bus.registerObject("/org/freedesktop/ScreenSaver", screensaver, options)
        and bus.registerService("org.freedesktop.ScreenSaver")
    )
    if gnome:
        ok = ok and bus.registerObject("/org/gnome/SessionManager", gnome_session, options)
        ok = ok and bus.registerService("org.gnome.SessionManager")
    record(call="ready", ok=ok)
    return app.exec()


@dataclass
class Session:
    address: str
    daemon: subprocess.Popen[str]
    service: subprocess.Popen[str]
    calls_file: Path

    def calls(self) -> list[dict[str, object]]:
        text = self.calls_file.read_text(encoding="utf-8") if self.calls_file.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def close(self) -> None:
        for process in (self.service, self.daemon):
            process.kill()
            process.wait(10)


def start_session(tmp: Path, gnome: bool = False) -> Session:
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address", f"--address=unix:path={tmp}/bus"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert daemon.stdout is not None
    address = daemon.stdout.readline().strip()
    calls_file = tmp / "calls.jsonl"
    service = subprocess.Popen(
        [sys.executable, __file__, address, *(["--gnome"] if gnome else [])],
        stdout=calls_file.open("w"),
        env={**__import__("os").environ},
    )
    session = Session(address, daemon, service, calls_file)
    deadline = time.monotonic() + 30
    while not any(c.get("call") == "ready" for c in session.calls()):
        if time.monotonic() > deadline or service.poll() is not None:
            session.close()
            raise RuntimeError("the test D-Bus service did not start")
        time.sleep(0.05)
    return session


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], "--gnome" in sys.argv[2:]))
