"""A TCP proxy on loopback in front of a database server that can lose one answer.

Armed with markers (bytes client messages contain, e.g. ``b"INSERT INTO t"``, ``b"COMMIT"``),
it waits for messages that contain them, in that order, forwards the last one to the server
and then, instead of forwarding the server's answer, closes both sides
of the connection: the statement ran on the server, but its client never hears the outcome.
That is a reply lost on the wire, or a network cut at the worst moment.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class LossyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._markers: list[bytes] = []
        self._closing = False
        self._sockets: list[socket.socket] = []
        #: Set once an answer was lost.
        self.lost = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="lossy-proxy").start()

    def lose_answer_to(self, *markers: bytes) -> None:
        """Lose the answer to the message with the last of ``markers``, once messages with
        the others went by in order (``(b"INSERT", b"COMMIT")``: the commit of an insert,
        not of the connection's set-up)."""
        with self._lock:
            self._markers = list(markers)

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            link = _Link(client, server)
            threading.Thread(target=self._to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(link,), daemon=True).start()

    def _to_server(self, link: _Link) -> None:
        while data := _receive(link.client):
            with self._lock:
                if self._markers and self._markers[0] in data:
                    self._markers.pop(0)
                    link.lose_next_answer = not self._markers
            try:
                link.server.sendall(data)
            except OSError:
                break
        link.cut()

    def _to_client(self, link: _Link) -> None:
        while data := _receive(link.server):
            if link.lose_next_answer:
                self.lost.set()
                link.cut()
                return
            try:
                link.client.sendall(data)
            except OSError:
                break
        link.cut()


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.lose_next_answer = False

    def cut(self) -> None:
        _close(self.client)
        _close(self.server)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
