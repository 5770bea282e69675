"""Recommendations, similar items, search and ranking of given items: the read side of shoprec.

Each use case is thin: it reads the cache and the user's state, asks the recommendation pipeline
(:mod:`shoprec.pipeline`, which decides every fallback) and shapes the result; ``docs/pipeline.md``
describes the stages, the fallbacks and the cache keys. The service depends on ports only (state store,
cache) and on the pipeline; it does no I/O of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shoprec.catalog import CatalogIndex, IntArray, is_given, name_key
from shoprec.domain import MAX_RECENT_ITEMS, Candidate, RankedItem
from shoprec.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shoprec.merchandising import NO_RULES, RuleSet, Surface
from shoprec.pipeline import RecommendationPipeline, Request
from shoprec.ports import Cache, UserStateStore
from shoprec.ranking.fusion import minmax
from shoprec.rerank.merch import apply_rules, merch_depth
from shoprec.services import cache_codec
from shoprec.services.results import ListResult

if TYPE_CHECKING:
    from shoprec.search.bm25 import SearchRecall
    from shoprec.services.live_catalog import CatalogView, LiveCatalog
    from shoprec.services.merchandising import MerchandisingService

log = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "rec:v2"
SEARCH_RERANK_DEPTH = 100
SEARCH_PERSONAL_WEIGHT = 0.3

_EMPTY: IntArray = np.zeros(0, dtype=np.int64)


def user_cache_tag(user_id: str) -> str:
    """The cache tag grouping every cached list of ``user_id`` (invalidated when their state changes)."""
    return user_id


class RecommendationService:
    """Personalised lists for users and items from the pipeline and the user-state and cache ports.
    Thread-safe for concurrent requests: per-request data lives on the stack only.

    The catalogue, the pipeline and the search index come from the live catalogue (``live``): each
    request reads one :class:`~shoprec.services.live_catalog.CatalogView` and uses it throughout, so a
    catalogue change never mixes into a request half-way. Without ``live`` the bundle's is served as is.

    ``model_version`` and ``version_tag`` (12 hex digits, part of every cache key) name the bundle the
    pipeline was built from; ``cache_ttl_s`` is the lifetime of cached recommendation lists; ``clock``
    returns seconds (monotonic) and must be the pipeline's, since the latency budget counts from the
    request's start. ``cache_scope`` (an experiment variant's name and fingerprint) goes into every cache key,
    so services of different variants never share cached lists.
    """

    def __init__(
        self,
        pipeline: RecommendationPipeline,
        state: UserStateStore,
        cache: Cache,
        *,
        model_version: str,
        version_tag: str,
        cache_ttl_s: float = 300.0,
        search_index: SearchRecall | None = None,
        search_factory: Callable[[], SearchRecall] | None = None,
        search_rerank_depth: int = SEARCH_RERANK_DEPTH,
        search_personal_weight: float = SEARCH_PERSONAL_WEIGHT,
        merchandising: MerchandisingService | None = None,
        live: LiveCatalog | None = None,
        cache_scope: str | None = None,
    ) -> None:
        if not 0.0 <= search_personal_weight <= 1.0:
            raise ValueError(f"search_personal_weight must lie in [0, 1], got {search_personal_weight}")
        from shoprec.services.live_catalog import LiveCatalog

        self.base_pipeline = pipeline
        self.state = state
        self.cache = cache
        self.cache_ttl_s = cache_ttl_s
        self.clock: Callable[[], float] = pipeline.clock
        self.model_version = model_version
        self._version_tag = version_tag
        self._cache_scope = cache_scope
        self.search_rerank_depth = search_rerank_depth
        self.search_personal_weight = search_personal_weight
        self.merchandising = merchandising  # None: no merchandising rules (offline evaluation)
        if live is None:
            search = (lambda: search_index) if search_index is not None else search_factory
            live = LiveCatalog(pipeline.catalog, None, pipeline=pipeline, search=search)
        elif live.base_pipeline is not pipeline:
            raise ValueError("the live catalogue must extend the service's pipeline")
        self.live = live

    @property
    def pipeline(self) -> RecommendationPipeline:
        """The pipeline of the current catalogue view."""
        pipeline = self.live.view().pipeline
        assert pipeline is not None  # the service's live catalogue always has one
        return pipeline

    @property
    def catalog(self) -> CatalogIndex:
        """The current catalogue (the bundle's, with the live catalogue's items over it)."""
        return self.live.view().catalog

    def _view(self) -> tuple[CatalogView, RecommendationPipeline, CatalogIndex]:
        view = self.live.view()
        assert view.pipeline is not None
        return view, view.pipeline, view.catalog

    # --- public use cases -------------------------------------------------------------------------

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        exclude_seen: bool = True,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> ListResult:
        """The ``k`` best items for ``user_id``, optionally filtered by category / brand / price range
        (items without a known price are left out by a price filter).

        A user without (known) history gets the popular items (cold start, not degraded). When the ranker
        fails or the latency budget runs out, the pipeline fuses the recall scores alone; when the
        user-state store fails, the user is treated as new. Both lists are ``degraded`` and not cached.
        Cache failures are logged and ignored.

        The user's cache generation is read *before* their state and is part of the key: a list computed
        from state that an event or a deletion has since replaced is stored under a generation that the
        invalidation retired, where no later request looks (``docs/pipeline.md``, cache keys).
        """
        _check_k(k)
        _check_prices(min_price, max_price)
        timer = _Timer(self.clock)
        view, pipeline, catalog = self._view()
        rules = self._rules(Surface.RECOMMENDATIONS, category=category, brand=brand)
        generation = self._cache_generation(user_id)
        key: str | None = None
        hit: ListResult | None = None
        if generation is not None:  # a cache that failed just now is not asked again in this request
            key = self.cache_key(
                user_id, k, generation=generation, category=category, brand=brand, exclude_seen=exclude_seen,
                min_price=min_price, max_price=max_price,
            )  # fmt: skip
            key += "".join(f":{part}" for part in (rules.digest, view.tag) if part)
            hit = self._cache_get(key)
        timer.lap("cache")
        if hit is not None:
            return replace(hit, cached=True, timings_ms=timer.done())

        recent, state_ok = self._history(user_id, catalog)
        timer.lap("state")
        depth = merch_depth(k, rules.rules)
        request = Request(
            history=recent, k=depth, category=category, brand=brand, exclude_seen=exclude_seen,
            min_price=min_price, max_price=max_price,
        )  # fmt: skip
        rec = pipeline.recommend([request], start=timer.start)[0]
        timer.add(rec.timings_ms)
        items = rec.items
        if rules:
            items = apply_rules(
                items, k, catalog, rules.rules, seen=recent.tolist(), exclude_seen=exclude_seen,
                category=category, brand=brand, min_price=min_price, max_price=max_price,
            )  # fmt: skip
            timer.lap("rerank")

        degraded = rec.degraded or not state_ok
        result = ListResult(
            items=self._items(items, catalog),
            model_version=self.model_version,
            degraded=degraded,
            ranker_fallback=rec.ranker_fallback,
            candidates_per_channel=rec.candidates_per_channel,
        )
        if key is not None and not degraded:  # a fallback list must not outlive the outage that caused it
            self._cache_set(key, result, user_id)
        timer.lap("cache")
        return replace(result, timings_ms=timer.done())

    def similar(self, item_id: str, k: int = 10) -> ListResult:
        """Items similar to ``item_id`` (see :meth:`RecommendationPipeline.similar`).

        Raises ``NotFoundError(field="item_id")`` for an id the catalogue does not know or has delisted
        (an item that is only out of stock still has similar items).
        """
        _check_k(k)
        timer = _Timer(self.clock)
        _, pipeline, catalog = self._view()
        i = catalog.index(item_id)
        if i is None:
            raise NotFoundError(f"unknown item id {item_id!r}", field="item_id")
        if not catalog.listed[i]:
            raise NotFoundError(f"item {item_id!r} is delisted", field="item_id")
        rules = self._rules(Surface.SIMILAR)
        items = pipeline.similar(i, merch_depth(k, rules.rules))
        if rules:
            items = apply_rules(items, k, catalog, rules.rules, seen=(i,), max_per_category=k)
        timer.lap("recall")
        counts: dict[str, int] = {}
        for c in items:
            counts[c.channels[0]] = counts.get(c.channels[0], 0) + 1
        return ListResult(
            items=self._items(items, catalog),
            model_version=self.model_version,
            timings_ms=timer.done(),
            candidates_per_channel={"itemcf": counts.pop("itemcf", 0), **counts},
        )

    def search(
        self,
        q: str,
        *,
        user_id: str | None = None,
        k: int = 10,
        category: str | None = None,
        brand: str | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> ListResult:
        """Search with optional filters, facets over every servable match of ``q``, personalised when
        ``user_id`` has history.

        The matches are the search index's (BM25, or BM25 fused with the semantic channel when the bundle
        has text embeddings: :mod:`shoprec.search.hybrid`), each with the channels that found it.
        Personalisation re-ranks the best ``search_rerank_depth`` (100) filtered matches with the ranker:
        ``score = (1 - w) * minmax(relevance) + w * minmax(ranker)`` with ``w = search_personal_weight``
        (0.3), so relevance to the query dominates and the user's taste orders items of similar relevance.
        Without a user, or when the ranker fails (``degraded``), the score is the relevance score.
        Raises ``InvalidInputError(field="q")`` for a blank query.
        """
        _check_k(k)
        _check_prices(min_price, max_price)
        if not q.strip():
            raise InvalidInputError("the search query is empty", field="q")
        timer = _Timer(self.clock)
        view, pipeline, catalog = self._view()
        # Imported here, like the index: the search package pulls in bm25s, which other requests never need.
        from shoprec.search.hybrid import hits_of

        hits = hits_of(view.search(self.live.base_search), q)
        matched, relevance, channels = hits.items, hits.scores, hits.channels
        if not catalog.all_available:  # what may not be served is not counted either
            matched, relevance, channels = _keep(catalog.servable(matched), matched, relevance, channels)
        facets = catalog.facet_counts(matched)
        if catalog.filtered(category, brand, min_price, max_price):
            keep = catalog.mask_for(category, brand, min_price, max_price)[matched]
            matched, relevance, channels = _keep(keep, matched, relevance, channels)
        n_matched = int(matched.size)
        per_channel: dict[str, int] = {}
        for found in channels:
            for name in found:
                per_channel[name] = per_channel.get(name, 0) + 1
        depth = max(self.search_rerank_depth, k)
        matched, relevance, channels = matched[:depth], relevance[:depth], channels[:depth]
        timer.lap("recall")

        scores = relevance.astype(np.float64)
        degraded = fallback = False
        if user_id is not None and matched.size:
            recent, state_ok = self._history(user_id, catalog)
            degraded = not state_ok
            timer.lap("state")
            if recent.size:
                ranked = pipeline.ranker_scores(recent, matched, start=timer.start)
                if ranked is None:
                    degraded = fallback = True
                else:
                    w = self.search_personal_weight
                    scores = (1 - w) * minmax(scores) + w * minmax(ranked.astype(np.float64))
            timer.lap("rank")

        quoted = _quote(q)
        candidates = [
            Candidate(item=j, score=s, channels=list(found), reason=_search_reason(found, quoted))
            for j, s, found in zip(matched.tolist(), scores.tolist(), channels, strict=True)
        ]
        rules = self._rules(Surface.SEARCH, query=q, category=category, brand=brand)
        final = apply_rules(
            candidates, k, catalog, rules.rules, exclude_seen=False, category=category, brand=brand,
            max_per_category=k, min_price=min_price, max_price=max_price,
        )  # fmt: skip
        timer.lap("rerank")
        return ListResult(
            items=self._items(final, catalog),
            model_version=self.model_version,
            degraded=degraded,
            ranker_fallback=fallback,
            facets=facets,
            timings_ms=timer.done(),
            candidates_per_channel=per_channel or {view.search(self.live.base_search).name: n_matched},
        )

    def rank(self, user_id: str, item_ids: Sequence[str]) -> ListResult:
        """``item_ids`` (duplicates dropped) ordered for ``user_id``, best first, by the pipeline's fused
        score (see :meth:`RecommendationPipeline.rank_items`): a user without history gets popularity order
        (not degraded), a failing ranker the recall channels' fusion (``degraded``).

        Items that may not be served (out of stock, delisted) are left out of the answer.
        Raises ``InvalidInputError(field="item_ids")`` listing ids the catalogue does not know.
        """
        _, pipeline, catalog = self._view()
        unknown = catalog.unknown(item_ids)
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} unknown item id(s): {', '.join(unknown[:10])}",
                field="item_ids",
                values=unknown,
            )
        timer = _Timer(self.clock)
        given = catalog.indices(dict.fromkeys(item_ids))
        given = given[catalog.servable(given)]
        recent, state_ok = self._history(user_id, catalog) if given.size else (_EMPTY, True)
        timer.lap("state")
        ((ranked, fallback),) = pipeline.rank_items([(Request(history=recent), given)], start=timer.start)
        timer.lap("rank")
        return ListResult(
            items=self._items(ranked, catalog),
            model_version=self.model_version,
            degraded=fallback or not state_ok,
            ranker_fallback=fallback,
            timings_ms=timer.done(),
        )

    # --- helpers ----------------------------------------------------------------------------------

    @property
    def search_index(self) -> SearchRecall:
        """The search index of the current catalogue view: the bundle's, built on first use by
        ``search_factory`` (BM25 over the catalogue when none was given; about a second for 4k items),
        extended with the live catalogue's items."""
        return self.live.search()

    def warm_up(self) -> None:
        """Build everything built lazily (the search index), e.g. during a Lambda's init phase."""
        _ = self.live.search()

    def cache_key(
        self,
        user_id: str,
        k: int,
        *,
        generation: str,
        category: str | None = None,
        brand: str | None = None,
        exclude_seen: bool = True,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> str:
        """``rec:v2:<model version, 12 hex>:<user id>:<generation>:<16 hex of the parameters>``, where
        ``generation`` is the user's cache generation (:meth:`Cache.generation` of their tag) read before
        their state. :meth:`recommend` appends the rules' digest and the live catalogue's tag when there
        are rules or live items, so a list is never served after the rules or the catalogue changed.

        Filters are normalised the way they are matched (:func:`shoprec.catalog.name_key`), so equivalent
        requests share an entry. A service with a ``cache_scope`` (an experiment's variant) hashes it into the
        parameters' digest.
        """
        params: list[object] = [k, _filter_key(category), _filter_key(brand), exclude_seen]
        if min_price is not None or max_price is not None:
            params += [min_price, max_price]
        if self._cache_scope is not None:
            params.append({"scope": self._cache_scope})
        digest = hashlib.sha256(json.dumps(params).encode("utf-8")).hexdigest()[:16]
        return f"{CACHE_KEY_PREFIX}:{self._version_tag}:{user_id}:{generation}:{digest}"

    def _rules(self, surface: Surface, **request: str | None) -> RuleSet:
        """The merchandising rules applying to a request (``docs/pipeline.md``, merchandising rules)."""
        return NO_RULES if self.merchandising is None else self.merchandising.rules_for(surface, **request)

    def _history(self, user_id: str, catalog: CatalogIndex) -> tuple[IntArray, bool]:
        """The indices of the user's recent items known to ``catalog`` (oldest first), and whether the
        state store answered (when it fails the user is treated as new and the caller degrades)."""
        try:
            recent = self.state.recent_items(user_id)
        except BackendUnavailableError as exc:
            log.warning("user-state store unavailable, treating the user as new: %s", exc)
            return _EMPTY, False
        known = [i for i in recent if i in catalog.index_of][-MAX_RECENT_ITEMS:]
        return catalog.indices(known), True

    def _items(self, candidates: Sequence[Candidate], catalog: CatalogIndex) -> list[RankedItem]:
        ids, titles = catalog.item_ids, catalog.titles
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

    def _cache_generation(self, user_id: str) -> str | None:
        """The user's cache generation, or ``None`` when the cache failed (the request then skips it)."""
        try:
            return self.cache.generation(user_cache_tag(user_id))
        except BackendUnavailableError as exc:
            log.warning("cache read failed, computing the list: %s", exc)
            return None

    def _cache_get(self, key: str) -> ListResult | None:
        try:
            raw = self.cache.get(key)
        except BackendUnavailableError as exc:
            log.warning("cache read failed, computing the list: %s", exc)
            return None
        if raw is None:
            return None
        try:
            return cache_codec.decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an unreadable cache entry %s: %s", key, exc)
            return None

    def _cache_set(self, key: str, result: ListResult, user_id: str) -> None:
        try:
            self.cache.set(key, cache_codec.encode(result), self.cache_ttl_s, tags=(user_cache_tag(user_id),))
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

    def add(self, laps: dict[str, float]) -> None:
        """Take over stages measured elsewhere (the pipeline's), ending now."""
        for stage, ms in laps.items():
            self.laps[stage] = self.laps.get(stage, 0.0) + ms
        self._last = self.clock()

    def done(self) -> dict[str, float]:
        laps = {stage: round(ms, 3) for stage, ms in self.laps.items()}
        laps["total"] = round((self.clock() - self.start) * 1000.0, 3)
        return laps


def _check_k(k: int) -> None:
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}", field="k")


