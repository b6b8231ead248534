"""A real TCP forwarder on loopback between the app and the testbed's sshd, cut at chosen moments.

The app connects to `proxy.port`; every connection is forwarded to the sshd byte for byte by two
threads.  `cut()` ends every forwarded connection at once on both sides (what the app and sshd see when
the network path between them dies); `hold()` keeps every byte sshd sends from reaching the app
from then on (a path that died one way: an answer on its way is lost at the next cut);
`refusing = True` makes new connections end as soon as they are accepted (the cluster cannot be
reached) until it is set back.
"""

from __future__ import annotations

import socket
import threading


class CutProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self.refusing = False
        self._holding = threading.Event()
        self.accepted = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="cut-proxy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.refusing:
                _end(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _end(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for src, dst, to_app in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, to_app), name="cut-proxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_app: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_app and self._holding.is_set():
                    continue  # held back: lost when the connection is cut
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _end(src)
            _end(dst)

    def hold(self) -> None:
        """From now on nothing sshd sends reaches the app (until the next cut)."""
        self._holding.set()

    def cut(self) -> None:
        """End every forwarded connection now, both ways (what was held back is lost)."""
        with self._lock:
            sockets, self._open = self._open, []
        self._holding.clear()
        self.cuts += 1
        for sock in sockets:
            _end(sock)

    def close(self) -> None:
        self._closed = True
        _end(self._listener)
        self.cut()

    def __enter__(self) -> CutProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
