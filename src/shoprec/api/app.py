"""The FastAPI application: routers, problem+json errors, request ids and the request-body limit.

``create_app`` builds no container: it is built by the first request that needs it (a Lambda cold start)
or passed in ready (``shoprec serve`` builds it before listening), so importing this module is cheap and
reads no settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoprec import __version__
from shoprec.api.errors import TOO_LARGE, install_error_handlers, problem_only_openapi, problem_response
from shoprec.api.routes import browse, events, health, items, recommendations, rules, storefront
from shoprec.container import Container, LazyContainer
from shoprec.domain import ID_PATTERN
from shoprec.settings import get_settings

REQUEST_ID_HEADER: Final = "x-request-id"
_BODYLESS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

DESCRIPTION = """
Recommendations, similar items, search and ranking for an e-commerce catalogue, plus event ingestion.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details
(`application/problem+json`) whose `errors` list names each offending field.
Every response carries `request_id` (also in the `X-Request-Id` header), `model_version` and `degraded`.
"""


def create_app(
    container: Container | LazyContainer | Callable[[], Container] | None = None,
    *,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """The API app for ``container``: a ready one, a factory called on first use, or (``None``) the one
    built from the ``SHOPREC_*`` settings on first use.

    ``max_body_bytes`` defaults to the container's ``settings.max_body_bytes``.
    """
    # CORS origins come from the settings, not the container: answering a preflight must not load a model.
    origins: Callable[[], list[str]] = lambda: get_settings().cors_origin_list  # noqa: E731
    if isinstance(container, LazyContainer):
        provider = container
    elif isinstance(container, Container):
        ready = container
        provider = LazyContainer(lambda _version: ready)
        provider.get()
        origins = lambda: ready.settings.cors_origin_list  # noqa: E731
    elif container is None:
        provider = LazyContainer()
    else:
        factory = container
        provider = LazyContainer(lambda _version: factory())

    def body_limit() -> int:
        return max_body_bytes if max_body_bytes is not None else provider.get().settings.max_body_bytes

    app = FastAPI(
        title="shoprec",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        # Starlette's trailing-slash redirect builds its absolute Location from the Host header (so a
        # forged Host redirects clients elsewhere) and, under API Gateway, without the stage prefix: a path
        # that is not a route is a 404 problem, with or without the slash.
        redirect_slashes=False,
    )
    app.state.containers = provider
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_only_openapi(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    for module in (recommendations, browse, items, events, rules, health):
        app.include_router(module.router, prefix="/v1")
    app.include_router(storefront.router)  # the demo shop page at / (not in the schema)
    app.state.unlisted_routes = list(storefront.router.routes)  # for the Allow header of a 405
    app.add_middleware(BodyLimitMiddleware, limit=body_limit)
    app.add_middleware(LazyCorsMiddleware, origins=origins)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so even a 413 carries the request id
    return app


class LazyCorsMiddleware:
    """CORS for the origins of ``SHOPREC_CORS_ORIGINS`` (read from the settings on the first request):
    Starlette's ``CORSMiddleware`` allowing the API's methods, the headers a
    page sends (``content-type``, ``x-api-key``, ``x-request-id``) and exposing ``x-request-id``. Without
    origins it passes every request through untouched; while the settings cannot be read (the container
    fails to build) requests pass through and the next one asks again."""

    def __init__(self, app: ASGIApp, origins: Callable[[], list[str]]) -> None:
        self.app = app
        self._origins = origins
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._inner is None:
            try:
                origins = self._origins()
            except Exception:  # the container cannot be built yet: the route answers the problem
                await self.app(scope, receive, send)
                return
            self._inner = (
                CORSMiddleware(
                    self.app,
                    allow_origins=origins,
                    allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
                    allow_headers=["content-type", "x-api-key", "x-request-id"],
                    expose_headers=["x-request-id"],
                    max_age=600,
                )
                if origins
                else self.app
            )
        await self._inner(scope, receive, send)


class RequestIdMiddleware:
    """Gives each request an id: API Gateway's ``requestContext.requestId`` (under Mangum), else a valid
    ``X-Request-Id`` header, else a new UUID. Stored in ``request.state.request_id`` and echoed in the
    ``X-Request-Id`` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_for(scope)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers.append(REQUEST_ID_HEADER, rid)
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id_for(scope: Scope) -> str:
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("requestId"), str):
            return str(context["requestId"])
    header = Headers(scope=scope).get(REQUEST_ID_HEADER)
    # A caller-chosen id ends up in logs and responses: only the safe id alphabet is echoed.
    if header and ID_PATTERN.fullmatch(header):
        return header
    return str(uuid.uuid4())


class BodyLimitMiddleware:
    """Answers 413 problem+json for bodies over the limit, before any route parses them.

    The declared ``Content-Length`` is checked first; bodies without one (chunked) are read up to the
    limit and replayed to the app, so nothing past the limit is ever buffered.
    """

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        try:
            limit = self.limit()
        except Exception:
            # The container cannot be built (e.g. the bundle is missing): the route's dependency fails
            # the same way and renders the proper 503 problem, so let the request through to it.
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away: let the app see the disconnect
                replay_message: Message = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._reject(scope, receive, send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                replay_message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return replay_message
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            Request(scope),
            413,
            f"request body exceeds {limit} bytes",
            type_=TOO_LARGE,
            title="Request body too large",
        )
        await response(scope, receive, send)
