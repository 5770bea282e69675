"""How the item stores keep an overlay item: its :meth:`~shoprec.items.CatalogItem.to_row` as JSON, under
its id. Shared by the sqlite and DynamoDB stores so that both read a damaged row the same way."""

from __future__ import annotations

import json
import logging

from shoprec.domain import ID_PATTERN
from shoprec.items import CatalogItem

log = logging.getLogger(__name__)


def encode(item: CatalogItem) -> str:
    """The body stored for ``item``."""
    return json.dumps(item.to_row(), separators=(",", ":"))


def decode(item_id: str, body: str) -> CatalogItem | None:
    """The item stored as ``body`` under ``item_id``.

    A body that does not read as that item gives a bare tombstone of ``item_id`` (and a warning): what the
    store cannot read must not be served, and the bundle's copy of the item stays hidden until it is put
    again. A key that is no item id at all (not written by a store) is skipped: ``None``.
    """
    if not ID_PATTERN.match(item_id):
        log.warning("skipping a stored item under the invalid id %r", item_id)
        return None
    try:
        item = CatalogItem.from_row(json.loads(body))
        if item.item_id == item_id:
            return item
        reason = f"it names item {item.item_id!r}"
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        reason = str(exc)
    log.warning("stored item %r does not read (%s): treated as delisted", item_id, reason)
    return CatalogItem(item_id, delisted=True)
