"""Dependencies of the routes as ``Annotated`` aliases, plus the shared parameter types and renderers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from shoprec.api.errors import request_id_of
from shoprec.api.schemas import MAX_FILTER_CHARS, MAX_K, ListItem, ListResponse
from shoprec.container import Container, LazyContainer
from shoprec.domain import ID_PATTERN
from shoprec.services.events import EventService
from shoprec.services.experiments import ExperimentServices
from shoprec.services.results import ListResult

_ID_DOC = "1..128 characters of letters, digits and _ . : @ -"


async def get_container(request: Request) -> Container:
    """The app's container; the first request of a process builds it (off the event loop)."""
    provider: LazyContainer = request.app.state.containers
    if provider.built:
        return provider.get()
    return await run_in_threadpool(provider.get)


async def get_request_id(request: Request) -> str:
    return request_id_of(request)


async def get_experiments(container: ContainerDep) -> ExperimentServices:
    return container.experiments


async def get_events(container: ContainerDep) -> EventService:
    return container.events


ContainerDep = Annotated[Container, Depends(get_container)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ExperimentsDep = Annotated[ExperimentServices, Depends(get_experiments)]
EventsDep = Annotated[EventService, Depends(get_events)]

UserIdPath = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=128, description=f"User id: {_ID_DOC}.")
]
ItemIdPath = Annotated[
    str, Path(pattern=ID_PATTERN.pattern, max_length=128, description=f"Item id: {_ID_DOC}.")
]
KQuery = Annotated[int, Query(ge=1, le=MAX_K, description=f"List length, 1..{MAX_K}.")]
CategoryQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_FILTER_CHARS, description="Only items in this category (any level, case-insensitive)."
    ),
]
BrandQuery = Annotated[
    str | None, Query(max_length=MAX_FILTER_CHARS, description="Only items of this brand (case-insensitive).")
]
MinPriceQuery = Annotated[
    float | None,
    Query(
        ge=0,
        allow_inf_nan=False,
        description="Only items priced at least this (items without a price are left out).",
    ),
]
MaxPriceQuery = Annotated[
    float | None,
    Query(
        ge=0,
        allow_inf_nan=False,
        description="Only items priced at most this (items without a price are left out).",
    ),
]


def list_response(result: ListResult, request_id: str) -> ListResponse:
    return ListResponse(
        items=[ListItem.of(item) for item in result.items],
        model_version=result.model_version,
        request_id=request_id,
        degraded=result.degraded,
        cached=result.cached,
        variant=result.variant,
    )
