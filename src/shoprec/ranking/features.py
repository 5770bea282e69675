"""What fusion knows about each (user, candidate) pair, and the feature matrix of the stacking model.

:class:`CandidateSignals` holds, for one user's candidates, every score the pipeline has: the ranker's,
each recall channel's (also for candidates another channel found), where each channel ranked them, and
a few item-CF details. :func:`feature_matrix` turns a batch of them into the stacking model's features
(:data:`FEATURES`, in column order). Every feature is computed from the user's history and the bundle's
models alone, so training (on validation targets) and serving compute them the same way.

Relative features (``*_gap``, ``*_share``, ``*_rank``) compare a candidate with the user's other
candidates: a tree ensemble cannot subtract two columns, and "the best item-CF score of this user" tells
more than the raw score, whose scale depends on the history's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

IntArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_IC, _EM, _PO, _CO = (
    CHANNELS.index(c) for c in (ITEMCF_CHANNEL, EMBEDDING_CHANNEL, POPULARITY_CHANNEL, CONTENT_CHANNEL)
)


@dataclass(frozen=True, eq=False)
class CandidateSignals:
    """One user's ``C`` candidates and every signal about them.

    ``found[c, j]``: channel ``CHANNELS[j]`` recalled candidate ``c``; ``channel_rank[c, j]`` its 0-based
    position in that channel's list (the channel's quota when absent); ``signals[c, j]`` the channel's score
    of it (item-CF similarity sum, embedding dot product, ``log1p`` popularity, text cosine). ``ranker``
    is the sequence model's score, ``None`` when it was not asked or did not answer. ``itemcf_last`` is the
    similarity to the most recent history item and ``itemcf_recency`` the age (0 = newest) of the most
    recent history item that lists the candidate among its neighbours (``max_history`` when none does).
    ``popularity_percentile`` is the item's popularity rank over the catalogue as a fraction in [0, 1]
    (1 = the best seller), a scale that does not depend on the catalogue's size.
    """

    items: IntArray
    history_length: int
    recall_score: F32
    found: BoolArray
    channel_rank: F32
    signals: F32
    itemcf_last: F32
    itemcf_recency: F32
    popularity_percentile: F32
    ranker: F32 | None = None

    @property
    def size(self) -> int:
        return int(self.items.size)

    def with_ranker(self, scores: F32 | None) -> CandidateSignals:
        """A copy holding the ranker's ``scores`` (or none)."""
        return CandidateSignals(
            items=self.items,
            history_length=self.history_length,
            recall_score=self.recall_score,
            found=self.found,
            channel_rank=self.channel_rank,
            signals=self.signals,
            itemcf_last=self.itemcf_last,
            itemcf_recency=self.itemcf_recency,
            popularity_percentile=self.popularity_percentile,
            ranker=scores,
        )

    def source_scores(self, source: str) -> F32:
        """The raw score of ``source`` (``ranker`` or a channel) for every candidate."""
        if source == RANKER:
            if self.ranker is None:
                raise ValueError("no ranker scores for these candidates")
            return self.ranker
        out: F32 = self.signals[:, CHANNELS.index(source)]
        return out


FEATURES: Final = (
    "ranker_score",
    "ranker_gap",
    "ranker_rank",
    "itemcf_score",
    "itemcf_share",
    "itemcf_rank",
    "itemcf_last",
    "itemcf_recency",
    "embedding_score",
    "embedding_gap",
    "embedding_rank",
    "popularity_log",
    "popularity_percentile",
    "popularity_rank",
    "content_score",
    "content_gap",
    "content_rank",
    "channels_found",
    "history_length",
    "recall_score",
)
"""The stacking model's features, in column order. A ``<source>_`` prefix ties a feature to the source
(:data:`shoprec.artifacts.specs.SOURCES`) that a contribution through it is credited to."""


def feature_source(name: str) -> int:
    """Index in ``SOURCES`` of the source feature ``name`` belongs to; ``-1`` for the recall set's own
    features (``channels_found``, ``history_length``, ``recall_score``)."""
    for i, source in enumerate(SOURCES):
        if name.startswith(source + "_"):
            return i
    return -1


def feature_matrix(batch: Sequence[CandidateSignals], names: Sequence[str] = FEATURES) -> F64:
    """Features ``[sum of candidates, len(names)]`` of a batch, users one after the other.

    ``ranker_*`` features need ranker scores in every set; ``ValueError`` names an unknown feature.
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown fusion feature(s) {', '.join(unknown)}")
    blocks = [_features(s, names) for s in batch]
    if not blocks:
        return np.zeros((0, len(names)), dtype=np.float64)
    return np.concatenate(blocks)


def _features(s: CandidateSignals, names: Sequence[str]) -> F64:
    cols: dict[str, npt.NDArray[np.floating]] = {}
    needs_ranker = any(n.startswith(RANKER + "_") for n in names)
    if needs_ranker:
        r = s.source_scores(RANKER).astype(np.float64)
        cols["ranker_score"] = r
        cols["ranker_gap"] = r - r.max() if r.size else r
        cols["ranker_rank"] = _ranks(r)
    cf = s.signals[:, _IC].astype(np.float64)
    best_cf = float(cf.max(initial=0.0))
    cols["itemcf_score"] = cf
    cols["itemcf_share"] = cf / best_cf if best_cf > 0 else np.zeros_like(cf)
    cols["itemcf_rank"] = s.channel_rank[:, _IC]
    cols["itemcf_last"] = s.itemcf_last
    cols["itemcf_recency"] = s.itemcf_recency
    emb = s.signals[:, _EM].astype(np.float64)
    cols["embedding_score"] = emb
    cols["embedding_gap"] = emb - emb.max() if emb.size else emb
    cols["embedding_rank"] = _ranks(emb)
    cols["popularity_log"] = s.signals[:, _PO]
    cols["popularity_percentile"] = s.popularity_percentile
    cols["popularity_rank"] = s.channel_rank[:, _PO]
    content = s.signals[:, _CO].astype(np.float64)
    cols["content_score"] = content
    cols["content_gap"] = content - content.max() if content.size else content
    cols["content_rank"] = _ranks(content)
    cols["channels_found"] = s.found.sum(axis=1)
    cols["history_length"] = np.full(s.size, float(s.history_length))
    cols["recall_score"] = s.recall_score
    return np.column_stack([np.asarray(cols[n], dtype=np.float64) for n in names]).reshape(s.size, len(names))


def _ranks(x: F64) -> F64:
    """0-based position of each value when sorted best first (ties: the earlier candidate first)."""
    out = np.empty(x.size, dtype=np.float64)
    out[np.argsort(-x, kind="stable")] = np.arange(x.size)
    return out
