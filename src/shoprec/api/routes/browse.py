"""Browsing the catalogue (reads): item details (one or a page's worth) and the popular items.

Shopper-facing reads like the recommendation routes (an API key when deployed); what a shop page shows
beside the ranked lists (docs/storefront.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shoprec.api.errors import PROBLEM_RESPONSES, problem_doc
from shoprec.api.routes.deps import (
    BrandQuery,
    CategoryQuery,
    ContainerDep,
    ItemIdPath,
    KQuery,
    RequestIdDep,
    list_response,
)
from shoprec.api.schemas import MAX_K, Envelope, Id, ListResponse
from shoprec.services.catalogue import CatalogueService, ItemDetails

router = APIRouter(tags=["browse"], responses=PROBLEM_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Unknown item id")}


def get_catalogue(container: ContainerDep) -> CatalogueService:
    # A plain def: looking at the live catalogue may ask the item store for its version (off the loop).
    view = container.live.view()
    pipeline = view.pipeline or container.pipeline
    return CatalogueService(view.catalog, pipeline.popularity, model_version=container.model_version)


CatalogueDep = Annotated[CatalogueService, Depends(get_catalogue)]


class CatalogItem(BaseModel):
    item_id: str
    title: str = Field(description="Empty when the catalogue has none.")
    brand: str = Field(description="Empty when the catalogue has none.")
    categories: list[str] = Field(description="The category path, root first (may be empty).")
    description: str = Field(description="Empty when the catalogue has none.")
    price: float | None = Field(description="null when the catalogue has no price for the item.")
    available: bool = Field(description="False when out of stock: described here, served in no list.")

    @classmethod
    def of(cls, item: ItemDetails) -> CatalogItem:
        return cls(
            item_id=item.item_id,
            title=item.title,
            brand=item.brand,
            categories=list(item.categories),
            description=item.description,
            price=item.price,
            available=item.available,
        )


class CatalogItemResponse(Envelope, CatalogItem):
    """One item as served, with the fields every response carries (the shape ``PUT`` answers with)."""


class CatalogItemsResponse(Envelope):
    items: list[CatalogItem] = Field(description="In the order asked, each id once.")


@router.get("/items/{item_id}", response_model=CatalogItemResponse, responses=_NOT_FOUND)
def item(
    item_id: ItemIdPath, service: CatalogueDep, container: ContainerDep, request_id: RequestIdDep
) -> CatalogItemResponse:
    """The item as served now (the live catalogue's copy over the bundle's): title, brand, category
    path, description, price and availability. Unknown and delisted items are 404."""
    details = CatalogItem.of(service.item(item_id))
    return CatalogItemResponse(
        **details.model_dump(), model_version=container.model_version, request_id=request_id, degraded=False
    )


@router.get("/items", response_model=CatalogItemsResponse)
def items(
    ids: Annotated[
        list[Id],
        Query(min_length=1, max_length=MAX_K, description=f"1..{MAX_K} item ids (repeat the parameter)."),
    ],
    service: CatalogueDep,
    container: ContainerDep,
    request_id: RequestIdDep,
) -> CatalogItemsResponse:
    """The given items as served, e.g. a page of list items (unknown or delisted ids → 422 listing them)."""
    return CatalogItemsResponse(
        items=[CatalogItem.of(d) for d in service.items(ids)],
        model_version=container.model_version,
        request_id=request_id,
        degraded=False,
    )


@router.get("/popular", response_model=ListResponse)
def popular(
    service: CatalogueDep,
    request_id: RequestIdDep,
    k: KQuery = 10,
    category: CategoryQuery = None,
    brand: BrandQuery = None,
) -> ListResponse:
    """The ``k`` most popular items in stock, the same for every shopper (no personalisation)."""
    return list_response(service.popular(k, category=category, brand=brand), request_id)
