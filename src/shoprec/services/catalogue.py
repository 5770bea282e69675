"""Read-only views of the served catalogue: item details and the popular items.

What a shop page needs beside the ranked lists: a card shows the brand and price that list items do not
carry, a product view the description and category path, and a "popular now" shelf the best sellers
whoever is looking. Everything comes from one view of the live catalogue (the bundle's items with the
items written since training over them, ``services.live_catalog``); a delisted item is unknown here as
everywhere, an out-of-stock one is described (``available`` false) but never listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shoprec.catalog import CatalogIndex
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
    available: bool


class CatalogueService:
    """Item details and popular items of one catalogue view: ``catalog`` the view's catalogue,
    ``popularity`` the popularity channel of the pipeline over it."""

    def __init__(self, catalog: CatalogIndex, popularity: PopularityChannel, *, model_version: str) -> None:
        self.catalog = catalog
        self.popularity = popularity
        self.model_version = model_version

    def item(self, item_id: str) -> ItemDetails:
        """The item's details. Raises ``NotFoundError(field="item_id")`` for an id the catalogue does not
        know or has delisted."""
        i = self._index(item_id)
        if i is None:
            raise NotFoundError(f"unknown item id {item_id!r}", field="item_id")
        return self._details(i)

    def items(self, item_ids: Sequence[str]) -> list[ItemDetails]:
        """Details of ``item_ids`` in their order, duplicates dropped. Raises
        ``InvalidInputError(field="ids")`` listing the ids the catalogue does not know or has delisted."""
        unique = list(dict.fromkeys(item_ids))
        found = [self._index(item_id) for item_id in unique]
        unknown = [item_id for item_id, i in zip(unique, found, strict=True) if i is None]
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} unknown item id(s): {', '.join(unknown[:10])}", field="ids", values=unknown
            )
        return [self._details(i) for i in found if i is not None]

    def popular(self, k: int, *, category: str | None = None, brand: str | None = None) -> ListResult:
        """The ``k`` most popular servable items (optionally of a category / brand), the same for every
        shopper: the popularity channel's order and reasons, scores scaled so that the first item has 1."""
        filtered = self.catalog.filtered(category, brand)
        context = RecallContext(allowed=self.catalog.mask_for(category, brand) if filtered else None)
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

    def _index(self, item_id: str) -> int | None:
        i = self.catalog.index(item_id)
        return i if i is not None and bool(self.catalog.listed[i]) else None

    def _details(self, i: int) -> ItemDetails:
        price = float(self.catalog.prices[i])
        return ItemDetails(
            item_id=self.catalog.item_ids[i],
            title=self.catalog.title(i),
            brand=self.catalog.brands[i],
            categories=self.catalog.categories[i],
            description=self.catalog.descriptions[i],
            price=None if math.isnan(price) else price,
            available=bool(self.catalog.available[i]),
        )
