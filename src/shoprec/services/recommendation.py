"""Recommendations, similar items, search and ranking of given items: the read side of shoprec.

A request flows cache → user state → recall channels → merge → ranker (under a latency budget) →
re-rank rules → cache; ``docs/pipeline.md`` describes each stage, the fallbacks and the cache keys.
The service depends on ports only (state store, cache, ranker) and on the loaded bundle; it does no I/O
of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprec.artifacts.bundle import Bundle
from shoprec.catalog import CatalogIndex, IntArray
from shoprec.domain import MAX_RECENT_ITEMS, Candidate, RankedItem
from shoprec.errors import BackendUnavailableError, InvalidInputError, NotFoundError, RankerUnavailableError
from shoprec.ports import Cache, Ranker, UserStateStore
from shoprec.recall.channels import (
    EMBEDDING,
    ITEMCF,
    EmbeddingChannel,
    ExactDotProductIndex,
    ItemCFChannel,
    PopularityChannel,
    RecallChannel,
    RecallContext,
    VectorIndex,
)
from shoprec.recall.merge import MergePolicy, merge_candidates
from shoprec.rerank.rules import rerank
from shoprec.services.results import ListResult

if TYPE_CHECKING:
    from shoprec.search.bm25 import SearchRecall

log = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "rec:v1"
SEARCH_RERANK_DEPTH = 100
SEARCH_PERSONAL_WEIGHT = 0.3
FALLBACK_POPULARITY_WEIGHT = 0.01

_EMPTY: IntArray = np.zeros(0, dtype=np.int64)


def user_cache_tag(user_id: str) -> str:
    """The cache tag grouping every cached list of ``user_id`` (invalidated when their state changes)."""
    return user_id


class RecommendationService:
    """Personalised lists for users and items, built from a bundle and the user-state, cache and ranker
    ports.  Thread-safe for concurrent requests: per-request data lives on the stack only.

    ``candidates`` is the recall budget handed to the ranker; ``latency_budget_ms`` bounds a request up to
    the end of ranking (past it the merged recall scores are used and the result is ``degraded``);
    ``cache_ttl_s`` is the lifetime of cached recommendation lists; ``clock`` returns seconds (monotonic)
    and is injectable so tests can simulate a slow ranker without sleeping.
    """

    def __init__(
        self,
        bundle: Bundle,
        catalog: CatalogIndex,
        state: UserStateStore,
        cache: Cache,
        ranker: Ranker,
        *,
        candidates: int = 300,
        latency_budget_ms: float = 150.0,
        cache_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.perf_counter,
        channels: Sequence[RecallChannel] | None = None,
        merge_policy: MergePolicy | None = None,
        vector_index: VectorIndex | None = None,
        search_index: SearchRecall | None = None,
        search_rerank_depth: int = SEARCH_RERANK_DEPTH,
        search_personal_weight: float = SEARCH_PERSONAL_WEIGHT,
    ) -> None:
        if catalog.n_items != bundle.n_items:
            raise ValueError(f"catalog has {catalog.n_items} items, the bundle {bundle.n_items}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        if not 0.0 <= search_personal_weight <= 1.0:
            raise ValueError(f"search_personal_weight must lie in [0, 1], got {search_personal_weight}")
        self.bundle = bundle
        self.catalog = catalog
        self.state = state
        self.cache = cache
        self.ranker = ranker
        self.latency_budget_s = latency_budget_ms / 1000.0
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self.model_version = bundle.model_version
        self.merge_policy = merge_policy or MergePolicy(budget=candidates)
        self.vectors: VectorIndex = vector_index or ExactDotProductIndex(bundle.item_embeddings)
        self.popularity_channel = PopularityChannel(bundle.popularity, catalog)
        self.itemcf_channel = ItemCFChannel(bundle.itemcf, catalog)
        self.channels: list[RecallChannel] = (
            list(channels)
            if channels is not None
            else [
                self.itemcf_channel,
                EmbeddingChannel(bundle.item_embeddings, catalog, index=self.vectors),
                self.popularity_channel,
            ]
        )
        self.search_rerank_depth = search_rerank_depth
        self.search_personal_weight = search_personal_weight
        self._search = search_index
        self._search_lock = threading.Lock()
        self._version_tag = bundle.manifest.short_version

    # --- public use cases -------------------------------------------------------------------------

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        exclude_seen: bool = True,
    ) -> ListResult:
        """The ``k`` best items for ``user_id``, optionally filtered by category / brand.

        A user without (known) history gets the popular items (cold start, not degraded).  A ranker
        failure or a blown latency budget falls back to the merged recall scores, and a failing
        user-state store to the popular items; both lists are ``degraded`` and not cached.  Cache
        failures are logged and ignored.
        """
        _check_k(k)
        timer = _Timer(self.clock)
        key = self.cache_key(user_id, k, category=category, brand=brand, exclude_seen=exclude_seen)
        hit = self._cache_get(key)
        timer.lap("cache")
        if hit is not None:
            return replace(hit, cached=True, timings_ms=timer.done())

        history_ids, recent, state_ok = self._history(user_id)
        timer.lap("state")

        allowed = self.catalog.mask_for(category, brand) if _given(category) or _given(brand) else None
        context = RecallContext(
            recent=recent,
            allowed=allowed,
            exclude=recent if exclude_seen else _EMPTY,
        )
        if recent.size:
            policy = self.merge_policy
            lists = [(ch.name, ch.recall(context, policy.quota(ch.name))) for ch in self.channels]
            merged = merge_candidates(lists, policy)
        else:  # cold start: the popular items alone, as many as the whole budget
            budget = self.merge_policy.budget
            popular = self.popularity_channel.recall(context, budget)
            lists = [(self.popularity_channel.name, popular)]
            merged = merge_candidates(lists, MergePolicy(budget=budget, quotas={}))
        timer.lap("recall")

        degraded = not state_ok
        fallback = False
        if recent.size and merged:
            scores = self._rank(history_ids, [self.catalog.item_ids[c.item] for c in merged], timer.start)
            if scores is None:
                degraded = fallback = True
            else:
                for c, s in zip(merged, scores, strict=True):
                    c.score = s
        timer.lap("rank")

        final = rerank(
            merged,
            k,
            self.catalog,
            seen=recent.tolist(),
            exclude_seen=exclude_seen,
            category=category,
            brand=brand,
        )
        timer.lap("rerank")

        result = ListResult(
            items=self._items(final),
            model_version=self.model_version,
            degraded=degraded,
            ranker_fallback=fallback,
            candidates_per_channel={name: len(cands) for name, cands in lists},
        )
        if not degraded:  # a fallback list must not outlive the outage that caused it
            self._cache_set(key, result, user_id)
        timer.lap("cache")
        return replace(result, timings_ms=timer.done())

    def similar(self, item_id: str, k: int = 10) -> ListResult:
        """Items similar to ``item_id``: its item-CF neighbours, padded with embedding neighbours.

        Scores: item-CF similarities divided by the best one (in ``(0, 1]``); padding items score below
        the last item-CF neighbour, decreasing in embedding order, so the list stays sorted by score.
        Raises ``NotFoundError(field="item_id")`` for an id the bundle does not know.
        """
        _check_k(k)
        timer = _Timer(self.clock)
        i = self.catalog.index(item_id)
        if i is None:
            raise NotFoundError(f"unknown item id {item_id!r}", field="item_id")
        title = self.catalog.short_title(i)
        cf_idx, cf_scores = self.bundle.itemcf.similar(i, k)
        cf_idx = cf_idx[cf_idx != i]
        cf_scores = cf_scores[: cf_idx.size]
        top = float(cf_scores[0]) if cf_scores.size else 1.0
        out = [
            Candidate(item=j, score=s / top, channels=[ITEMCF], reason=f"often viewed with {title}")
            for j, s in zip(cf_idx.tolist(), cf_scores.tolist(), strict=True)
        ]
        n_cf = len(out)
        if len(out) < k:
            exclude = np.asarray([i, *cf_idx.tolist()], dtype=np.int64)
            emb_idx, _ = self.vectors.search(self.bundle.item_embeddings[i], k - len(out), exclude)
            floor = out[-1].score if out else 1.0
            n_pad = emb_idx.size
            out.extend(
                Candidate(
                    item=j,
                    score=floor * (n_pad - r) / (n_pad + 1),
                    channels=[EMBEDDING],
                    reason=f"similar to {title}",
                )
                for r, j in enumerate(emb_idx.tolist())
            )
        timer.lap("recall")
        return ListResult(
            items=self._items(out[:k]),
            model_version=self.model_version,
            timings_ms=timer.done(),
            candidates_per_channel={ITEMCF: n_cf, EMBEDDING: len(out) - n_cf},
        )

    def search(
        self,
        q: str,
        *,
        user_id: str | None = None,
        k: int = 10,
        category: str | None = None,
        brand: str | None = None,
    ) -> ListResult:
        """Keyword search with optional filters, facets over every match of ``q``, personalised when
        ``user_id`` has history.

        Personalisation re-ranks the best ``search_rerank_depth`` (100) filtered matches with the ranker:
        ``score = (1 - w) * minmax(bm25) + w * minmax(ranker)`` with ``w = search_personal_weight`` (0.3),
        so relevance to the query dominates and the user's taste orders items of similar relevance.
        Without a user, or when the ranker fails (``degraded``), the score is the BM25 score.
        Raises ``InvalidInputError(field="q")`` for a blank query.
        """
        _check_k(k)
        if not q.strip():
            raise InvalidInputError("the search query is empty", field="q")
        timer = _Timer(self.clock)
        index = self.search_index
        matched, bm25_scores = index.match(q)
        facets = self.catalog.facet_counts(matched)
        if _given(category) or _given(brand):
            keep = self.catalog.mask_for(category, brand)[matched]
            matched, bm25_scores = matched[keep], bm25_scores[keep]
        n_matched = int(matched.size)
        depth = max(self.search_rerank_depth, k)
        matched, bm25_scores = matched[:depth], bm25_scores[:depth]
        timer.lap("recall")

        scores = bm25_scores.astype(np.float64)
        degraded = fallback = False
        if user_id is not None and matched.size:
            history_ids, recent, state_ok = self._history(user_id)
            degraded = not state_ok
            timer.lap("state")
            if recent.size:
                ranked = self._rank(history_ids, [self.catalog.item_ids[j] for j in matched], timer.start)
                if ranked is None:
                    degraded = fallback = True
                else:
                    w = self.search_personal_weight
                    scores = (1 - w) * _minmax(scores) + w * _minmax(np.asarray(ranked, dtype=np.float64))
            timer.lap("rank")

        reason = f"matches '{_quote(q)}'"
        candidates = [
            Candidate(item=j, score=s, channels=[index.name], reason=reason)
            for j, s in zip(matched.tolist(), scores.tolist(), strict=True)
        ]
        final = rerank(candidates, k, self.catalog, exclude_seen=False, max_per_category=k)
        timer.lap("rerank")
        return ListResult(
            items=self._items(final),
            model_version=self.model_version,
            degraded=degraded,
            ranker_fallback=fallback,
            facets=facets,
            timings_ms=timer.done(),
            candidates_per_channel={index.name: n_matched},
        )

    def rank(self, user_id: str, item_ids: Sequence[str]) -> ListResult:
        """``item_ids`` (duplicates dropped) ordered for ``user_id``, best first.

        Scores come from the ranker; a user without history gets popularity order (not degraded); when
        the ranker fails the item-CF scores of the user's history decide, popularity breaking their ties
        (``degraded``).  Raises ``InvalidInputError(field="item_ids")`` listing ids the bundle does not
        know.
        """
        unknown = self.catalog.unknown(item_ids)
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} unknown item id(s): {', '.join(unknown[:10])}",
                field="item_ids",
                values=unknown,
            )
        timer = _Timer(self.clock)
        unique = list(dict.fromkeys(item_ids))
        idx = self.catalog.indices(unique)
        history_ids, recent, state_ok = self._history(user_id) if unique else ([], _EMPTY, True)
        timer.lap("state")
        degraded = not state_ok
        fallback = False
        if recent.size:
            cf = self.bundle.itemcf.score_histories([recent], self.catalog.n_items)[0][idx]
            ranked = self._rank(history_ids, unique, timer.start)
            if ranked is None:
                degraded = fallback = True
                scores = _minmax_top(cf) + FALLBACK_POPULARITY_WEIGHT * _minmax_top(self._popularity(idx))
            else:
                scores = np.asarray(ranked, dtype=np.float64)
        else:
            cf = np.zeros(idx.size, dtype=np.float32)
            scores = self._popularity(idx)
        timer.lap("rank")

        sources = self.itemcf_channel.attribute(recent, idx[cf > 0]).tolist() if recent.size else []
        cf_reasons = iter(f"because you viewed {self.catalog.short_title(h)}" for h in sources)
        pop_reasons = self.popularity_channel.reasons
        candidates = [
            Candidate(item=j, score=s, reason=next(cf_reasons) if has_cf else pop_reasons[j])
            for j, s, has_cf in zip(idx.tolist(), scores.tolist(), (cf > 0).tolist(), strict=True)
        ]
        ids = self.catalog.item_ids
        candidates.sort(key=lambda c: (-c.score, ids[c.item]))
        timer.lap("rerank")
        return ListResult(
            items=self._items(candidates),
            model_version=self.model_version,
            degraded=degraded,
            ranker_fallback=fallback,
            timings_ms=timer.done(),
        )

    # --- helpers ----------------------------------------------------------------------------------

    @property
    def search_index(self) -> SearchRecall:
        """The keyword index, built from the catalogue on first use (about a second for 4k items)."""
        if self._search is None:
            with self._search_lock:
                if self._search is None:
                    # Imported with the index it builds: only search requests need bm25s, and a module
                    # level import would add it to every cold start.
                    from shoprec.search.bm25 import Bm25Search

                    self._search = Bm25Search.build(self.catalog)
        return self._search

    def warm_up(self) -> None:
        """Build everything built lazily (the search index), e.g. during a Lambda's init phase."""
        _ = self.search_index

    def cache_key(
        self,
        user_id: str,
        k: int,
        *,
        category: str | None = None,
        brand: str | None = None,
        exclude_seen: bool = True,
    ) -> str:
        """``rec:v1:<model version, 12 hex>:<user id>:<16 hex of the parameters>``.

        Filters are normalised the way they are matched (case- and space-insensitively), so equivalent
        requests share an entry.
        """
        params = [k, _norm(category), _norm(brand), exclude_seen]
        digest = hashlib.sha256(json.dumps(params).encode("utf-8")).hexdigest()[:16]
        return f"{CACHE_KEY_PREFIX}:{self._version_tag}:{user_id}:{digest}"

    def _history(self, user_id: str) -> tuple[list[str], IntArray, bool]:
        """The user's recent item ids known to the bundle (oldest first), their indices, and whether the
        state store answered (when it fails the user is treated as new and the caller degrades)."""
        try:
            recent = self.state.recent_items(user_id)
        except BackendUnavailableError as exc:
            log.warning("user-state store unavailable, treating the user as new: %s", exc)
            return [], _EMPTY, False
        known = [i for i in recent if i in self.catalog.index_of][-MAX_RECENT_ITEMS:]
        return known, self.catalog.indices(known), True

    def _rank(self, history: Sequence[str], candidates: Sequence[str], start: float) -> list[float] | None:
        """Ranker scores for ``candidates``; ``None`` when the ranker fails, answers malformed scores or
        the request's latency budget (counted from ``start``) runs out before it answers."""
        remaining = self.latency_budget_s - (self.clock() - start)
        if remaining <= 0:
            log.warning("latency budget spent before ranking; using recall scores")
            return None
        try:
            scores = self.ranker.score(history, candidates, timeout_s=remaining)
        except RankerUnavailableError as exc:
            log.warning("ranker unavailable, using recall scores: %s", exc)
            return None
        elapsed = self.clock() - start
        if elapsed > self.latency_budget_s:
            log.warning(
                "ranker answered after the latency budget (%.1f ms > %.1f ms); using recall scores",
                elapsed * 1000,
                self.latency_budget_s * 1000,
            )
            return None
        if len(scores) != len(candidates) or not all(math.isfinite(s) for s in scores):
            log.error(
                "ranker returned %d scores for %d candidates or non-finite ones", len(scores), len(candidates)
            )
            return None
        return [float(s) for s in scores]

    def _popularity(self, idx: IntArray) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.bundle.popularity[idx].astype(np.float64)

    def _items(self, candidates: Sequence[Candidate]) -> list[RankedItem]:
        ids, titles = self.catalog.item_ids, self.catalog.titles
        return [
            RankedItem(
                item_id=ids[c.item],
                score=float(c.score),
                channels=tuple(c.channels),
                reason=c.reason,
                title=titles[c.item] or None,
            )
            for c in candidates
        ]

    def _cache_get(self, key: str) -> ListResult | None:
        try:
            raw = self.cache.get(key)
        except BackendUnavailableError as exc:
            log.warning("cache read failed, computing the list: %s", exc)
            return None
        if raw is None:
            return None
        try:
            return _decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
            return None

    def _cache_set(self, key: str, result: ListResult, user_id: str) -> None:
        try:
            self.cache.set(key, _encode(result), self.cache_ttl_s, tags=(user_cache_tag(user_id),))
        except BackendUnavailableError as exc:
            log.warning("cache write failed, not caching: %s", exc)


