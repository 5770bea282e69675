"""Online updates between retrains: co-occurrence and trending counts learnt from the event stream, and
their blend into the item-CF and popularity channels (``docs/online-updates.md``).

Write side (:func:`stream_counts`)
----------------------------------
Each applied event pairs its item ``x`` with the user's last ``context`` (5) items before it, with the
weights item-CF is fitted with (:mod:`shoprec.recall.itemcf`): for the item ``c`` at distance ``d``
(1 = the one just before), ``C[c, x] += d ** -0.5`` (forward) and ``C[x, c] += 0.25 * d ** -0.5``
(backward); and ``x``'s trending count grows by one. So an event costs at most ``context`` forward
updates (one per earlier item's list), one backward update (``x``'s list) and one trending update.

Read side (:class:`OnlineStats`)
--------------------------------
Serving caches each item's live neighbour list and the trending counts in process for ``refresh_s``
seconds: a request reads the lists of its items it lacks in one batched call, trending is read once per
``refresh_s`` per process, and a failing store is not asked again for ``refresh_s`` (the channels then
use the bundle's counts alone, or the lists last read).

Blend
-----
For item ``a`` with live neighbour weights ``live(a, .)`` (those below ``min_count`` dropped)::

    sim'(a, b) = sim(a, b) + w_cf * s_a * live(a, b) / max_b' live(a, b')

where ``sim`` is the bundle's item-CF similarity and ``s_a`` the bundle's best similarity of ``a`` (the
median of the items' best ones when ``a`` has no bundle neighbours): the live list's strongest pair is
worth ``w_cf`` times ``a``'s best bundle neighbour, whatever the scale of the counts. Likewise::

    pop'(i) = pop(i) + w_pop * max(pop) * trend(i) / max_j trend(j)

Serving code: numpy only; the one I/O is through the ``InteractionStatsStore`` port.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shoprec.catalog import CatalogIndex, IntArray
from shoprec.domain import Appended
from shoprec.errors import BackendUnavailableError
from shoprec.ports import InteractionStatsStore
from shoprec.recall.itemcf import DEFAULT_BACKWARD_WEIGHT, DEFAULT_DISTANCE_POWER, ItemCFNeighbours

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
CONTEXT: Final = 5
"""How many of the user's previous items an event is paired with."""
MAX_CACHED_LISTS: Final = 50_000
"""Neighbour lists one process keeps; past this the cache starts over (it refills from requests)."""
_EMPTY_IDX: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_VAL: FloatArray = np.zeros(0, dtype=np.float32)