def _check_prices(min_price: float | None, max_price: float | None) -> None:
    for name, value in (("min_price", min_price), ("max_price", max_price)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{name} must be a finite number >= 0, got {value}", field=name)
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidInputError(
            f"min_price ({min_price}) is larger than max_price ({max_price})", field="min_price"
        )


def _keep(
    keep: npt.NDArray[np.bool_],
    items: IntArray,
    scores: npt.NDArray[np.float32],
    channels: list[tuple[str, ...]],
) -> tuple[IntArray, npt.NDArray[np.float32], list[tuple[str, ...]]]:
    """The search hits where ``keep`` is set."""
    return items[keep], scores[keep], [c for c, kept in zip(channels, keep.tolist(), strict=True) if kept]


def _filter_key(value: str | None) -> str | None:
    return name_key(value) if value is not None and is_given(value) else None


def _search_reason(channels: Sequence[str], quoted: str) -> str:
    """``matches 'q'`` when a query word occurs in the item, ``related to 'q'`` when only the meaning of
    the query (the semantic channel) found it."""
    if channels and all(name == "semantic" for name in channels):
        return f"related to '{quoted}'"
    return f"matches '{quoted}'"


def _quote(q: str, max_chars: int = 60) -> str:
    q = " ".join(q.split())
    return q if len(q) <= max_chars else q[: max_chars - 1].rstrip() + "…"
