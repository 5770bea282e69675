"""Catalogue items written at run time (``PUT`` / ``DELETE /v1/items/{item_id}``): the *overlay* the state
store keeps over the bundle's catalogue. No pydantic and no I/O here: the ports, the stores and training
share this type; the API's request model (:mod:`shoprec.api.item_schemas`) builds it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoprec.domain import ID_PATTERN

CONTENT_FIELDS: tuple[str, ...] = (
    "title",
    "description",
    "brand",
    "categories",
    "price",
    "available",
    "delisted",
)
"""The fields that make an item what it is; ``updated_at`` only says when it was written. Two writes with
equal content fields are the same write (idempotency)."""


@dataclass(frozen=True)
class CatalogItem:
    """One item of the overlay. A delisted item is a tombstone: it is kept (with the fields it had, if it
    had any) so that the bundle's copy of the item stays hidden until it is put again.

    Construction checks the fields and raises ``ValueError`` naming the one that is wrong.
    """

    item_id: str
    title: str = ""
    description: str = ""
    brand: str = ""
    categories: tuple[str, ...] = ()
    """The category path, root first."""
    price: float | None = None
    available: bool = True
    delisted: bool = False
    updated_at: float = 0.0
    """Unix seconds of the last write that changed the item, set by the store."""

    def __post_init__(self) -> None:
        if not isinstance(self.item_id, str) or not ID_PATTERN.match(self.item_id):
            raise ValueError(f"item_id: {self.item_id!r} is not 1..128 letters, digits or _.:@-")
        for name in ("title", "description", "brand"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: must be a string, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.categories, tuple) or not all(isinstance(c, str) for c in self.categories):
            raise ValueError("categories: must be a tuple of strings")
        if self.price is not None and not _is_non_negative_number(self.price):
            raise ValueError(f"price: must be a finite number >= 0 or null, got {self.price!r}")
        for name in ("available", "delisted"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        if not _is_non_negative_number(self.updated_at):
            raise ValueError(f"updated_at: must be finite unix seconds >= 0, got {self.updated_at!r}")

    @property
    def visible(self) -> bool:
        """Whether the item may be served: available and not delisted."""
        return self.available and not self.delisted

    def content(self) -> tuple[Any, ...]:
        """The :data:`CONTENT_FIELDS` values: equal for two writes that leave the same item."""
        return tuple(getattr(self, name) for name in CONTENT_FIELDS)

    def to_row(self) -> dict[str, Any]:
        """The item as a JSON-able dict (categories as a list); :meth:`from_row` reads it back."""
        return {
            "item_id": self.item_id,
            "title": self.title,
            "description": self.description,
            "brand": self.brand,
            "categories": list(self.categories),
            "price": self.price,
            "available": self.available,
            "delisted": self.delisted,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CatalogItem:
        """The item of a :meth:`to_row` dict. Absent fields take their defaults and unknown keys are
        ignored (a row written by a newer version still reads); a wrong value raises ``ValueError``
        naming the field."""
        if not isinstance(row, Mapping):
            raise ValueError(f"item: expected an object, got {type(row).__name__}")
        if "item_id" not in row:
            raise ValueError("item_id: missing")
        categories = row.get("categories", ())
        if not isinstance(categories, list | tuple):
            raise ValueError(f"categories: must be a list of strings, got {type(categories).__name__}")
        price = row.get("price")
        if isinstance(price, int) and not isinstance(price, bool):
            price = float(price)
        updated_at = row.get("updated_at", 0.0)
        if isinstance(updated_at, int) and not isinstance(updated_at, bool):
            updated_at = float(updated_at)
        return cls(
            item_id=row["item_id"],
            title=row.get("title", ""),
            description=row.get("description", ""),
            brand=row.get("brand", ""),
            categories=tuple(categories),
            price=price,
            available=row.get("available", True),
            delisted=row.get("delisted", False),
            updated_at=updated_at,
        )


def _is_non_negative_number(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )
