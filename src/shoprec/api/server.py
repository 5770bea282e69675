"""The API over HTTP with uvicorn (``shoprec serve``), with a deadline on receiving each request.

uvicorn bounds the idle time between two requests of a connection (``timeout_keep_alive``) but nothing
bounds receiving one: the first byte of a request cancels the keep-alive timer, and ASGI middleware runs
only once the headers are complete. A client that sends its headers or its body slowly, or never finishes
them, would hold a connection open for as long as it likes (Slowloris). :class:`RequestDeadlineProtocol`
closes such a connection, without an answer, once ``request_timeout_s`` have passed since the connection
opened or the request's first byte arrived; the time the app then takes to answer is not counted.

Not imported by the Lambda functions: there API Gateway receives the requests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_TIMEOUT_S: Final = 10.0
"""Longest time to receive one request, headers and body (256 KiB at most) together."""
KEEP_ALIVE_S: Final = 5
"""Longest idle time of a connection between two requests (uvicorn's default, stated here)."""

_log = logging.getLogger(__name__)


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus ``request_timeout_s``, read by :class:`RequestDeadlineProtocol`.

    A module-level class rather than a per-call protocol subclass: with several workers uvicorn pickles
    the configuration into each spawned process, and a class defined inside a function cannot be pickled.
    """

    def __init__(self, app: ASGIApp | str, *, request_timeout_s: float = REQUEST_TIMEOUT_S, **kwargs: Any):
        super().__init__(app, **kwargs)
        self.request_timeout_s = request_timeout_s


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline on receiving each request (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self.request_timeout_s: float = getattr(self.config, "request_timeout_s", REQUEST_TIMEOUT_S)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        # The first byte of the next request of a kept-alive connection starts that request's deadline.
        if self._deadline is None and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._arm()
        super().data_received(data)

    def on_response_complete(self) -> None:
        self._disarm()  # from here the keep-alive timeout bounds the idle time
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        # IDLE: the request line and headers are not complete; SEND_BODY: the body is not. DONE: the whole
        # request is in and the app is answering, which is not the client's time to spend.
        state = self.conn.their_state
        if state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            _log.warning(
                "closed a connection whose request was not received within %.1f s (%s)",
                self.request_timeout_s,
                "headers incomplete" if state is h11.IDLE else "body incomplete",
            )
            self.transport.close()


def server_config(
    app: ASGIApp | str,
    *,
    host: str,
    port: int,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    log_level: str = "info",
    workers: int = 1,
) -> ServerConfig:
    """uvicorn's configuration for serving ``app``: h11 with the request deadline, the keep-alive timeout
    and h11's limit of 16 KiB on the request line and headers (larger is answered 400).

    With ``workers`` > 1, ``app`` must be the import string of an app factory ("module:function"): each
    worker process builds its own app."""
    return ServerConfig(
        app,
        host=host,
        port=port,
        http=RequestDeadlineProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=log_level,
        request_timeout_s=request_timeout_s,
        workers=workers,
        factory=isinstance(app, str),
    )


def worker_app() -> ASGIApp:
    """The app of one ``shoprec serve --workers N`` process: its container built from the ``SHOPREC_*``
    settings and warmed up before the worker accepts requests, as the single-process server does."""
    from shoprec.api.app import create_app
    from shoprec.container import build_container
    from shoprec.settings import get_settings

    container = build_container(get_settings())
    container.recommendations.warm_up()
    return create_app(container)
