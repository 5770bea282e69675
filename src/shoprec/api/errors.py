"""Domain and validation errors rendered as RFC 9457 problem details (``application/problem+json``).

This is the only place that maps exceptions to HTTP statuses. Every problem names the offending field in
``errors: [{field, message}]`` when there is one, and carries the request id so a client's report can be
matched with the logs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoprec.api.schemas import FieldError, Problem
from shoprec.errors import (
    ArtifactError,
    BackendUnavailableError,
    InvalidInputError,
    NotFoundError,
    ShopRecError,
)
from shoprec.observability import logger

PROBLEM_JSON: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:shoprec:problem:"

VALIDATION: Final = _TYPE_PREFIX + "validation-error"
INVALID_INPUT: Final = _TYPE_PREFIX + "invalid-input"
NOT_FOUND: Final = _TYPE_PREFIX + "not-found"
TOO_LARGE: Final = _TYPE_PREFIX + "payload-too-large"
UNAVAILABLE: Final = _TYPE_PREFIX + "backend-unavailable"
MODEL_UNAVAILABLE: Final = _TYPE_PREFIX + "model-unavailable"
INTERNAL: Final = _TYPE_PREFIX + "internal-error"

_ID_RULE: Final = "must be 1..128 characters of letters, digits and _ . : @ -"

MAX_ECHO_CHARS: Final = 256
"""Longest text a problem repeats from the request (path, field names, messages); longer is cut with "…"."""
MAX_PROBLEM_ERRORS: Final = 50
"""Most ``errors`` entries one problem lists (a 256 KiB body can break thousands of fields)."""


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clipped(error: FieldError) -> FieldError:
    values = None if error.values is None else [_clip(v, 128) for v in error.values]
    return FieldError(field=_clip(error.field), message=_clip(error.message), values=values)


def request_id_of(request: Request) -> str:
    """The id set by the request-id middleware (``"-"`` if a response is built before it ran)."""
    return str(getattr(request.state, "request_id", "-"))


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response for ``request``; ``title`` defaults to the status phrase.

    Whatever the problem repeats from the request is cut (``MAX_ECHO_CHARS``, ``MAX_PROBLEM_ERRORS``), so
    that a 100 KB id or path never comes back as a 100 KB answer.
    """
    rid = request_id_of(request)
    body = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=_clip(detail),
        instance=_clip(request.url.path),
        request_id=rid,
        errors=[_clipped(e) for e in errors[:MAX_PROBLEM_ERRORS]],
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"x-request-id": rid, **(headers or {})},
    )


def field_of(loc: Sequence[str | int]) -> str:
    """``("body", "events", 3, "item_id")`` → ``events[3].item_id``; ``("query", "k")`` → ``k``."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else list(loc)
    if not parts or (loc[0] == "body" and all(isinstance(p, int) for p in parts)):
        return "body"  # the body as a whole: missing, or not JSON (pydantic reports a character position)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":
        return _ID_RULE
    return str(error.get("msg", "invalid value"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(field=field_of(e.get("loc", ())), message=_message(e)) for e in exc.errors()]
    fields = ", ".join(dict.fromkeys(e.field for e in errors))
    return problem_response(
        request,
        422,
        f"invalid value for {fields}" if fields else "the request is invalid",
        type_=VALIDATION,
        title="Request validation failed",
        errors=errors,
    )


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInputError)
    field = exc.field or "body"
    errors = [FieldError(field=field, message=str(exc), values=exc.values or None)]
    return problem_response(request, 422, str(exc), type_=INVALID_INPUT, title="Invalid input", errors=errors)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    errors = [FieldError(field=exc.field, message=str(exc))] if exc.field else []
    return problem_response(request, 404, str(exc), type_=NOT_FOUND, errors=errors)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("backend unavailable", extra={"error": str(exc), "request_id": request_id_of(request)})
    return problem_response(
        request,
        503,
        "a backing service is unavailable; retry shortly",
        type_=UNAVAILABLE,
        headers={"retry-after": "1"},
    )


async def _model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "artifact bundle unavailable", extra={"error": str(exc), "request_id": request_id_of(request)}
    )
    return problem_response(
        request,
        503,
        "the model bundle could not be loaded",
        type_=MODEL_UNAVAILABLE,
        headers={"retry-after": "5"},
    )


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"request_id": request_id_of(request)})
    return problem_response(request, 500, "an internal error occurred", type_=INTERNAL)


def _undecodable_body(exc: StarletteHTTPException) -> str | None:
    """Why the JSON body could not be decoded, when ``exc`` is FastAPI's answer to that; else ``None``.

    FastAPI turns ``json.JSONDecodeError`` into a validation error itself, but every other failure of
    ``json.loads`` into a bare 400 raised *from* it: bytes that are not UTF-8 (``UnicodeDecodeError``),
    nesting past the parser's recursion limit (``RecursionError``) and integers longer than Python's
    4,300-digit conversion limit (``ValueError``). They are the same client error, a body that is not JSON.
    """
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply"
    if isinstance(cause, ValueError):
        return (
            "a number in the body has too many digits" if "digits" in str(cause) else "the body is not JSON"
        )
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reason = _undecodable_body(exc)
    if reason is not None:
        return problem_response(
            request,
            422,
            "invalid value for body",
            type_=VALIDATION,
            title="Request validation failed",
            errors=[FieldError(field="body", message=reason)],
        )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = {k: v for k, v in (exc.headers or {}).items() if exc.status_code != 405 or k.lower() != "allow"}
    if exc.status_code == 405:
        headers["allow"] = _allowed_methods(request)
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the API documents at the request's path (a GET serves HEAD too). Starlette's 405
    names only the first route whose path matches, and one path (``/v1/rules/{rule_id}``) has a route
    per method; the OpenAPI document (built once by FastAPI) knows them all, and ``app.state.unlisted_routes``
    the routes it leaves out."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in operations if m.upper() in _HTTP_METHODS}
    # Routes the document leaves out (the storefront page), listed by create_app.
    for route in getattr(request.app.state, "unlisted_routes", ()):
        if route.path_regex.fullmatch(path):
            methods |= {m.upper() for m in route.methods or () if m.upper() in _HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json renderers (most specific exception classes first)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ArtifactError, _model_unavailable)
    app.add_exception_handler(BackendUnavailableError, _unavailable)
    app.add_exception_handler(ShopRecError, _internal)
    app.add_exception_handler(Exception, _internal)


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a problem+json answer."""
    return {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


PROBLEM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    422: problem_doc("Invalid parameter or body; `errors` names each offending field"),
    503: problem_doc("A backend or the model bundle is unavailable"),
}
"""OpenAPI ``responses`` shared by every route; routes add 404 and 413 where they apply."""

TOO_LARGE_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    413: problem_doc("Request body larger than the limit (256 KiB by default)")
}


def problem_only_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``application/json`` twin FastAPI adds next to each problem+json response in ``spec``."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_JSON in content:
                    content.pop("application/json", None)
    return spec
