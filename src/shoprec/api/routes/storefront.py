"""The demo storefront: a static shop page at ``/`` and its two assets under ``/storefront/``.

The page (package data in ``shoprec/api/static``, no build step) calls only the public v1 API, from the
same origin. Files are read when asked for, so serving them costs the API's cold start nothing; they are
left out of the OpenAPI schema, which documents the API alone. See docs/storefront.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import Response

from shoprec.errors import NotFoundError

router = APIRouter(include_in_schema=False)

_STATIC: Final = Path(__file__).resolve().parent.parent / "static"
_ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page loads its script and styles from its own origin and talks to nothing else.
_HEADERS: Final = {
    "cache-control": "no-cache",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}


@router.api_route("/", methods=["GET", "HEAD"])
def page() -> Response:
    """The shop page."""
    return _file("index.html", "text/html; charset=utf-8")


@router.api_route("/storefront/{name}", methods=["GET", "HEAD"])
def asset(name: str) -> Response:
    """The page's script or stylesheet; any other name is a 404 problem."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"no storefront asset {name!r}", field="name")
    return _file(name, media_type)


def _file(name: str, media_type: str) -> Response:
    return Response((_STATIC / name).read_bytes(), media_type=media_type, headers=_HEADERS)
