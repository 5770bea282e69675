"""The recommendation pipeline: recall chain → merge → ranking under the latency budget → fusion → re-rank.

One object, built once from a bundle by :func:`shoprec.pipeline.build.build_pipeline`, serves the API (one
request at a time) and offline evaluation (batches of users) through the same :meth:`recommend`, so the
list a user is scored on is the list the API would return. Stages:

1. **recall** (per request): every channel proposes up to its quota, honouring filters and the seen-item
   exclusion; the lists are merged (``shoprec.recall.merge``) and cut to the candidate budget. A user
   without history gets the popular items alone (cold start).
2. **ranking** (per batch): the ranker scores every candidate set in one call, within what is left of the
   latency budget. This is the only place that decides to fall back: when the ranker fails, answers late or
   answers malformed scores, the batch is fused without it and marked ``degraded``.
3. **fusion**: the bundle's fusion (``shoprec.ranking.fusion``) makes the final score of each candidate and
   names its strongest source; without ranker scores the recall channels are fused with the merge weights.
4. **re-rank** (per request): seen items, filters, diversity, order (``shoprec.rerank.rules``); the reason
   of each returned item comes from its strongest source.

The pipeline does no I/O but through the ranker port, and holds no per-request state: it is thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import (
    CHANNELS,
    CONTENT_CHANNEL,
    EMBEDDING_CHANNEL,
    ITEMCF_CHANNEL,
    POPULARITY_CHANNEL,
    RANKER,
    SOURCES,
)
from shoprec.catalog import CatalogIndex, IntArray
from shoprec.domain import Candidate
from shoprec.errors import RankerUnavailableError
from shoprec.ports import Ranker
from shoprec.ranking.features import CandidateSignals
from shoprec.ranking.fusion import Fused, Fusion, WeightedFusion
from shoprec.recall.channels import (
    ContentChannel,
    EmbeddingChannel,
    ItemCFChannel,
    PopularityChannel,
    RecallChannel,
    RecallContext,
    Recalled,
    top_n,
)
from shoprec.recall.merge import MergePolicy, merge_candidates
from shoprec.rerank.rules import rerank_positions

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
RANKER_REASON: Final = "picked for you from your recent activity"
FRESH_MIN_SIMILARITY: Final = 0.6
"""How close (text cosine) a live-added item must be to an item to be listed among its similar items."""
UNBOUNDED_TIMEOUT_S: Final = 300.0
"""The ranker's timeout when a caller sets no deadline (offline evaluation)."""

_EMPTY: IntArray = np.zeros(0, dtype=np.int64)
_POPULARITY: Final = SOURCES.index(POPULARITY_CHANNEL)


@dataclass(frozen=True)
class Request:
    """One user's request: recent item indices known to the catalogue (oldest first), the list size,
    filters (category, brand, price bounds) and whether the seen items are left out."""

    history: IntArray = field(default_factory=lambda: _EMPTY)
    k: int = 10
    category: str | None = None
    brand: str | None = None
    exclude_seen: bool = True
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True, eq=False)
class Recommendation:
    """The list for one request and how it was made.

    ``candidates`` is the candidate set handed to ranking (its size is the recall budget at most);
    ``degraded`` is set when the ranker's scores were wanted and not used (``ranker_fallback``).
    """

    items: list[Candidate]
    candidates: IntArray
    degraded: bool = False
    ranker_fallback: bool = False
    candidates_per_channel: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Listed:
    """A finished list as offline evaluation reads it: the items (indices, best first), the candidate set
    handed to ranking and whether the list was degraded."""

    items: IntArray
    candidates: IntArray
    degraded: bool = False


@dataclass(frozen=True, eq=False)
class _FoundBy:
    """Which channels found each candidate, named on demand: only the returned items need their names,
    and building a list for each of 300 candidates per user was a third of recall's time offline."""

    names: tuple[str, ...]
    found: npt.NDArray[np.bool_]

    def __getitem__(self, row: int) -> list[str]:
        return [name for name, hit in zip(self.names, self.found[row].tolist(), strict=True) if hit]