def stream_counts(
    appended: Mapping[str, Appended],
    *,
    context: int = CONTEXT,
    backward_weight: float = DEFAULT_BACKWARD_WEIGHT,
    distance_power: float = DEFAULT_DISTANCE_POWER,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The co-occurrence weights (``pairs[a][b]``: ``b`` in ``a``'s list) and trending counts that the
    appended events of a batch add (module docstring)."""
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    pairs: dict[str, dict[str, float]] = {}
    items: dict[str, float] = {}
    for done in appended.values():
        window = list(done.before[-context:])
        for x in done.items:
            for d, c in enumerate(reversed(window), start=1):
                if c == x:
                    continue
                w = float(d) ** -distance_power
                forward = pairs.setdefault(c, {})
                forward[x] = forward.get(x, 0.0) + w
                if backward_weight > 0:
                    backward = pairs.setdefault(x, {})
                    backward[c] = backward.get(c, 0.0) + backward_weight * w
            items[x] = items.get(x, 0.0) + 1.0
            window = [*window, x][-context:]
    return pairs, items


@dataclass(frozen=True)
class BlendWeights:
    """How much live counts weigh against the bundle's (module docstring): ``itemcf`` (``w_cf``),
    ``popularity`` (``w_pop``), and the decayed count below which a live pair or item is ignored."""

    itemcf: float = 1.0
    popularity: float = 1.0
    min_count: float = 3.0

    def __post_init__(self) -> None:
        if self.itemcf < 0 or self.popularity < 0 or self.min_count < 0:
            raise ValueError("blend weights and min_count must be >= 0")


class OnlineStats:
    """The serving side's view of an ``InteractionStatsStore``: cached for ``refresh_s``, failing soft
    (module docstring). ``clock`` (unix seconds) dates the reads and ages the cache; tests inject one.
    Thread-safe."""

    def __init__(
        self,
        store: InteractionStatsStore,
        *,
        refresh_s: float = 5.0,
        weights: BlendWeights | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh_s < 0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s}")
        self.store = store
        self.refresh_s = refresh_s
        self.weights = weights or BlendWeights()
        self.clock = clock
        self._lists: dict[str, tuple[float, dict[str, float]]] = {}
        self._trending: tuple[float, dict[str, float]] | None = None
        self._trending_version = 0
        self._quiet_until = -math.inf  # after a failure, the store is left alone until then
        self._lock = threading.Lock()

    def neighbours(self, item_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """The live neighbour lists of ``item_ids`` (ids without one left out), reading the ones not
        cached or older than ``refresh_s`` in one call."""
        now = self.clock()
        with self._lock:
            stale = [
                i
                for i in dict.fromkeys(item_ids)
                if now - self._lists.get(i, (-math.inf, {}))[0] >= self.refresh_s
            ]
        if stale and now >= self._quiet_until:
            try:
                fetched = self.store.neighbours(stale, at=now)
            except BackendUnavailableError as exc:
                self._fail(now, "neighbour lists", exc)
            else:
                with self._lock:
                    if len(self._lists) + len(stale) > MAX_CACHED_LISTS:
                        self._lists.clear()
                    for item in stale:
                        self._lists[item] = (now, fetched.get(item, {}))
        with self._lock:
            return {i: row for i in item_ids if (row := self._lists.get(i, (0.0, {}))[1])}

    def trending(self) -> tuple[int, dict[str, float]]:
        """The trending counts and a version that changes whenever they were read again."""
        now = self.clock()
        with self._lock:
            cached = self._trending
        if (cached is None or now - cached[0] >= self.refresh_s) and now >= self._quiet_until:
            try:
                counts = self.store.trending(at=now)
            except BackendUnavailableError as exc:
                self._fail(now, "trending counts", exc)
            else:
                with self._lock:
                    self._trending = (now, counts)
                    self._trending_version += 1
        with self._lock:
            return self._trending_version, (self._trending[1] if self._trending else {})

    def _fail(self, now: float, what: str, exc: Exception) -> None:
        log.warning("interaction stats unavailable, serving the bundle's counts for %s: %s", what, exc)
        with self._lock:
            self._quiet_until = now + self.refresh_s


class OnlineItemCF:
    """The live part of item-CF over one catalogue and the bundle's neighbour table (module docstring)."""

    def __init__(self, stats: OnlineStats, catalog: CatalogIndex, itemcf: ItemCFNeighbours) -> None:
        self.stats = stats
        self.catalog = catalog
        best = itemcf.scores[:, 0].astype(np.float32) if itemcf.k else np.zeros(itemcf.n_items, np.float32)
        fallback = float(np.median(best[best > 0])) if np.any(best > 0) else 1.0
        self._scale: FloatArray = np.where(best > 0, best, np.float32(fallback)).astype(np.float32)

    def over(self, catalog: CatalogIndex, itemcf: ItemCFNeighbours) -> OnlineItemCF:
        """The same live counts over another catalogue (the live catalogue's) and its table."""
        return OnlineItemCF(self.stats, catalog, itemcf)

    def rows(self, items: IntArray) -> list[tuple[IntArray, FloatArray]]:
        """For each of ``items``, its live neighbours (catalogue indices) and what they add to ``sim``."""
        ids = self.catalog.item_ids
        live = self.stats.neighbours([ids[i] for i in items.tolist()])
        weights = self.stats.weights
        index_of = self.catalog.index_of
        out = []
        for a in items.tolist():
            row = live.get(ids[a], {})
            kept = {
                index_of[b]: c
                for b, c in row.items()
                if c >= weights.min_count and b in index_of and index_of[b] != a
            }
            if not kept or weights.itemcf == 0:
                out.append((_EMPTY_IDX, _EMPTY_VAL))
                continue
            idx = np.fromiter(kept, dtype=np.int64, count=len(kept))
            counts = np.fromiter(kept.values(), dtype=np.float64, count=len(kept))
            extra = weights.itemcf * float(self._scale[a]) * counts / counts.max()
            out.append((idx, extra.astype(np.float32)))
        return out

    def scores(self, recent: IntArray, n_items: int, *, max_history: int, decay: float) -> FloatArray | None:
        """What the live lists add to item-CF's score of every item for ``recent`` (``decay ** age`` over
        the last ``max_history`` items, as the bundle's scores are summed); ``None`` when nothing."""
        hist = recent[-max_history:]
        if hist.size == 0:
            return None
        ages = np.arange(hist.size - 1, -1, -1)
        total: FloatArray | None = None
        for age, (idx, extra) in zip(ages.tolist(), self.rows(hist), strict=True):
            if idx.size:
                if total is None:
                    total = np.zeros(n_items, dtype=np.float32)
                np.add.at(total, idx, np.float32(decay**age) * extra)
        return total

    def similar(self, item: int, idx: IntArray, scores: FloatArray) -> tuple[IntArray, FloatArray]:
        """``item``'s bundle neighbours (``idx``, ``scores``) with its live ones blended in, best first
        (ties: the smaller index)."""
        ((live_idx, extra),) = self.rows(np.asarray([item], dtype=np.int64))
        if live_idx.size == 0:
            return idx, scores
        merged: dict[int, float] = dict(zip(idx.tolist(), scores.astype(np.float64).tolist(), strict=True))
        for j, e in zip(live_idx.tolist(), extra.tolist(), strict=True):
            merged[j] = merged.get(j, 0.0) + e
        order = sorted(merged, key=lambda j: (-merged[j], j))
        return np.asarray(order, dtype=np.int64), np.asarray([merged[j] for j in order], dtype=np.float32)


class OnlinePopularity:
    """The bundle's popularity with the trending counts blended in (module docstring)."""

    def __init__(self, stats: OnlineStats, catalog: CatalogIndex, popularity: FloatArray) -> None:
        self.stats = stats
        self.catalog = catalog
        self.popularity = popularity
        self._top = float(popularity.max()) if popularity.size and popularity.max() > 0 else 1.0
        self._blended: tuple[int, FloatArray | None] | None = None

    def over(self, catalog: CatalogIndex, popularity: FloatArray) -> OnlinePopularity:
        """The same trending counts over another catalogue and its popularity vector."""
        return OnlinePopularity(self.stats, catalog, popularity)

    def current(self) -> tuple[int, FloatArray | None]:
        """The trending version and the blended popularity (``None``: nothing trends, the bundle's holds),
        blended once per version."""
        version, trend = self.stats.trending()
        cached = self._blended
        if cached is None or cached[0] != version:
            cached = (version, self._blend(trend))
            self._blended = cached  # racing requests blend the same counts: either result is right
        return cached

    def _blend(self, trend: Mapping[str, float]) -> FloatArray | None:
        weights = self.stats.weights
        index_of = self.catalog.index_of
        kept = {index_of[i]: c for i, c in trend.items() if c >= weights.min_count and i in index_of}
        if not kept or weights.popularity == 0:
            return None
        idx = np.fromiter(kept, dtype=np.int64, count=len(kept))
        counts = np.fromiter(kept.values(), dtype=np.float64, count=len(kept))
        blended = self.popularity.astype(np.float64)
        blended[idx] += weights.popularity * self._top * counts / counts.max()
        return blended.astype(np.float32)
