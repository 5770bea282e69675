"""Catalogue writes: ``PUT /v1/items/{item_id}`` upserts an item of the live catalogue, ``DELETE`` delists
it. Deployed behind SigV4 (``AWS_IAM``, the ``ApiMerchandiserPolicy``), like the rules; the ingest queue
takes the same bodies (functions/ingest). How a written item is served: docs/catalogue.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from shoprec.api.errors import PROBLEM_RESPONSES, TOO_LARGE_RESPONSE, problem_doc
from shoprec.api.item_schemas import ItemResponse, ItemUpsertRequest
from shoprec.api.routes.deps import ContainerDep, ItemIdPath, RequestIdDep
from shoprec.errors import NotFoundError
from shoprec.services.live_catalog import LiveCatalog

router = APIRouter(tags=["items"], responses=PROBLEM_RESPONSES)


async def get_live_catalog(container: ContainerDep) -> LiveCatalog:
    return container.live


LiveCatalogDep = Annotated[LiveCatalog, Depends(get_live_catalog)]

_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: problem_doc("Neither the bundle nor the live catalogue has this item")
}


@router.put(
    "/items/{item_id}",
    response_model=ItemResponse,
    status_code=200,
    responses={201: {"model": ItemResponse, "description": "Created"}, **TOO_LARGE_RESPONSE},
)
def put_item(
    item_id: ItemIdPath,
    body: ItemUpsertRequest,
    response: Response,
    container: ContainerDep,
    live: LiveCatalogDep,
    request_id: RequestIdDep,
) -> ItemResponse:
    """Create (201) or replace (200) the item in the live catalogue: a new id is searchable, listed among
    similar items and usable in events as soon as this answers (other processes within
    ``SHOPREC_CATALOG_REFRESH_S``); ``"available": false`` keeps it but never serves it. Putting the same
    body again changes nothing (200). A delisted item is listed again by a put."""
    created = live.upsert(body.to_domain(item_id))
    if created and live.base.index(item_id) is None:
        response.status_code = 201
    stored = live.stored(item_id)
    return ItemResponse.of(stored, model_version=container.model_version, request_id=request_id)


@router.delete("/items/{item_id}", status_code=204, response_class=Response, responses=_UNKNOWN)
def delete_item(item_id: ItemIdPath, live: LiveCatalogDep) -> Response:
    """Delist the item: from this answer on no endpoint serves it (similar items of it answer 404), and
    events naming it are still accepted. 204 again for an item already delisted; 404 for an id that
    neither the bundle nor the live catalogue knows. ``PUT`` lists it again."""
    if live.catalog.index(item_id) is None:
        raise NotFoundError(f"unknown item id {item_id!r}", field="item_id")
    live.delist(item_id)
    return Response(status_code=204)


__all__ = ["router"]