@dataclass(frozen=True, eq=False)
class _Recalled:
    """One request's candidates: their signals, the channels that found each (``channels[c]``), and the
    source (index in ``SOURCES``) whose reason explains an item no fusion source is credited for."""

    request: Request
    context: RecallContext
    signals: CandidateSignals
    channels: _FoundBy
    recall_source: IntArray
    per_channel: dict[str, int]

    @property
    def cold(self) -> bool:
        return self.request.history.size == 0


@dataclass(frozen=True)
class _Ranked:
    scores: list[F32 | None]
    fallback: bool


@dataclass(frozen=True, eq=False)
class Prepared:
    """A batch of requests after recall and ranking (see :meth:`RecommendationPipeline.prepare`)."""

    recalled: list[_Recalled]
    ranked: _Ranked
    laps_ms: dict[str, float]

    @property
    def fallback(self) -> bool:
        """Whether the ranker's scores were wanted and are missing."""
        return self.ranked.fallback

    def signals(self) -> list[CandidateSignals]:
        """Each request's candidates and their signals, the ranker's scores included where there are some."""
        return [rec.signals.with_ranker(s) for rec, s in zip(self.recalled, self.ranked.scores, strict=True)]

    def with_k(self, k: int) -> Prepared:
        """The same batch asking for ``k`` items each: recall and ranking do not depend on ``k`` (the
        budget bounds them), the re-rank does (its diversity cap grows with ``k``)."""
        recalled = [replace(rec, request=replace(rec.request, k=k)) for rec in self.recalled]
        return Prepared(recalled, self.ranked, self.laps_ms)


