"""The live catalogue's overlay applied to a dataset, so that ``shoprec train --overlay`` builds a bundle
whose catalogue is the one being served: items written at run time (``PUT /v1/items/{item_id}``) join it,
and delisted or unavailable ones stay in the data but are marked so.

Pure: the caller reads the items from the store (:func:`shoprec.adapters.item_stores.item_store_for`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from shoprec.data.model import Dataset, ItemMeta
from shoprec.items import CatalogItem


def apply_overlay(ds: Dataset, items: Sequence[CatalogItem]) -> Dataset:
    """``ds`` with ``items`` (an :class:`~shoprec.ports.ItemStore`'s listing) over its catalogue.

    - An item the dataset knows gets the overlay's fields in place of its catalogue row (a put replaces
      the whole item), with ``available`` = the item is visible. A bare tombstone (``DELETE`` of an id that
      was never put) keeps the dataset's row and only marks it unavailable.
    - An item the dataset does not know is appended to the item ids, without interactions: it gets a
      text embedding and is found by search once trained. A delisted one is left out (nothing to serve,
      nothing learnt from it); an unavailable one joins, marked.
    - Interactions are never dropped: a delisted item's were real.

    Items are applied in order; for an id listed twice, the later one wins.
    """
    if not items:
        return ds
    catalog = dict(ds.catalog or {})
    known = set(ds.item_ids)
    added: dict[str, None] = {}  # the new ids, in order of first appearance
    for item in items:
        if item.item_id not in known:
            if item.delisted:
                catalog.pop(item.item_id, None)
                added.pop(item.item_id, None)
                continue
            added[item.item_id] = None
        if _bare_tombstone(item):
            catalog[item.item_id] = dataclasses.replace(
                catalog.get(item.item_id, ItemMeta()), available=False
            )
        else:
            catalog[item.item_id] = _meta(item)
    return Dataset(
        name=ds.name,
        source=ds.source,
        item_ids=[*ds.item_ids, *added],
        user_ids=ds.user_ids,
        sequences=ds.sequences,
        catalog=catalog,
        fmt=ds.fmt,
    )


def _meta(item: CatalogItem) -> ItemMeta:
    return ItemMeta(
        title=item.title,
        brand=item.brand,
        categories=item.categories,
        description=item.description,
        price=item.price,
        available=item.visible,
    )


def _bare_tombstone(item: CatalogItem) -> bool:
    """A delisted item that carries no fields: the id was deleted without ever being put."""
    return item.delisted and _meta(item) == ItemMeta(available=False)
