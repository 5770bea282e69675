"""The last stage of every list: exclusions, filters, diversity and a deterministic order.

Rules, in order:

1. Duplicates are dropped (the first occurrence of an item wins).
2. Seen items are dropped when ``exclude_seen`` (the default).
3. Category / brand filters (:meth:`CatalogIndex.mask_for`) drop non-matching items.
4. Diversity: among the ``k`` returned items at most ``max_per_category`` share a leaf category.  The cap
   defaults to :func:`default_category_cap` = ``ceil(0.3 * k)`` (3 for k=10, 6 for k=20, 1 for k<=3),
   so it scales with the page size.  The cap is soft: when too few other items remain, the best capped
   items fill the list up to ``k``.  Items without a category are never capped.
5. The chosen items are returned sorted by (-score, item id).  Ordering by the *item id* (not by the
   internal index) gives a total order that is stable across bundles, so pages cut from the same
   scores never repeat or skip an item.

Diversity picks *which* items make the list; it never reorders them against their scores, so scores are
non-increasing down the returned list.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from shoprec.catalog import CatalogIndex
from shoprec.domain import Candidate


def default_category_cap(k: int) -> int:
    """How many of ``k`` items may share a leaf category by default: ``ceil(0.3 * k)``, at least 1."""
    return max(1, math.ceil(0.3 * k))


def rerank(
    candidates: Sequence[Candidate],
    k: int,
    catalog: CatalogIndex,
    *,
    seen: Collection[int] = (),
    exclude_seen: bool = True,
    category: str | None = None,
    brand: str | None = None,
    max_per_category: int | None = None,
) -> list[Candidate]:
    """The final at most ``k`` candidates after the rules of the module docstring.

    ``seen`` holds the item indices the user has interacted with; ``max_per_category`` ``None`` means
    :func:`default_category_cap` of ``k``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    cap = default_category_cap(k) if max_per_category is None else max_per_category
    if cap < 1:
        raise ValueError(f"max_per_category must be >= 1, got {cap}")
    if k == 0:
        return []

    dropped = set(seen) if exclude_seen else set()
    mask = catalog.mask_for(category, brand) if _given(category) or _given(brand) else None
    ids = catalog.item_ids
    kept: list[Candidate] = []
    for c in candidates:
        if c.item in dropped or (mask is not None and not mask[c.item]):
            continue
        dropped.add(c.item)
        kept.append(c)
    kept.sort(key=lambda c: (-c.score, ids[c.item]))

    chosen: list[Candidate] = []
    overflow: list[Candidate] = []
    per_leaf: dict[int, int] = {}
    leaf_codes = catalog.leaf_codes
    for c in kept:
        leaf = int(leaf_codes[c.item])
        if leaf >= 0:
            if per_leaf.get(leaf, 0) >= cap:
                overflow.append(c)
                continue
            per_leaf[leaf] = per_leaf.get(leaf, 0) + 1
        chosen.append(c)
        if len(chosen) == k:
            break
    if len(chosen) < k:
        chosen.extend(overflow[: k - len(chosen)])
        chosen.sort(key=lambda c: (-c.score, ids[c.item]))
    return chosen


def _given(value: str | None) -> bool:
    return value is not None and bool(value.strip())
