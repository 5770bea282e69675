"""Request and response bodies of ``PUT`` / ``DELETE /v1/items/{item_id}`` (the live catalogue). The ingest
queue's item messages use the same request model, so both paths accept exactly the same bodies."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from shoprec.api.schemas import Envelope, Id
from shoprec.items import CatalogItem

MAX_TITLE_CHARS: Final = 500
MAX_DESCRIPTION_CHARS: Final = 10_000
MAX_BRAND_CHARS: Final = 200
MAX_CATEGORIES: Final = 10
MAX_CATEGORY_CHARS: Final = 200

# Surrounding whitespace is dropped, so "  Calipers " and "Calipers" are the same write (idempotency) and
# a title of blanks is refused as empty.
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_CHARS)]
Brand = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_BRAND_CHARS)]
Category = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CATEGORY_CHARS)
]


class ItemUpsertRequest(BaseModel):
    """``PUT /v1/items/{item_id}``: the whole item (a replacement, not a patch; absent fields take their
    defaults). Unknown fields are refused, as in every request body."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no 0 for false, no false for 0.0

    title: Title = Field(description=f"Shown in lists and searched; 1..{MAX_TITLE_CHARS} characters.")
    description: Description = Field(default="", description="Searched; at most 10,000 characters.")
    brand: Brand = Field(default="", description="Filter and facet value.")
    categories: list[Category] = Field(
        default_factory=list,
        max_length=MAX_CATEGORIES,
        description=f"The category path, root first: at most {MAX_CATEGORIES} names.",
    )
    price: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="Finite and >= 0; null: no price."
    )
    available: StrictBool = Field(default=True, description="False: kept in the catalogue but never served.")

    def to_domain(self, item_id: str) -> CatalogItem:
        """The item to store under ``item_id`` (``updated_at`` is the store's to set)."""
        return CatalogItem(
            item_id=item_id,
            title=self.title,
            description=self.description,
            brand=self.brand,
            categories=tuple(self.categories),
            price=self.price,
            available=self.available,
        )


class PutItemBody(ItemUpsertRequest):
    """The item of a ``put_item`` queue message: ``PUT /v1/items/{item_id}``'s body with the id."""

    item_id: Id

    def item(self) -> CatalogItem:
        return self.to_domain(self.item_id)


class ItemMessage(BaseModel):
    """An ingest-queue message that writes the live catalogue, exactly one of:
    ``{"put_item": {"item_id": ..., <the body of PUT /v1/items/{item_id}>}}`` or
    ``{"delist_item": "<item id>"}`` (``DELETE /v1/items/{item_id}``). Same validation, same idempotency:
    a put of the content already stored and a delist of a delisted item change nothing."""

    model_config = ConfigDict(extra="forbid")

    put_item: PutItemBody | None = None
    delist_item: Id | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ItemMessage:
        if (self.put_item is None) == (self.delist_item is None):
            raise ValueError("an item message has exactly one of put_item and delist_item")
        return self


class ItemResponse(Envelope):
    """An overlay item as stored, with the fields every response carries."""

    item_id: str
    title: str
    description: str
    brand: str
    categories: list[str] = Field(description="Root first.")
    price: float | None
    available: bool
    delisted: bool = Field(description="True after DELETE /v1/items/{item_id}: never served until put again.")
    updated_at: float = Field(description="Unix seconds of the last write that changed the item.")

    @classmethod
    def of(
        cls, item: CatalogItem, *, model_version: str, request_id: str, degraded: bool = False
    ) -> ItemResponse:
        return cls(**item.to_row(), model_version=model_version, request_id=request_id, degraded=degraded)
