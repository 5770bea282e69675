"""Recall channels: each finds a few hundred candidate items for a user's recent items, with a reason.

A channel is anything with a ``name`` and ``recall(context, n)`` (:class:`RecallChannel`); the
recommendation pipeline asks each configured channel for its quota and merges the lists
(:mod:`shoprec.recall.merge`).  Channels honour :meth:`RecallContext.allowed_mask`, so filters and the
exclusion of seen items happen *before* the budget is spent, not after.

Scores are each channel's own scale (item-CF similarity sums, dot products, interaction counts); the
merge normalises them.  Candidates come back best first, ties broken by the smaller item index.

Fusion needs every channel's opinion of every candidate, including candidates another channel found:
``signal(context, items)`` is the channel's score of any items (item-CF similarity sum, dot product,
``log1p`` of the interaction count), and ``reasons(context, items)`` explains them, so the final list
can name whichever source contributed most to an item's fused score.

Serving code: numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import CONTENT_CHANNEL, EMBEDDING_CHANNEL, ITEMCF_CHANNEL, POPULARITY_CHANNEL
from shoprec.catalog import BoolArray, CatalogIndex, IntArray, LazySequence
from shoprec.recall.itemcf import DEFAULT_DECAY, DEFAULT_MAX_HISTORY, ItemCFNeighbours

if TYPE_CHECKING:
    from shoprec.recall.online import OnlineItemCF, OnlinePopularity

FloatArray = npt.NDArray[np.float32]

ITEMCF = ITEMCF_CHANNEL
EMBEDDING = EMBEDDING_CHANNEL
POPULARITY = POPULARITY_CHANNEL
CONTENT = CONTENT_CHANNEL
EMBEDDING_REASON = "similar to items you viewed"


@dataclass(frozen=True, eq=False)
class RecallContext:
    """What recall knows about a request.

    ``recent``: the user's recent item indices, oldest first (may be empty: cold start).
    ``query``: the search query, if any.  ``allowed``: bool mask over all items that may be returned
    (filters), ``None`` for all.  ``exclude``: item indices never to return (e.g. the seen items).
    """

    recent: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    query: str | None = None
    allowed: BoolArray | None = None
    exclude: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def allowed_mask(self, n_items: int) -> BoolArray | None:
        """``allowed`` with ``exclude`` removed; ``None`` when every item may be returned. A mask over
        every item: channels ask :meth:`allows` about their candidates instead."""
        if self.allowed is None and self.exclude.size == 0:
            return None
        mask = np.ones(n_items, dtype=np.bool_) if self.allowed is None else self.allowed.copy()
        mask[self.exclude] = False
        return mask

    @property
    def restricts(self) -> bool:
        """Whether some item may not be returned (a filter or an exclusion)."""
        return self.allowed is not None or self.exclude.size > 0

    def allows(self, items: IntArray) -> BoolArray:
        """Whether each of ``items`` may be returned: ``allowed_mask(n)[items]`` without a mask over
        every item (the cost is the candidates', not the catalogue's)."""
        ok = (
            np.ones(items.size, dtype=np.bool_)
            if self.allowed is None
            else np.array(self.allowed[items], dtype=np.bool_)
        )
        if self.exclude.size:
            ok &= ~np.isin(items, self.exclude)
        return ok


@dataclass(frozen=True, eq=False)
class Recalled:
    """A channel's candidates: item indices best first and the channel's scores of them."""

    items: IntArray
    scores: FloatArray

    @classmethod
    def none(cls) -> Recalled:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.items.size)


class RecallChannel(Protocol):
    """A named source of candidates."""

    @property
    def name(self) -> str: ...

    def recall(self, context: RecallContext, n: int) -> Recalled:
        """At most ``n`` candidates allowed by ``context``, best first (ties: the smaller index)."""
        ...

    def signal(self, context: RecallContext, items: IntArray) -> FloatArray:
        """The channel's score of each of ``items`` for ``context`` (whether it would recall them or not)."""
        ...

    def reasons(self, context: RecallContext, items: IntArray) -> list[str]:
        """Why the channel would recommend each of ``items`` (the reason of :meth:`recall`'s candidates)."""
        ...


