"""One window per data dir: a second start hands over to the first and exits.

The first instance listens on a local socket named after its data dir (and the user); a second
start with the same data dir connects, asks it to raise its window and exits 0.  Two data dirs are
two instances on purpose (a test, a portable copy).  A socket left by a crashed instance answers
nobody: it is removed and this start takes over.  (QtNetwork's QLocalServer/QLocalSocket, as
Qt applications such as qutebrowser and KeePassXC do it.)
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ACTIVATE = b"activate\n"
CONNECT_TIMEOUT_MS = 1000


def server_name(data_dir: Path) -> str:
    """The socket's name: the same for every start on this data dir by this user, short enough for
    a Unix socket path (Qt puts it in the temp dir)."""
    key = f"{os.getuid() if hasattr(os, 'getuid') else 0}:{data_dir.expanduser().resolve()}"
    return "msquant-desktop-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]


class SingleInstance(QObject):
    """Owns the local server of the instance that holds the data dir."""

    sig_activation_requested = Signal()
    """A second start on the same data dir asked this instance to show its window."""

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(data_dir)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_new_connection)

    def activate_running(self) -> bool:
        """Ask a running instance to raise its window; True when one answered (then exit)."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
            return False
        socket.write(ACTIVATE)
        socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
        socket.disconnectFromServer()
        return True

    def claim(self) -> bool:
        """Become the instance of this data dir; False when another instance holds it (it was asked
        to raise its window: exit).  True also when the socket cannot be made at all: the app then
        runs without the guard rather than not at all."""
        if self.activate_running():
            return False
        if self._server.listen(self.name):
            return True
        # Either another instance started at this very moment, or a crashed one left its socket.
        if self.activate_running():
            return False
        QLocalServer.removeServer(self.name)
        if not self._server.listen(self.name):
            log.warning("single-instance socket %s: %s", self.name, self._server.errorString())
        return True

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    def close(self) -> None:
        self._server.close()

    @Slot()
    def _on_new_connection(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._on_ready_read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._on_ready_read(socket)

    def _on_ready_read(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if ACTIVATE.strip() in data:
            log.info("a second start on this data dir: raising the window")
            self.sig_activation_requested.emit()