class _Timer:
    """Per-stage milliseconds measured with the service's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start = self._last = clock()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self.clock()
        self.laps[stage] = self.laps.get(stage, 0.0) + (now - self._last) * 1000.0
        self._last = now

    def done(self) -> dict[str, float]:
        laps = {stage: round(ms, 3) for stage, ms in self.laps.items()}
        laps["total"] = round((self.clock() - self.start) * 1000.0, 3)
        return laps


def _encode(result: ListResult) -> bytes:
    obj = {
        "model_version": result.model_version,
        "degraded": result.degraded,
        "candidates_per_channel": result.candidates_per_channel,
        "items": [[it.item_id, it.score, list(it.channels), it.reason, it.title] for it in result.items],
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode(raw: bytes) -> ListResult:
    obj = json.loads(raw)
    items = [
        RankedItem(item_id=str(i), score=float(s), channels=tuple(map(str, ch)), reason=str(r), title=t)
        for i, s, ch, r, t in obj["items"]
    ]
    return ListResult(
        items=items,
        model_version=str(obj["model_version"]),
        degraded=bool(obj["degraded"]),
        candidates_per_channel={str(k): int(v) for k, v in obj["candidates_per_channel"].items()},
    )


def _check_k(k: int) -> None:
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}", field="k")


def _given(value: str | None) -> bool:
    return value is not None and bool(value.strip())


def _norm(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return " ".join(value.split()).casefold()


def _quote(q: str, max_chars: int = 60) -> str:
    q = " ".join(q.split())
    return q if len(q) <= max_chars else q[: max_chars - 1].rstrip() + "…"


def _minmax(x: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``x`` scaled to [0, 1]; all ones when every value is equal."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)


def _minmax_top(x: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``x / max(x)`` for non-negative scores (all zeros stay zeros)."""
    x = x.astype(np.float64)
    top = float(x.max()) if x.size else 0.0
    return x / top if top > 0 else x