class VectorIndex(Protocol):
    """Maximum inner product search over the item table; an ANN index can replace the exact one."""

    def search(
        self,
        query_vec: npt.NDArray[np.floating],
        n: int,
        exclude: IntArray | None = None,
        *,
        allowed: BoolArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        """The ``n`` items with the largest ``item · query_vec`` among ``allowed`` minus ``exclude``,
        best first, ties by the smaller index."""
        ...


def top_n(scores: npt.NDArray[np.floating], n: int, mask: BoolArray | None = None) -> IntArray:
    """Indices of the ``n`` largest ``scores`` within ``mask``, by (-score, index).  Uses a partial sort,
    so it costs O(len(scores)) plus O(n log n)."""
    if mask is None and n > 0 and scores.size > n:
        # The whole row: partition it in place of a copy indexed by every position.
        kth = np.partition(scores, scores.size - n)[scores.size - n]
        idx = np.flatnonzero(scores >= kth)
        vals = scores[idx]
        order = np.lexsort((idx, -vals))[:n]
        return idx[order].astype(np.int64, copy=False)
    idx = np.flatnonzero(mask) if mask is not None else np.arange(scores.size, dtype=np.int64)
    if n <= 0 or idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    vals = scores[idx]
    if idx.size > n:
        # Keep everything tied with the n-th value so that the index tie-break below is exact.
        kth = np.partition(vals, idx.size - n)[idx.size - n]
        keep = vals >= kth
        idx, vals = idx[keep], vals[keep]
    order = np.lexsort((idx, -vals))[:n]
    return idx[order].astype(np.int64, copy=False)


def recency_mean(
    table: npt.NDArray[np.float32], recent: IntArray, last: int, decay: float
) -> npt.NDArray[np.float32]:
    """Weighted mean of the rows of ``table`` for the last ``last`` recent items, weight ``decay ** age``
    (0 = the newest): the query vector of the embedding and content channels."""
    tail = recent[-last:]
    weights = (decay ** np.arange(tail.size - 1, -1, -1)).astype(np.float32)
    vec: npt.NDArray[np.float32] = (weights @ table[tail]) / weights.sum()
    return vec


class ExactDotProductIndex:
    """Brute-force inner products against the whole item table (4k x 64 floats: tens of microseconds)."""

    def __init__(self, vectors: npt.ArrayLike) -> None:
        table = np.ascontiguousarray(vectors, dtype=np.float32)
        if table.ndim != 2:
            raise ValueError(f"vectors must be 2-D [n_items, d], got shape {table.shape}")
        self.vectors = table

    def search(
        self,
        query_vec: npt.NDArray[np.floating],
        n: int,
        exclude: IntArray | None = None,
        *,
        allowed: BoolArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        return self.top(self.vectors @ np.asarray(query_vec, dtype=np.float32), n, exclude, allowed=allowed)

    def search_many(
        self, queries: npt.NDArray[np.float32], n: int, contexts: Sequence[RecallContext]
    ) -> list[tuple[IntArray, FloatArray]]:
        """:meth:`search` for several queries (rows), each with its context's ``exclude`` and ``allowed``:
        one matrix product reads the table once for all of them, where one query at a time reads it per
        query (a 12k x 384 table is 18 MB: the batch is many times faster offline)."""
        scores = np.asarray(queries, dtype=np.float32) @ self.vectors.T
        return [
            self.top(row, n, c.exclude, allowed=c.allowed) for row, c in zip(scores, contexts, strict=True)
        ]

    @staticmethod
    def top(
        scores: FloatArray, n: int, exclude: IntArray | None = None, *, allowed: BoolArray | None = None
    ) -> tuple[IntArray, FloatArray]:
        """The ``n`` best of ``scores`` among ``allowed`` minus ``exclude`` (ties: the smaller index)."""
        if allowed is None and exclude is not None and exclude.size:
            # The best n + |exclude| hold the best n not excluded: no mask over every item.
            head = top_n(scores, n + int(exclude.size))
            idx = head[~np.isin(head, exclude)][:n]
            return idx, scores[idx]
        mask = allowed
        if exclude is not None and exclude.size:
            mask = np.ones(scores.size, dtype=np.bool_) if mask is None else mask.copy()
            mask[exclude] = False
        idx = top_n(scores, n, mask)
        return idx, scores[idx]


class ItemCFChannel:
    """Item-CF neighbours of the recent items, scored by :meth:`ItemCFNeighbours.score_histories`, with
    the live co-occurrence counts of ``online`` blended in when given (:mod:`shoprec.recall.online`).

    The reason names the recent item that contributes most to the candidate's score
    ("because you viewed Digital Caliper 6 inch").
    """

    name = ITEMCF

    def __init__(
        self,
        itemcf: ItemCFNeighbours,
        catalog: CatalogIndex,
        *,
        max_history: int = DEFAULT_MAX_HISTORY,
        decay: float = DEFAULT_DECAY,
        online: OnlineItemCF | None = None,
    ) -> None:
        self.itemcf = itemcf
        self.catalog = catalog
        self.max_history = max_history
        self.decay = decay
        self.online = online

    def scores(self, recent: IntArray) -> FloatArray:
        """Every item's score for ``recent``: the bundle's item-CF sum plus what the live lists add (a
        row over every item; requests use :meth:`sparse_scores`)."""
        items, values = self.sparse_scores(recent)
        scores = np.zeros(self.catalog.n_items, dtype=np.float32)
        scores[items] = values
        return scores

    def sparse_scores(self, recent: IntArray) -> tuple[IntArray, FloatArray]:
        """The items with a score for ``recent`` (ascending) and their scores: the neighbours of the last
        ``max_history`` recent items in the bundle's table and in the live lists, with the float32 values
        of the dense sum (``ItemCFNeighbours.score_histories`` plus ``OnlineItemCF.scores``, added in the
        same order); every other item scores 0."""
        items, scores = self.itemcf.score_history(recent, max_history=self.max_history, decay=self.decay)
        if self.online is None:
            return items, scores
        hist = recent[-self.max_history :]
        if hist.size == 0:
            return items, scores
        rows = [
            (age, idx, extra)
            for age, (idx, extra) in zip(range(hist.size - 1, -1, -1), self.online.rows(hist), strict=True)
            if idx.size
        ]
        if not rows:
            return items, scores
        union = np.union1d(items, np.concatenate([idx for _, idx, _ in rows]))
        merged = np.zeros(union.size, dtype=np.float32)
        merged[np.searchsorted(union, items)] = scores
        live = np.zeros(union.size, dtype=np.float32)
        for age, idx, extra in rows:  # as OnlineItemCF.scores accumulates them, oldest first
            np.add.at(live, np.searchsorted(union, idx), np.float32(self.decay**age) * extra)
        merged += live
        return union, merged

    def similar(self, item: int) -> tuple[IntArray, FloatArray]:
        """``item``'s neighbours best first: the bundle's, with the live ones blended in."""
        idx, scores = self.itemcf.similar(item)
        if self.online is None:
            return idx, scores
        return self.online.similar(item, idx, scores)

    def recall(self, context: RecallContext, n: int) -> Recalled:
        recent = context.recent
        if recent.size == 0 or n <= 0:
            return Recalled.none()
        found, scores = self.sparse_scores(recent)
        keep = scores > 0
        if context.restricts:
            keep &= context.allows(found)
        found, scores = found[keep], scores[keep]
        best = top_n(scores, n)  # positions in ascending item order: ties fall to the smaller item
        return Recalled(found[best], scores[best])

    def signal(self, context: RecallContext, items: IntArray) -> FloatArray:
        if context.recent.size == 0:
            return np.zeros(items.size, dtype=np.float32)
        found, scores = self.sparse_scores(context.recent)
        col = _column_of(found, items)
        out: FloatArray = np.where(col >= 0, scores[np.maximum(col, 0)] if scores.size else 0, 0).astype(
            np.float32
        )
        return out

    def reasons(self, context: RecallContext, items: IntArray) -> list[str]:
        if context.recent.size == 0 or items.size == 0:
            return ["" for _ in range(items.size)]
        source = self.attribute(context.recent, items).tolist()
        text = {h: f"because you viewed {self.catalog.short_title(h)}" for h in set(source)}
        return [text[h] for h in source]

    def proximity(self, recent: IntArray, items: IntArray) -> tuple[FloatArray, FloatArray]:
        """For each of ``items``: its similarity to the most recent item, and the age (0 = the most
        recent) of the most recent of the last ``max_history`` items that lists it among its neighbours
        (``max_history`` when none does). Recency of the co-occurrence, for the stacking features."""
        last = np.zeros(items.size, dtype=np.float32)
        age = np.full(items.size, float(self.max_history), dtype=np.float32)
        if recent.size == 0 or items.size == 0:
            return last, age
        hist = recent[-self.max_history :][::-1]  # most recent first
        nb_idx = self.itemcf.indices[hist].astype(np.int64)  # [H, k]
        cols = np.where(nb_idx >= 0, _column_of(items, np.maximum(nb_idx, 0)), -1)
        hit = cols >= 0
        first = cols[0][hit[0]]
        last[first] = self.itemcf.scores[hist[0]][hit[0]]
        ages = np.broadcast_to(np.arange(hist.size, dtype=np.float32)[:, None], cols.shape)
        np.minimum.at(age, cols[hit], ages[hit])
        return last, age

    def attribute(self, recent: IntArray, items: IntArray) -> IntArray:
        """For each of ``items``, the recent item contributing most to its score (ties: the most recent).

        Same weights as ``score_histories``: ``decay ** age`` over the last ``max_history`` items, summed
        over repeated occurrences.
        """
        hist = recent[-self.max_history :][::-1].tolist()  # most recent first: argmax keeps the newest
        weights = self.decay ** np.arange(len(hist), dtype=np.float64)
        row = {h: r for r, h in enumerate(dict.fromkeys(hist))}
        uniq = np.fromiter(row, dtype=np.int64, count=len(row))
        item_weight = np.bincount([row[h] for h in hist], weights=weights, minlength=uniq.size)
        nb_idx = self.itemcf.indices[uniq]  # [U, k]
        nb_val = self.itemcf.scores[uniq].astype(np.float64) * item_weight[:, None]
        cols = np.where(nb_idx >= 0, _column_of(items, nb_idx), -1)
        valid = cols >= 0
        rows = np.broadcast_to(np.arange(uniq.size)[:, None], cols.shape)
        contrib = np.zeros((uniq.size, items.size), dtype=np.float64)
        contrib[rows[valid], cols[valid]] = nb_val[valid]
        if self.online is not None:
            for r, (live_idx, extra) in enumerate(self.online.rows(uniq)):
                live_cols = _column_of(items, live_idx)
                hit = live_cols >= 0
                contrib[r, live_cols[hit]] += extra[hit] * item_weight[r]
        best: IntArray = uniq[np.argmax(contrib, axis=0)]
        return best


class EmbeddingChannel:
    """Items whose embedding is closest (dot product) to a recency-weighted mean of the last few recent
    items' embeddings.  The vectors are the Transformer's item table, so this channel finds items the
    ranker will also like, including ones item-CF never saw together."""

    name = EMBEDDING

    def __init__(
        self,
        embeddings: npt.ArrayLike,
        catalog: CatalogIndex,
        *,
        index: VectorIndex | None = None,
        last: int = 5,
        decay: float = 0.7,
    ) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.catalog = catalog
        self.index: VectorIndex = index if index is not None else ExactDotProductIndex(self.embeddings)
        self.last = last
        self.decay = decay

    def query_vector(self, recent: IntArray) -> npt.NDArray[np.float32]:
        """Weighted mean of the last ``last`` recent embeddings, weight ``decay ** age`` (0 = newest)."""
        return recency_mean(self.embeddings, recent, self.last, self.decay)

    def recall(self, context: RecallContext, n: int) -> Recalled:
        if context.recent.size == 0 or n <= 0:
            return Recalled.none()
        idx, scores = self.index.search(
            self.query_vector(context.recent), n, context.exclude, allowed=context.allowed
        )
        return Recalled(idx, scores)

    def recall_many(self, contexts: Sequence[RecallContext], n: int) -> list[Recalled]:
        """:meth:`recall` for several requests, with one matrix product when the search is exact."""
        return _recall_many(self, self.index, contexts, n, self.query_vector)

    def signal(self, context: RecallContext, items: IntArray) -> FloatArray:
        if context.recent.size == 0:
            return np.zeros(items.size, dtype=np.float32)
        out: FloatArray = self.embeddings[items] @ self.query_vector(context.recent)
        return out

    def reasons(self, context: RecallContext, items: IntArray) -> list[str]:
        return [EMBEDDING_REASON] * items.size


@dataclass(frozen=True, eq=False)
class _Ranking:
    """A popularity vector with what requests read of it, computed once per vector."""

    popularity: FloatArray
    order: IntArray
    log_popularity: FloatArray
    percentile: FloatArray

    @classmethod
    def of(cls, pop: FloatArray) -> _Ranking:
        # Global order by (-popularity, index) (a stable sort of -popularity: half a lexsort's time); a
        # request only reads its head.
        order = np.argsort(-pop, kind="stable").astype(np.int64)
        # Each item's place in the popularity order as a fraction: 1.0 for the best seller, 0.0 for the last.
        percentile = np.empty(pop.size, dtype=np.float32)
        percentile[order] = 1.0 - np.arange(pop.size) / max(pop.size - 1, 1)
        return cls(pop, order, np.log1p(np.maximum(pop, 0.0)).astype(np.float32), percentile)


class PopularityChannel:
    """The most interacted-with items: the cold-start list and a small share of every other list.

    ``popularity`` is the bundle's; with ``online``, the trending counts are blended in
    (:mod:`shoprec.recall.online`) and the order is computed again whenever they were read again."""

    name = POPULARITY

    def __init__(
        self, popularity: npt.ArrayLike, catalog: CatalogIndex, *, online: OnlinePopularity | None = None
    ) -> None:
        pop = np.asarray(popularity, dtype=np.float32)
        if pop.shape != (catalog.n_items,):
            raise ValueError(f"popularity has shape {pop.shape}, expected ({catalog.n_items},)")
        self.popularity = pop
        self.catalog = catalog
        self.online = online
        self._base = _Ranking.of(pop)
        self._live: tuple[int, _Ranking] | None = None
        self.reason_of: Sequence[str] = _PopularReasons(catalog)

    def _ranking(self) -> _Ranking:
        if self.online is None:
            return self._base
        version, blended = self.online.current()
        if blended is None:
            return self._base
        live = self._live
        if live is None or live[0] != version:
            # Requests racing here compute the same ranking; the last one kept is as good as the first.
            live = (version, _Ranking.of(blended))
            self._live = live
        return live[1]

    @property
    def percentile(self) -> FloatArray:
        """Each item's place in the popularity order: 1.0 for the best seller, 0.0 for the last."""
        return self._ranking().percentile

    def recall(self, context: RecallContext, n: int) -> Recalled:
        if n <= 0:
            return Recalled.none()
        ranking = self._ranking()
        top = _first_allowed(ranking.order, context, n)
        return Recalled(top, ranking.popularity[top])

    def signal(self, context: RecallContext, items: IntArray) -> FloatArray:
        """``log1p`` of the interaction count: counts are heavy-tailed, so a min-max over raw counts would
        leave every item but the few best sellers near zero."""
        return self._ranking().log_popularity[items]

    def reasons(self, context: RecallContext, items: IntArray) -> list[str]:
        return [self.reason_of[i] for i in items.tolist()]


class ContentChannel:
    """Items whose text is closest (cosine) to the recent items' texts: a recency-weighted mean of the
    last few recent items' sentence embeddings (``pipeline.text``) against every item's.

    It knows every item that has a text, interactions or not, so it recommends new and rarely seen
    items that item-CF and the Transformer's table cannot place. Without text embeddings (a bundle
    trained without a catalogue) it recalls nothing and scores 0. The reason names the recent item whose
    text is closest to the candidate's ("like Digital Caliper 6 inch that you viewed").
    """

    name = CONTENT

    def __init__(
        self,
        vectors: npt.ArrayLike | None,
        catalog: CatalogIndex,
        *,
        index: VectorIndex | None = None,
        last: int = 5,
        decay: float = 0.7,
    ) -> None:
        self.catalog = catalog
        self.last = last
        self.decay = decay
        self.vectors: FloatArray | None = None
        self.index: VectorIndex | None = None
        if vectors is not None:
            table = np.ascontiguousarray(vectors, dtype=np.float32)
            if table.ndim != 2 or table.shape[0] != catalog.n_items:
                raise ValueError(f"text embeddings have shape {table.shape}, expected ({catalog.n_items}, d)")
            self.vectors = table
            self.index = index if index is not None else ExactDotProductIndex(table)

    @property
    def available(self) -> bool:
        return self.vectors is not None

    def query_vector(self, recent: IntArray) -> npt.NDArray[np.float32] | None:
        """Weighted mean of the last ``last`` recent items' text vectors (``decay ** age``, 0 = newest);
        ``None`` without text embeddings or when none of those items has a text."""
        if self.vectors is None or recent.size == 0:
            return None
        vec = recency_mean(self.vectors, recent, self.last, self.decay)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else None

    def recall(self, context: RecallContext, n: int) -> Recalled:
        query = self.query_vector(context.recent)
        if query is None or n <= 0 or self.index is None:
            return Recalled.none()
        idx, scores = self.index.search(query, n, context.exclude, allowed=context.allowed)
        return Recalled(idx, scores)

    def recall_many(self, contexts: Sequence[RecallContext], n: int) -> list[Recalled]:
        """:meth:`recall` for several requests, with one matrix product when the search is exact."""
        if self.index is None:
            return [Recalled.none() for _ in contexts]
        return _recall_many(self, self.index, contexts, n, self.query_vector)

    def signal(self, context: RecallContext, items: IntArray) -> FloatArray:
        query = self.query_vector(context.recent)
        if query is None or self.vectors is None:
            return np.zeros(items.size, dtype=np.float32)
        out: FloatArray = self.vectors[items] @ query
        return out

    def similar(
        self, item: int, n: int, exclude: IntArray | None = None, *, allowed: BoolArray | None = None
    ) -> tuple[IntArray, FloatArray]:
        """The ``n`` items whose text is closest to ``item``'s (never ``item`` itself), among ``allowed``."""
        if self.vectors is None or self.index is None or not self.vectors[item].any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        skip = np.asarray([item], dtype=np.int64) if exclude is None else np.union1d(exclude, [item])
        return self.index.search(self.vectors[item], n, skip, allowed=allowed)

    def reasons(self, context: RecallContext, items: IntArray) -> list[str]:
        if self.vectors is None or context.recent.size == 0 or items.size == 0:
            return ["" for _ in range(items.size)]
        tail = np.asarray(list(dict.fromkeys(context.recent[-self.last :][::-1].tolist())), dtype=np.int64)
        closest = tail[np.argmax(self.vectors[tail] @ self.vectors[items].T, axis=0)].tolist()
        text = {h: f"like {self.catalog.short_title(h)} that you viewed" for h in set(closest)}
        return [text[h] for h in closest]


class _PopularReasons(LazySequence[str]):
    """The popularity channel's reason of each item, made when read: "popular in <its leaf category>"."""

    def __init__(self, catalog: CatalogIndex) -> None:
        self.catalog = catalog

    def __len__(self) -> int:
        return self.catalog.n_items

    def _at(self, j: int) -> str:
        leaf = self.catalog.leaf_category(j)
        return f"popular in {leaf}" if leaf else "popular now"


def _first_allowed(order: IntArray, context: RecallContext, n: int) -> IntArray:
    """The first ``n`` of ``order`` that ``context`` allows: ``order[mask[order]][:n]``, reading the order
    in growing chunks until ``n`` are found (a short prefix, unless a filter allows few items)."""
    if not context.restricts:
        return order[:n]
    found: list[IntArray] = []
    have, start, size = 0, 0, max(2 * n + int(context.exclude.size), 64)
    while have < n and start < order.size:
        chunk = order[start : start + size]
        kept = chunk[context.allows(chunk)]
        found.append(kept)
        have += int(kept.size)
        start += size
        size *= 4
    out: IntArray = np.concatenate(found)[:n] if found else order[:0]
    return out


def _column_of(items: IntArray, values: npt.NDArray[np.integer]) -> IntArray:
    """For each of ``values``, its position in ``items`` (the last one when an item repeats), ``-1`` where
    absent: what ``column[values]`` gives after ``column = full(n_items, -1); column[items] = arange``,
    without an array over every item."""
    if items.size == 0:
        return np.full(np.shape(values), -1, dtype=np.int64)
    order = np.argsort(items, kind="stable")
    ranked = items[order]
    pos = np.searchsorted(ranked, values, side="right") - 1
    safe = np.maximum(pos, 0)
    hit = (pos >= 0) & (ranked[safe] == values)
    out: IntArray = np.where(hit, order[safe], -1).astype(np.int64, copy=False)
    return out


def _recall_many(
    channel: EmbeddingChannel | ContentChannel,
    index: VectorIndex,
    contexts: Sequence[RecallContext],
    n: int,
    query_vector: Callable[[IntArray], npt.NDArray[np.float32] | None],
) -> list[Recalled]:
    """The vector channels' batched recall: the requests whose query vector exists are searched together
    when ``index`` is exact (an ANN index searches one query at a time)."""
    if not isinstance(index, ExactDotProductIndex) or len(contexts) < 2 or n <= 0:
        return [channel.recall(c, n) for c in contexts]
    out = [Recalled.none() for _ in contexts]
    rows, queries = [], []
    for i, context in enumerate(contexts):
        if context.recent.size:
            query = query_vector(context.recent)
            if query is not None:
                rows.append(i)
                queries.append(query)
    if rows:
        found = index.search_many(np.stack(queries), n, [contexts[i] for i in rows])
        for i, (idx, scores) in zip(rows, found, strict=True):
            out[i] = Recalled(idx, scores)
    return out
