"""Merchandising rules applied to a ranked candidate list: the end of the re-rank stage.

:func:`apply_rules` is pure and deterministic. In order:

1. **block**: every item a block rule targets is removed, pinned ones included.
2. **boost / bury**: each remaining candidate's score moves by ``(sum of its boost weights - sum of its
   bury weights) x span``, where ``span`` is the range (max - min) of the candidates' scores (1 when they
   are all equal). So weight 1 lifts an item above every item no rule touched, 0.1 by a tenth of the
   range, whatever the scale of the scores (fused, BM25, similarities, possibly negative). An item whose
   net shift is positive is explained "promoted"; a buried one keeps its reason.
3. The candidates that are not pinned go through the ordinary re-rank (:func:`shoprec.rerank.rules.rerank`:
   duplicates, seen items, filters, diversity, order by (-score, item id)) for ``k`` items.
4. **pin**: pinned items (pin rules by (position, rule id), each rule's items in its order; an item
   pinned twice keeps its first place) are inserted at their 1-based ``position``; several pins at one
   position follow each other. A pinned item must be in the catalogue and pass the request's filters
   and seen-item exclusion; recall need not have found it. Past the end of a shorter list it is appended;
   a position past ``k`` shows nothing. A pinned item takes the score of the item above it (of the one
   below at the top), so scores stay non-increasing down the list, and the reason "promoted".

The list is cut to ``k``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Final

import numpy as np

from shoprec.catalog import BoolArray, CatalogIndex, is_given
from shoprec.domain import Candidate
from shoprec.merchandising import MerchRule, RuleAction
from shoprec.rerank.rules import rerank

PROMOTED: Final = "promoted"
MERCH_CHANNEL: Final = "merchandising"
"""The channel named for a pinned item that recall did not find."""

EXTRA_DEPTH: Final = 50
MAX_DEPTH: Final = 300


def merch_depth(k: int, rules: Sequence[MerchRule]) -> int:
    """How many ranked candidates to ask for so that rules can act below the first ``k``: ``k`` without
    rules, else ``max(2k, k + 50)`` up to 300 (the recall budget), so blocked items leave room and
    boosted ones can rise from below the page."""
    if not rules:
        return k
    return max(k, min(MAX_DEPTH, max(2 * k, k + EXTRA_DEPTH)))


def targets(rule: MerchRule, catalog: CatalogIndex) -> BoolArray:
    """The items (a mask over the catalogue) ``rule`` acts on: its listed ids known to the catalogue,
    plus, with a selector, every item of ``item_brand`` in ``item_category`` (matched like filters)."""
    if is_given(rule.item_brand) or is_given(rule.item_category):
        mask = catalog.mask_for(rule.item_category, rule.item_brand).copy()
    else:
        mask = np.zeros(catalog.n_items, dtype=np.bool_)
    listed = catalog.indices(rule.items)
    if listed.size:
        mask[listed] = True
    return mask


def apply_rules(
    candidates: Sequence[Candidate],
    k: int,
    catalog: CatalogIndex,
    rules: Sequence[MerchRule],
    *,
    seen: Collection[int] = (),
    exclude_seen: bool = True,
    category: str | None = None,
    brand: str | None = None,
    max_per_category: int | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
) -> list[Candidate]:
    """The final at most ``k`` candidates after ``rules`` (see the module docstring). The keyword
    arguments are :func:`~shoprec.rerank.rules.rerank`'s; without rules this is that function. The price
    bounds are the request's filters, which pinned items must pass too (the candidates already do)."""
    rerank_args = {
        "seen": seen,
        "exclude_seen": exclude_seen,
        "category": category,
        "brand": brand,
        "max_per_category": max_per_category,
    }
    if not rules or k < 1:
        return rerank(candidates, k, catalog, **rerank_args)  # type: ignore[arg-type]

    blocked = np.zeros(catalog.n_items, dtype=np.bool_)
    shift = np.zeros(catalog.n_items, dtype=np.float64)
    pins: list[MerchRule] = []
    for rule in rules:
        if rule.action == RuleAction.PIN:
            pins.append(rule)
            continue
        mask = targets(rule, catalog)
        if rule.action == RuleAction.BLOCK:
            blocked |= mask
        else:
            assert rule.weight is not None
            shift[mask] += rule.weight if rule.action == RuleAction.BOOST else -rule.weight

    pinned = _pinned(
        pins,
        catalog,
        blocked,
        seen=seen,
        exclude_seen=exclude_seen,
        category=category,
        brand=brand,
        min_price=min_price,
        max_price=max_price,
    )
    pinned_items = {item for item, _ in pinned}
    kept = [c for c in candidates if not blocked[c.item] and c.item not in pinned_items]
    if kept and shift.any():
        scores = [c.score for c in kept]
        span = (max(scores) - min(scores)) or 1.0
        adjusted = []
        for c in kept:
            delta = float(shift[c.item])
            if delta == 0.0:
                adjusted.append(c)
            else:
                reason = PROMOTED if delta > 0 else c.reason
                adjusted.append(replace(c, score=c.score + delta * span, reason=reason))
        kept = adjusted
    out = rerank(kept, k, catalog, **rerank_args)  # type: ignore[arg-type]
    if not pinned:
        return out

    found = {c.item: c for c in candidates}
    last = -1
    for item, position in pinned:
        at = min(max(position - 1, last + 1), len(out))
        if at >= k:
            continue
        base = found.get(item)
        channels = list(base.channels) if base is not None else [MERCH_CHANNEL]
        if at > 0:
            score = out[at - 1].score
        elif out:
            score = out[0].score
        else:
            score = base.score if base is not None else 0.0
        out.insert(at, Candidate(item=item, score=score, channels=channels, reason=PROMOTED))
        last = at
    return out[:k]


def _pinned(
    pins: Sequence[MerchRule],
    catalog: CatalogIndex,
    blocked: BoolArray,
    *,
    seen: Collection[int],
    exclude_seen: bool,
    category: str | None,
    brand: str | None,
    min_price: float | None = None,
    max_price: float | None = None,
) -> list[tuple[int, int]]:
    """(item index, position) of every item to pin, in placing order, after blocks, seen items and
    filters (an unavailable or delisted item is never pinned); an item pinned by two rules keeps the
    first."""
    if not pins:
        return []
    allowed = (
        catalog.mask_for(category, brand, min_price, max_price)
        if catalog.filtered(category, brand, min_price, max_price)
        else None
    )
    excluded = set(seen) if exclude_seen else set()
    out: list[tuple[int, int]] = []
    taken: set[int] = set()
    for rule in sorted(pins, key=lambda r: (r.position or 0, r.rule_id)):
        assert rule.position is not None
        for item_id in rule.items:
            i = catalog.index(item_id)
            if i is None or i in taken or blocked[i] or i in excluded:
                continue
            if allowed is not None and not allowed[i]:
                continue
            taken.add(i)
            out.append((i, rule.position))
    return out