class RecommendationPipeline:
    """See the module docstring. ``channels`` are asked in order (the merge breaks ties by it); the
    popularity channel doubles as the cold-start list. ``fallback`` fuses the channels when the ranker's
    scores are missing (by default: the merge weights). ``latency_budget_s`` bounds a request from its
    ``start`` to the end of ranking; ``clock`` (seconds) is injectable so tests can make the ranker slow
    without sleeping.
    """

    def __init__(
        self,
        catalog: CatalogIndex,
        channels: Sequence[RecallChannel],
        merge_policy: MergePolicy,
        ranker: Ranker | None,
        fusion: Fusion,
        *,
        fallback: Fusion | None = None,
        latency_budget_s: float = 0.150,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        names = [ch.name for ch in channels]
        if sorted(names) != sorted(CHANNELS):
            raise ValueError(f"the pipeline needs the channels {', '.join(CHANNELS)}, got {', '.join(names)}")
        if fusion.uses_ranker and ranker is None:
            raise ValueError(f"fusion '{fusion.spec.kind}' uses the ranker, but none is configured")
        self.catalog = catalog
        self.channels = list(channels)
        self.channel_by_name = {ch.name: ch for ch in channels}
        itemcf = self.channel_by_name[ITEMCF_CHANNEL]
        embedding = self.channel_by_name[EMBEDDING_CHANNEL]
        popularity = self.channel_by_name[POPULARITY_CHANNEL]
        content = self.channel_by_name[CONTENT_CHANNEL]
        if not (
            isinstance(itemcf, ItemCFChannel)
            and isinstance(embedding, EmbeddingChannel)
            and isinstance(popularity, PopularityChannel)
            and isinstance(content, ContentChannel)
        ):
            raise TypeError(
                "the channels must be ItemCFChannel, EmbeddingChannel, PopularityChannel and ContentChannel"
            )
        self.itemcf: ItemCFChannel = itemcf
        self.embedding: EmbeddingChannel = embedding
        self.popularity: PopularityChannel = popularity
        self.content: ContentChannel = content
        self.merge_policy = merge_policy
        self.ranker = ranker
        self.fusion = fusion
        self.sources = tuple(s for s in SOURCES if s != CONTENT_CHANNEL or content.available)
        """The score sources this pipeline has (the content channel's only with text embeddings)."""
        self.fallback = fallback or WeightedFusion(
            {name: merge_policy.weight(name) for name in CHANNELS if name in self.sources}, variant="recall"
        )
        if self.fallback.uses_ranker:
            raise ValueError("the fallback fusion must not use the ranker")
        self.latency_budget_s = latency_budget_s
        self.clock = clock
        self.ranker_ids: list[str] = catalog.item_ids
        """The id the ranker knows each item by: its own for the bundle's items; for an item added to the
        live catalogue, its stand-in's (:mod:`shoprec.pipeline.live`)."""

    # --- the whole pipeline --------------------------------------------------------------------------

    def recommend(
        self, requests: Sequence[Request], *, start: float | None = None, deadline: bool = True
    ) -> list[Recommendation]:
        """The list for each request. The latency budget counts from ``start`` (default: now); with
        ``deadline=False`` (offline evaluation) the ranker may take as long as it needs."""
        return self.finish(self.prepare(requests, start=start, deadline=deadline))

    def prepare(
        self, requests: Sequence[Request], *, start: float | None = None, deadline: bool = True
    ) -> Prepared:
        """The first half of :meth:`recommend`: recall and ranking. :meth:`finish` completes it; offline
        evaluation finishes one prepared batch with several fusions (:meth:`with_fusion`) and training
        reads the candidates' signals from it."""
        t0 = self.clock() if start is None else start
        laps = _Laps(self.clock)
        recalled = self._recall_batch(requests)
        laps.lap("recall")
        ranked = self._rank(recalled, t0 if deadline else None)
        laps.lap("rank")
        return Prepared(recalled, ranked, laps.laps)

    def finish(self, prepared: Prepared, *, explain: bool = True) -> list[Recommendation]:
        """The second half of :meth:`recommend`: fusion and re-rank of a prepared batch.

        ``explain=False`` leaves the reasons empty (offline evaluation scores the lists, whose items and
        scores are the same either way, and skips the per-item attribution)."""
        laps = _Laps(self.clock)
        fused = self._fuse(prepared.recalled, prepared.ranked)
        laps.lap("fusion")
        return self._finish_fused(prepared, fused, laps, explain)

    def fuse(self, prepared: Prepared) -> list[Fused]:
        """The fused scores of each request of ``prepared`` (what :meth:`finish` re-ranks)."""
        return self._fuse(prepared.recalled, prepared.ranked)

    def finish_each_k(
        self, prepared: Prepared, ks: Sequence[int], *, fused: list[Fused] | None = None
    ) -> dict[int, list[Listed]]:
        """The items :meth:`finish` of ``prepared.with_k(k)`` returns, for each ``k`` in ``ks`` (offline
        evaluation): fused once (or ``fused``, :meth:`fuse`'s answer), since the fused scores do not
        depend on ``k`` (only the re-rank does), and without building the items' candidates and reasons,
        which scoring a list does not read."""
        if fused is None:
            fused = self._fuse(prepared.recalled, prepared.ranked)
        fallback = prepared.ranked.fallback
        out: dict[int, list[Listed]] = {}
        for k in ks:
            lists = []
            for rec, scores in zip(prepared.recalled, fused, strict=True):
                positions = self._rerank_positions(replace(rec.request, k=k), rec, scores)
                items = rec.signals.items[positions]
                lists.append(Listed(items, rec.signals.items, degraded=fallback and not rec.cold))
            out[k] = lists
        return out

    def _finish_fused(
        self, prepared: Prepared, fused: list[Fused], laps: _Laps, explain: bool
    ) -> list[Recommendation]:
        recalled, ranked = prepared.recalled, prepared.ranked
        finals = [self._rerank(rec, scores, explain) for rec, scores in zip(recalled, fused, strict=True)]
        laps.lap("rerank")
        timings = {stage: round(ms, 3) for stage, ms in {**prepared.laps_ms, **laps.laps}.items()}
        return [
            Recommendation(
                items=items,
                candidates=rec.signals.items,
                degraded=ranked.fallback and not rec.cold,
                ranker_fallback=ranked.fallback and not rec.cold,
                candidates_per_channel=rec.per_channel,
                timings_ms=timings,
            )
            for rec, items in zip(recalled, finals, strict=True)
        ]

    def with_fusion(self, fusion: Fusion) -> RecommendationPipeline:
        """The same pipeline with another fusion (offline comparisons); everything else is shared."""
        other = RecommendationPipeline(
            self.catalog,
            self.channels,
            self.merge_policy,
            self.ranker,
            fusion,
            fallback=self.fallback,
            latency_budget_s=self.latency_budget_s,
            clock=self.clock,
        )
        other.ranker_ids = self.ranker_ids
        return other

    def rank_items(
        self,
        pairs: Sequence[tuple[Request, IntArray]],
        *,
        start: float | None = None,
        deadline: bool = True,
    ) -> list[tuple[list[Candidate], bool]]:
        """For each (request, distinct item indices): the items scored for the request's history by the
        same ranking and fusion as :meth:`recommend`, best first, with reasons; and whether that list is
        degraded.

        Nothing is recalled, filtered or diversified: the caller chose the items (``POST /v1/rank``, the
        sampled evaluation protocol). Their recall score is the fallback fusion of the channels' signals,
        so a user without history gets them in popularity order.
        """
        t0 = self.clock() if start is None else start
        batch = [self._given_items(request, items) for request, items in pairs]
        ranked = self._rank(batch, t0 if deadline else None)
        out = []
        for rec, fused in zip(batch, self._fuse(batch, ranked), strict=True):
            order = np.lexsort((self.catalog.id_rank[rec.signals.items], -fused.scores))
            out.append((self._candidates(rec, fused, order), ranked.fallback and not rec.cold))
        return out

    def ranker_scores(self, history: IntArray, items: IntArray, *, start: float | None = None) -> F32 | None:
        """The ranker's raw scores of ``items`` for ``history``, or ``None`` when it is unavailable (the
        same rules as :meth:`recommend`); search blends them with its text relevance."""
        t0 = self.clock() if start is None else start
        if history.size == 0 or items.size == 0:
            return None
        return self._ask_ranker([(history, items)], t0).scores[0]

    def similar(self, item: int, k: int) -> list[Candidate]:
        """Items similar to ``item``: its item-CF neighbours (live co-occurrence blended in when the
        pipeline has it: :mod:`shoprec.recall.online`), padded with the items whose text is closest
        (content channel) or, in a bundle without text embeddings, the closest Transformer embeddings.
        Only servable items (in stock, listed) are returned.

        Scores: item-CF similarities divided by the best one (in ``(0, 1]``); padding items score below
        the last item-CF neighbour, decreasing in their channel's order, so the list stays sorted by score.
        An item nobody interacted with (no item-CF neighbours) gets the padding channel's list alone.
        Items added to the live catalogue since the bundle was trained have no interactions yet: the
        ones whose text is close to ``item``'s (cosine >= ``FRESH_MIN_SIMILARITY``) take up to
        ``max(1, k // 5)`` places at the end of the list, so a new product shows up beside its peers.
        """
        title = self.catalog.short_title(item)
        servable = None if self.catalog.all_available else self.catalog.available
        cf_idx, cf_scores = self.itemcf.similar(item)
        keep = cf_idx != item
        if servable is not None:
            keep &= servable[cf_idx]
        cf_idx, cf_scores = cf_idx[keep][:k], cf_scores[keep][:k]
        top = float(cf_scores[0]) if cf_scores.size else 1.0
        out = [
            Candidate(item=j, score=s / top, channels=[ITEMCF_CHANNEL], reason=f"often viewed with {title}")
            for j, s in zip(cf_idx.tolist(), cf_scores.tolist(), strict=True)
        ]
        fresh = self._fresh_similar(item, max(1, k // 5), servable)
        n_pad = k - len(out) if len(out) < k else fresh.size
        if n_pad:
            exclude = np.asarray([item, *cf_idx.tolist()], dtype=np.int64)
            pad_idx, _ = self.content.similar(item, n_pad, exclude, allowed=servable)
            pad_channel = CONTENT_CHANNEL
            if pad_idx.size == 0:
                pad_idx, _ = self.embedding.index.search(
                    self.embedding.embeddings[item], n_pad, exclude, allowed=servable
                )
                pad_channel = EMBEDDING_CHANNEL
            if len(out) >= k:  # room for the fresh items only, at the end of the list
                pad_idx = fresh
                out = out[: k - fresh.size]
            else:  # the fresh items first among the padding (it has room for them)
                pad_idx = np.concatenate([fresh, pad_idx[~np.isin(pad_idx, fresh)]])[:n_pad]
            floor = out[-1].score if out else 1.0
            n = pad_idx.size
            out.extend(
                Candidate(
                    item=j,
                    score=floor * (n - r) / (n + 1),
                    channels=[pad_channel],
                    reason=f"similar to {title}",
                )
                for r, j in enumerate(pad_idx.tolist())
            )
        return out[:k]

    def _fresh_similar(self, item: int, n: int, servable: npt.NDArray[np.bool_] | None) -> IntArray:
        """Up to ``n`` live-added items (no interactions yet) whose text is closest to ``item``'s, with a
        cosine of at least ``FRESH_MIN_SIMILARITY``."""
        base, vectors = self.catalog.n_base, self.content.vectors
        if self.catalog.n_items == base or vectors is None or not vectors[item].any():
            return _EMPTY
        sims = vectors[base:] @ vectors[item]
        ok = sims >= FRESH_MIN_SIMILARITY
        if item >= base:
            ok[item - base] = False  # never the item itself
        if servable is not None:
            ok &= servable[base:]
        top = top_n(sims, n, ok)
        return (top + base).astype(np.int64)

    # --- stages ----------------------------------------------------------------------------------------

    def _recall_batch(self, requests: Sequence[Request]) -> list[_Recalled]:
        """Recall of each request; channels that can (the vector channels, exact search) recall every
        request of the batch in one pass, which gives each the same candidates as alone."""
        contexts = [self._context(r) for r in requests]
        personal = [i for i, r in enumerate(requests) if r.history.size]
        batched: dict[str, list[Recalled]] = {}
        if len(personal) > 1:
            for ch in self.channels:
                recall_many = getattr(ch, "recall_many", None)
                if ch.name in self.sources and recall_many is not None:
                    found = recall_many([contexts[i] for i in personal], self.merge_policy.quota(ch.name))
                    batched[ch.name] = [Recalled.none()] * len(requests)
                    for i, one in zip(personal, found, strict=True):
                        batched[ch.name][i] = one
        return [
            self._recall(r, c, {name: lists[i] for name, lists in batched.items()})
            for i, (r, c) in enumerate(zip(requests, contexts, strict=True))
        ]

    def _context(self, request: Request) -> RecallContext:
        filters = (request.category, request.brand, request.min_price, request.max_price)
        allowed = self.catalog.mask_for(*filters) if self.catalog.filtered(*filters) else None
        return RecallContext(
            recent=request.history,
            allowed=allowed,
            exclude=request.history if request.exclude_seen else _EMPTY,
        )

    def _recall(
        self, request: Request, context: RecallContext, recalled: dict[str, Recalled] | None = None
    ) -> _Recalled:
        """One request's candidates; ``recalled`` holds channels' lists already recalled for it."""
        done = recalled or {}
        if request.history.size:
            policy = self.merge_policy
            lists = [
                (ch.name, done[ch.name] if ch.name in done else ch.recall(context, policy.quota(ch.name)))
                for ch in self.channels
                if ch.name in self.sources
            ]
        else:  # cold start: the popular items alone, as many as the whole budget
            policy = MergePolicy(budget=self.merge_policy.budget, quotas={})
            lists = [(POPULARITY_CHANNEL, self.popularity.recall(context, policy.budget))]
        merged = merge_candidates(lists, policy)
        found = np.zeros((merged.size, len(CHANNELS)), dtype=np.bool_)
        channel_rank = np.empty((merged.size, len(CHANNELS)), dtype=np.float32)
        for j, name in enumerate(CHANNELS):
            channel_rank[:, j] = self.merge_policy.quota(name)
            if name in merged.names:
                col = merged.names.index(name)
                found[:, j] = merged.found[:, col]
                channel_rank[found[:, j], j] = merged.ranks[found[:, j], col]
        signals = self._signals(context, merged.items, merged.scores.astype(np.float32), found, channel_rank)
        source_of = np.asarray([SOURCES.index(n) for n in merged.names], dtype=np.int64)
        return _Recalled(
            request,
            context,
            signals,
            _FoundBy(tuple(merged.names), merged.found),
            source_of[merged.best] if merged.size else _EMPTY,
            {name: len(c) for name, c in lists},
        )

    def _given_items(self, request: Request, items: IntArray) -> _Recalled:
        """``items`` as a candidate set that recall did not make (``rank_items``): the channels' fusion
        with the merge weights stands in for the recall score and its reasons for recall's."""
        context = RecallContext(recent=request.history)
        found = np.zeros((items.size, len(CHANNELS)), dtype=np.bool_)
        channel_rank = np.asarray([self.merge_policy.quota(n) for n in CHANNELS], dtype=np.float32)
        ranks = np.repeat(channel_rank[None, :], items.size, axis=0)
        zeros = np.zeros(items.size, dtype=np.float32)
        recall = self.fallback.fuse([self._signals(context, items, zeros, found, ranks)])[0]
        signals = self._signals(context, items, recall.scores.astype(np.float32), found, ranks)
        source = recall.strongest(np.arange(items.size))
        return _Recalled(request, context, signals, _FoundBy((), found[:, :0]), source, {})

    def _signals(
        self,
        context: RecallContext,
        items: IntArray,
        recall_score: F32,
        found: npt.NDArray[np.bool_],
        channel_rank: F32,
    ) -> CandidateSignals:
        """Every signal about ``items`` (each channel's score of each item, whichever channel found it)."""
        signals = np.empty((items.size, len(CHANNELS)), dtype=np.float32)
        for j, name in enumerate(CHANNELS):
            signals[:, j] = self.channel_by_name[name].signal(context, items)
        last, recency = self.itemcf.proximity(context.recent, items)
        return CandidateSignals(
            items=items,
            history_length=int(context.recent.size),
            recall_score=recall_score,
            found=found,
            channel_rank=channel_rank,
            signals=signals,
            itemcf_last=last,
            itemcf_recency=recency,
            popularity_percentile=self.popularity.percentile[items],
        )

    def _rank(self, batch: Sequence[_Recalled], start: float | None) -> _Ranked:
        """The ranker's scores for every set that needs them (``None`` for the others), or a fallback.
        Nothing is asked when the fusion does not use the ranker, nor for cold-start users."""
        want = [i for i, rec in enumerate(batch) if rec.signals.size and not rec.cold]
        if not want or not self.fusion.uses_ranker:
            return _Ranked([None] * len(batch), fallback=False)
        asked = self._ask_ranker([(batch[i].request.history, batch[i].signals.items) for i in want], start)
        scores: list[F32 | None] = [None] * len(batch)
        for i, answer in zip(want, asked.scores, strict=True):
            scores[i] = answer
        return _Ranked(scores, asked.fallback)

    def _ask_ranker(self, pairs: Sequence[tuple[IntArray, IntArray]], start: float | None) -> _Ranked:
        """One ranker call for ``(history, candidates)`` pairs: the one place where the fallback is decided.

        The whole batch falls back (scores ``None``) when there is no ranker, the latency budget counted
        from ``start`` is spent before asking, the ranker raises ``RankerUnavailableError``, answers after
        the budget, or answers a wrong number of scores or non-finite ones. ``start=None``: no deadline.
        """
        none: list[F32 | None] = [None] * len(pairs)
        if self.ranker is None:
            return _Ranked(none, fallback=True)
        timeout = UNBOUNDED_TIMEOUT_S
        if start is not None:
            timeout = self.latency_budget_s - (self.clock() - start)
            if timeout <= 0:
                log.warning("latency budget spent before ranking; fusing the recall scores")
                return _Ranked(none, fallback=True)
        ids = self.ranker_ids
        instances = [
            ([ids[h] for h in hist.tolist()], [ids[c] for c in cands.tolist()]) for hist, cands in pairs
        ]
        try:
            answers = self.ranker.score_many(instances, timeout_s=timeout)
        except RankerUnavailableError as exc:
            log.warning("ranker unavailable, fusing the recall scores: %s", exc)
            return _Ranked(none, fallback=True)
        if start is not None and (elapsed := self.clock() - start) > self.latency_budget_s:
            log.warning(
                "ranker answered after the latency budget (%.1f ms > %.1f ms); fusing the recall scores",
                elapsed * 1000,
                self.latency_budget_s * 1000,
            )
            return _Ranked(none, fallback=True)
        if len(answers) != len(pairs):
            log.error("ranker returned %d score lists for %d instances", len(answers), len(pairs))
            return _Ranked(none, fallback=True)
        scores: list[F32 | None] = []
        for (_, cands), answer in zip(pairs, answers, strict=True):
            arr = np.asarray(answer, dtype=np.float32)
            if arr.shape != (cands.size,) or not np.all(np.isfinite(arr)):
                log.error(
                    "ranker returned %d scores for %d candidates or non-finite ones", arr.size, cands.size
                )
                return _Ranked(none, fallback=True)
            scores.append(arr)
        return _Ranked(scores, fallback=False)

    def _fuse(self, batch: Sequence[_Recalled], ranked: _Ranked) -> list[Fused]:
        out: list[Fused | None] = [None] * len(batch)
        primary: list[int] = []
        fallback: list[int] = []
        for i, rec in enumerate(batch):
            if rec.cold or rec.signals.size == 0:
                score = rec.signals.recall_score.astype(np.float64)
                out[i] = Fused.of(score, np.full(score.size, _POPULARITY, dtype=np.int64))
            elif ranked.fallback:
                fallback.append(i)
            else:
                primary.append(i)
        for fusion, which in ((self.fusion, primary), (self.fallback, fallback)):
            if which:
                sets = [batch[i].signals.with_ranker(ranked.scores[i]) for i in which]
                for i, fused in zip(which, fusion.fuse(sets), strict=True):
                    out[i] = fused
        return [f for f in out if f is not None]

    def _rerank(self, rec: _Recalled, fused: Fused, explain: bool = True) -> list[Candidate]:
        return self._candidates(rec, fused, self._rerank_positions(rec.request, rec, fused), explain)

    def _rerank_positions(self, req: Request, rec: _Recalled, fused: Fused) -> IntArray:
        return rerank_positions(
            rec.signals.items,
            fused.scores,
            req.k,
            self.catalog,
            seen=req.history.tolist(),
            exclude_seen=req.exclude_seen,
            category=req.category,
            brand=req.brand,
        )

    def _candidates(
        self, rec: _Recalled, fused: Fused, positions: IntArray, explain: bool = True
    ) -> list[Candidate]:
        """The candidates at ``positions``, in that order, with their fused score, the channels that found
        them and the reason of the source contributing most to the score (an item no source is credited
        for is explained by recall's strongest source); without ``explain`` no reason."""
        items = rec.signals.items[positions]
        if not explain:
            return [
                Candidate(item=item, score=score, channels=rec.channels[p])
                for p, item, score in zip(
                    positions.tolist(), items.tolist(), fused.scores[positions].tolist(), strict=True
                )
            ]
        sources = fused.strongest(positions)
        sources = np.where(sources >= 0, sources, rec.recall_source[positions])
        reasons = [""] * positions.size
        for source in np.unique(sources).tolist():
            at = np.flatnonzero(sources == source)
            name = SOURCES[source]
            if name == RANKER:
                texts = [RANKER_REASON] * at.size
            else:
                texts = self.channel_by_name[name].reasons(rec.context, items[at])
            for a, text in zip(at.tolist(), texts, strict=True):
                reasons[a] = text
        return [
            Candidate(
                item=item,
                score=score,
                channels=rec.channels[p],
                reason=reason or self.popularity.reason_of[item],
            )
            for p, item, score, reason in zip(
                positions.tolist(), items.tolist(), fused.scores[positions].tolist(), reasons, strict=True
            )
        ]


class _Laps:
    """Milliseconds per stage, measured with the pipeline's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.last = clock()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self.clock()
        self.laps[stage] = (now - self.last) * 1000.0
        self.last = now
