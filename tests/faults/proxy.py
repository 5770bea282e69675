"""A TCP proxy that puts real network faults between the code under test and a real server.

Sockets and threads only. The mode can change while connections are open, and applies to them too, so a
client's pooled connections (redis-py, botocore) meet the fault as a new connection would:

=============  ==========================================================================================
``pass``       bytes go through both ways
``refuse``     the port is closed: connecting fails with ECONNREFUSED; open connections are reset
``reset``      connections are accepted and reset at once (RST); open connections are reset
``blackhole``  connections are accepted and whatever is sent is swallowed; nothing ever comes back
``drip``       the server's answer reaches the client ``drip_bytes`` at a time, every ``drip_interval_s``
``slow``       each chunk of the server's answer is held ``delay_s`` before it is passed on
``garbage``    the client's request is answered with ``garbage`` (not the server's answer), then closed
=============  ==========================================================================================
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Final, Literal

Mode = Literal["pass", "refuse", "reset", "blackhole", "drip", "slow", "garbage"]
MODES: Final[tuple[Mode, ...]] = ("pass", "refuse", "reset", "blackhole", "drip", "slow", "garbage")
_CHUNK: Final = 65_536
_POLL_S: Final = 0.05  # how often the accept loop looks for a stop or a replaced listener


class FaultProxy:
    """Listens on ``127.0.0.1:<port>`` and forwards to ``upstream`` (``None``: there is no server; only the
    modes that never reach one make sense). Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        upstream: tuple[str, int] | None,
        *,
        mode: Mode = "pass",
        drip_bytes: int = 1,
        drip_interval_s: float = 0.1,
        delay_s: float = 0.2,
        garbage: bytes = b"\x00\xffthis is not the protocol you are looking for\r\n",
    ) -> None:
        self.upstream = upstream
        self.drip_bytes = drip_bytes
        self.drip_interval_s = drip_interval_s
        self.delay_s = delay_s
        self.garbage = garbage
        self.accepted = 0
        """Connections accepted so far (a refused connect is not counted)."""
        self.received = 0
        """Bytes received from clients so far (forwarded or swallowed): what reached the "server"."""
        self._mode: Mode = "pass"
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._acceptor.start()
        self.set_mode(mode)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def url(self, scheme: str = "http", path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode``; ``refuse`` and ``reset`` also reset every open connection."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        with self._lock:
            self._mode = mode
            if mode in ("refuse", "reset"):
                for sock in list(self._sockets):
                    _reset(sock)
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
            elif mode != "refuse" and self._listener is None:
                self._listener = self._listen(self.port)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for sock in list(self._sockets):
                _reset(sock)
        self._acceptor.join(timeout=2)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connections -------------------------------------------------------------------------------

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            listener = self._listener
            if listener is None:
                self._closed.wait(_POLL_S)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], _POLL_S)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # the listener was closed under us (refuse, close)
                continue
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            mode = self._mode
        if mode == "reset":
            _abort(client)
            return
        with self._lock:
            self._sockets.add(client)
        if mode == "garbage":
            self._spawn(self._answer_garbage, client)
            return
        if mode == "blackhole" or self.upstream is None:
            self._spawn(self._swallow, client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            self._forget(client)
            return
        server.settimeout(None)
        with self._lock:
            self._sockets.add(server)
        self._spawn(self._pump, client, server, False)
        self._spawn(self._pump, server, client, True)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, name="fault-proxy-conn", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_client: bool) -> None:
        try:
            while data := source.recv(_CHUNK):
                if not to_client:
                    self._count(data)
                if not self._forward(data, sink, to_client):
                    break
        except OSError:
            pass
        finally:
            self._forget(source)
            self._forget(sink)

    def _forward(self, data: bytes, sink: socket.socket, to_client: bool) -> bool:
        """Pass ``data`` on as the current mode says; ``False`` ends the connection."""
        mode = self._mode
        if mode == "blackhole":
            return True
        if mode in ("reset", "refuse"):
            return False
        if not to_client:
            sink.sendall(data)
            return True
        if mode == "garbage":
            sink.sendall(self.garbage)
            return False
        if mode == "slow":
            if self._closed.wait(self.delay_s):
                return False
            sink.sendall(data)
            return True
        if mode == "drip":
            for i in range(0, len(data), self.drip_bytes):
                if self._closed.wait(self.drip_interval_s):
                    return False
                sink.sendall(data[i : i + self.drip_bytes])
            return True
        sink.sendall(data)
        return True

    def _swallow(self, client: socket.socket) -> None:
        try:
            while data := client.recv(_CHUNK):
                self._count(data)
        except OSError:
            pass
        finally:
            self._forget(client)

    def _answer_garbage(self, client: socket.socket) -> None:
        try:
            client.settimeout(2)
            if data := client.recv(_CHUNK):
                self._count(data)
                client.sendall(self.garbage)
        except OSError:
            pass
        finally:
            self._forget(client)

    def _count(self, data: bytes) -> None:
        with self._lock:
            self.received += len(data)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _reset(sock: socket.socket) -> None:
    """Make the socket's close send RST, and wake the thread reading it (which then closes it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with RST instead of FIN (nobody else uses it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
