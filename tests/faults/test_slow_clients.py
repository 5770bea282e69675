"""Slow clients against the API served as ``shoprec serve`` serves it (``shoprec.api.server``: uvicorn with
the request deadline), on a free loopback port, driven over raw sockets.

A client that does not deliver its whole request within the deadline is disconnected, however it
trickles its bytes; a prompt client is answered, keeps its connection alive between requests, and is not
cut off while the app takes its time to answer. The deadline is 0.5 s here (10 s in ``shoprec serve``).
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from tests.unit.api_fakes import write_tiny_bundle
from tests.unit.fakes import DictCache, DictStateStore, FakeRanker

from shoprec.api.app import create_app
from shoprec.api.server import server_config
from shoprec.container import build_container
from shoprec.settings import Settings

DEADLINE_S = 0.5
MARGIN_S = 1.5
"""Scheduling slack on a loaded two-core machine; far below the minutes a slow client used to hold on."""
SLOW_ANSWER_S = 2 * DEADLINE_S


class SlowStateStore(DictStateStore):
    """A state store that takes ``SLOW_ANSWER_S`` to read a user: the app's answer, not the client, is
    slow."""

    def recent_items(self, user_id: str) -> list[str]:
        time.sleep(SLOW_ANSWER_S)
        return super().recent_items(user_id)


@dataclass
class Served:
    host: str
    port: int
    state: SlowStateStore

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@pytest.fixture(scope="module")
def edge_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app over the tiny bundle served by uvicorn in a thread, on a socket bound before it starts."""
    bundle_dir = write_tiny_bundle(tmp_path_factory.mktemp("slow") / "tiny")
    state = SlowStateStore()
    container = build_container(
        Settings(artifacts=str(bundle_dir)), state=state, cache=DictCache(), ranker=FakeRanker()
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = server_config(
        create_app(container), host=host, port=port, request_timeout_s=DEADLINE_S, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        assert thread.is_alive(), "uvicorn exited before it started"
        assert time.monotonic() - started < 20, "uvicorn did not start within 20 s"
        time.sleep(0.01)
    try:
        yield Served(host, port, state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def seconds_until_closed(sock: socket.socket, drip: bytes = b"") -> float:
    """Seconds until the server closes ``sock``, sending one byte of ``drip`` every 0.1 s meanwhile;
    fails after 5 s. Whatever the server sent before closing is discarded."""
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 5:
        readable, _, _ = select.select([sock], [], [], 0.1)
        try:
            if readable and not sock.recv(65536):
                return time.monotonic() - start
            if sent < len(drip):
                sock.send(drip[sent : sent + 1])
                sent += 1
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    pytest.fail("the server kept the connection open for 5 s")


def test_a_connection_that_never_sends_a_byte_is_closed(edge_served: Served) -> None:
    with edge_served.connect() as sock:
        assert seconds_until_closed(sock) < DEADLINE_S + MARGIN_S


def test_unfinished_headers_are_closed_at_the_deadline(edge_served: Served) -> None:
    with edge_served.connect() as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: shop\r\n")  # no blank line: headers never end
        elapsed = seconds_until_closed(sock)
    assert DEADLINE_S * 0.8 <= elapsed < DEADLINE_S + MARGIN_S


def test_headers_dripped_a_byte_at_a_time_do_not_push_the_deadline_back(edge_served: Served) -> None:
    with edge_served.connect() as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\n")
        elapsed = seconds_until_closed(sock, drip=b"X-Padding: " + b"a" * 1000)
    assert elapsed < DEADLINE_S + MARGIN_S


def test_a_body_shorter_than_its_content_length_is_closed_and_nothing_is_applied(edge_served: Served) -> None:
    calls_before = edge_served.state.apply_calls
    with edge_served.connect() as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n"
            b'{"events": [{"event_id": "slow-1", '  # and the rest never comes
        )
        elapsed = seconds_until_closed(sock)
    assert DEADLINE_S * 0.8 <= elapsed < DEADLINE_S + MARGIN_S
    assert edge_served.state.apply_calls == calls_before


def test_a_prompt_client_keeps_its_connection_across_the_deadline_and_a_slow_answer(
    edge_served: Served,
) -> None:
    conn = http.client.HTTPConnection(edge_served.host, edge_served.port, timeout=10)
    try:
        conn.request("GET", "/v1/health")
        first = conn.getresponse()
        assert first.status == 200
        first.read()
        idle = DEADLINE_S * 1.6  # longer than the request deadline, shorter than the 5 s keep-alive
        time.sleep(idle)
        # The same connection (http.client raises rather than reconnect if the server had closed it),
        # and an answer that takes twice the deadline: the app's time is not the client's.
        conn.request("GET", "/v1/recommendations/u1")
        second = conn.getresponse()
        assert second.status == 200
        assert second.getheader("content-type") == "application/json"
    finally:
        conn.close()
