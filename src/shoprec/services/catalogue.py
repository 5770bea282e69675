"""Read-only views of the served catalogue: item details and the popular items.

What a shop page needs beside the ranked lists: a card shows the brand and price that list items do not
carry, a product view the description and category path, and a "popular now" shelf the best sellers of
the bundle whoever is looking. Everything comes from the loaded bundle; no backend is called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.catalog import CatalogIndex, is_given
from shoprec.domain import RankedItem
from shoprec.errors import InvalidInputError, NotFoundError
from shoprec.recall.channels import POPULARITY, PopularityChannel, RecallContext
from shoprec.services.results import ListResult


@dataclass(frozen=True)
class ItemDetails:
    """One catalogue item for display; blanks where the catalogue has nothing (``price`` ``None``)."""

    item_id: str
    title: str
    brand: str
    categories: tuple[str, ...]
    description: str
    price: float | None


class CatalogueService:
    """Item details and popular items of one bundle: ``rows`` are the bundle's raw catalogue rows (for
    the price, which the catalogue index does not keep), ``popularity`` the pipeline's channel."""

    def __init__(
        self,
        catalog: CatalogIndex,
        rows: Mapping[str, Mapping[str, Any]] | None,
        popularity: PopularityChannel,
        *,
        model_version: str,
    ) -> None:
        self.catalog = catalog
        self.rows = rows or {}
        self.popularity = popularity
        self.model_version = model_version

    def item(self, item_id: str) -> ItemDetails:
        """The item's details. Raises ``NotFoundError(field="item_id")`` for an id the bundle lacks."""
        i = self.catalog.index(item_id)
        if i is None:
            raise NotFoundError(f"unknown item id {item_id!r}", field="item_id")
        return self._details(i)

    def items(self, item_ids: Sequence[str]) -> list[ItemDetails]:
        """Details of ``item_ids`` in their order, duplicates dropped. Raises
        ``InvalidInputError(field="ids")`` listing the ids the bundle does not know."""
        unknown = self.catalog.unknown(item_ids)
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} unknown item id(s): {', '.join(unknown[:10])}", field="ids", values=unknown
            )
        return [self._details(int(i)) for i in self.catalog.indices(dict.fromkeys(item_ids))]

    def popular(self, k: int, *, category: str | None = None, brand: str | None = None) -> ListResult:
        """The ``k`` most popular items (optionally of a category / brand), the same for every shopper:
        the popularity channel's order and reasons, scores scaled so that the first item has 1."""
        allowed = self.catalog.mask_for(category, brand) if is_given(category) or is_given(brand) else None
        context = RecallContext(allowed=allowed)
        found = self.popularity.recall(context, k)
        top = float(found.scores[0]) if len(found) and found.scores[0] > 0 else 1.0
        reasons = self.popularity.reasons(context, found.items)
        items = [
            RankedItem(
                item_id=self.catalog.item_ids[i],
                score=round(float(s) / top, 4),
                channels=(POPULARITY,),
                reason=reason,
                title=self.catalog.title(i) or None,
            )
            for i, s, reason in zip(found.items.tolist(), found.scores.tolist(), reasons, strict=True)
        ]
        return ListResult(items=items, model_version=self.model_version)

    def _details(self, i: int) -> ItemDetails:
        item_id = self.catalog.item_ids[i]
        return ItemDetails(
            item_id=item_id,
            title=self.catalog.title(i),
            brand=self.catalog.brands[i],
            categories=self.catalog.categories[i],
            description=self.catalog.descriptions[i],
            price=_price(self.rows.get(item_id, {}).get("price")),
        )


def _price(value: Any) -> float | None:
    """A displayable price: a finite, non-negative number; anything else is unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    price = float(value)
    return price if math.isfinite(price) and price >= 0 else None
