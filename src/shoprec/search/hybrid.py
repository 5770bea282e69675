"""Hybrid search: the lexical (BM25) and semantic channels fused into one ranking.

The candidates are every lexical match plus the semantic channel's head (``DenseSearch.depth`` items).
Each channel's score is normalised over those candidates — BM25 divided by its maximum (0 where no query
word occurs), the semantic score min-max scaled — and the fused score is
``(1 - w) * bm25 + w * semantic``, where ``w`` is ``semantic_weight`` (0.6) for a query of up to
``long_query_words`` (3) words and ``long_query_weight`` (0.9) for a longer one: a short query names a
product, and its words are the best evidence (typos are corrected by the lexical channel); a long one
describes a need in words that the items' titles rarely contain ("something to measure the thickness of
a sheet of metal"), and its meaning is. On the Scientific dev set one weight for all queries reached
nDCG@10 0.822 (0.7), the two weights 0.844 (docs/search.md). Linear fusion of normalised scores rather
than reciprocal-rank fusion, because it keeps the size of a lexical win: an exact title match stays on top
while the semantic channel orders what words alone cannot (measured side by side in docs/search.md).

**Pseudo-relevance feedback** (Rocchio, in embedding space): the first fused ranking's top
``feedback_items`` (20) stand in for relevant items; the query vector becomes
``q + feedback_weight * m`` (2.0; ``m``: their mean vector, each weighted ``1 / log2(rank + 1)``),
normalised, and the semantic channel is scored and fused again with the same lexical scores. A query
vector of a need described in words ("protect my hands when handling chemicals") lands between many
topics; the items that both channels put first pull it towards the products that were meant. It costs
one more product with the item vectors (no second encoding): dev set nDCG@10 0.844 -> 0.865, natural
queries 0.593 -> 0.649, no query kind worse (docs/search.md, held-out halves included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shoprec.catalog import BoolArray, IntArray
from shoprec.recall.channels import top_n

if TYPE_CHECKING:  # bm25s and the encoder are imported only where an index is built
    from shoprec.search.bm25 import SearchRecall
    from shoprec.search.dense import DenseSearch

FloatArray = npt.NDArray[np.float32]

HYBRID = "hybrid"
DEFAULT_SEMANTIC_WEIGHT = 0.6
DEFAULT_LONG_QUERY_WEIGHT = 0.9
LONG_QUERY_WORDS = 3
DEFAULT_FEEDBACK_ITEMS = 20
DEFAULT_FEEDBACK_WEIGHT = 2.0


@dataclass(frozen=True)
class SearchHits:
    """Matches of a query, best first: item indices, fused scores and the channels that found each."""

    items: IntArray
    scores: FloatArray
    channels: list[tuple[str, ...]]


def hits_of(index: SearchRecall, query: str) -> SearchHits:
    """``index``'s matches for ``query`` with the channels that found each item."""
    if isinstance(index, HybridSearch):
        return index.hits(query)
    items, scores = index.match(query)
    return SearchHits(items, scores, [(index.name,)] * int(items.size))


class HybridSearch:
    """Lexical and semantic search fused by normalised scores (module docstring)."""

    name = HYBRID

    def __init__(
        self,
        lexical: SearchRecall,
        semantic: DenseSearch,
        *,
        semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
        long_query_weight: float = DEFAULT_LONG_QUERY_WEIGHT,
        long_query_words: int = LONG_QUERY_WORDS,
        feedback_items: int = DEFAULT_FEEDBACK_ITEMS,
        feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT,
    ) -> None:
        """``feedback_items`` and ``feedback_weight``: the pseudo-relevance feedback (module docstring;
        weight 0 turns it off)."""
        for name, value in (("semantic_weight", semantic_weight), ("long_query_weight", long_query_weight)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if feedback_items < 1 or feedback_weight < 0:
            raise ValueError("feedback_items must be >= 1 and feedback_weight >= 0")
        self.lexical = lexical
        self.semantic = semantic
        self.semantic_weight = semantic_weight
        self.long_query_weight = long_query_weight
        self.long_query_words = long_query_words
        self.feedback_items = feedback_items
        self.feedback_weight = feedback_weight
        self.n_items = semantic.n_items

    def weight_for(self, query: str) -> float:
        """The semantic channel's weight for ``query`` (module docstring)."""
        long = len(query.split()) > self.long_query_words
        return self.long_query_weight if long else self.semantic_weight

    def hits(self, query: str) -> SearchHits:
        lex_idx, lex_scores = self.lexical.match(query)
        w = self.weight_for(query)
        q = self.semantic.query_vector(query)
        items, fused, sem_idx = self._fuse(lex_idx, lex_scores, self.semantic.vector_scores(q), w)
        if self.feedback_weight > 0 and items.size:
            # Pseudo-relevance feedback: the first ranking's head stands in for the relevant items, and the
            # query vector moves towards them before the semantic channel is scored again.
            q = self.semantic.feedback_vector(q, items[: self.feedback_items], self.feedback_weight)
            items, fused, sem_idx = self._fuse(lex_idx, lex_scores, self.semantic.vector_scores(q), w)
        in_lex = np.zeros(self.n_items, dtype=bool)
        in_lex[lex_idx] = True
        in_sem = np.zeros(self.n_items, dtype=bool)
        in_sem[sem_idx] = True
        lexical_name, semantic_name = self.lexical.name, self.semantic.name
        channels = [
            tuple(name for name, found in ((lexical_name, in_lex[i]), (semantic_name, in_sem[i])) if found)
            for i in items.tolist()
        ]
        return SearchHits(items, fused, channels)

    def _fuse(
        self, lex_idx: IntArray, lex_scores: FloatArray, sem_all: FloatArray, w: float
    ) -> tuple[IntArray, FloatArray, IntArray]:
        """The candidates (lexical matches and the semantic head) ordered by fused score, their scores,
        and the semantic head."""
        sem_idx = top_n(sem_all, self.semantic.depth)  # what semantic.match returns, without a 2nd product
        items = np.union1d(lex_idx, sem_idx).astype(np.int64)
        if items.size == 0:
            return items, np.zeros(0, np.float32), sem_idx
        lexical = np.zeros(self.n_items, dtype=np.float64)
        lexical[lex_idx] = lex_scores
        lex = lexical[items]
        top = lex.max()
        lex = lex / top if top > 0 else lex
        sem = sem_all[items].astype(np.float64)
        low, high = sem.min(), sem.max()
        sem = (sem - low) / (high - low) if high > low else np.zeros_like(sem)
        fused = ((1 - w) * lex + w * sem).astype(np.float32)
        order = np.lexsort((items, -fused))
        return items[order], fused[order], sem_idx

    def match(self, query: str) -> tuple[IntArray, FloatArray]:
        hits = self.hits(query)
        return hits.items, hits.scores

    def search(self, query: str, n: int, mask: BoolArray | None = None) -> tuple[IntArray, FloatArray]:
        items, scores = self.match(query)
        if mask is not None:
            keep = mask[items]
            items, scores = items[keep], scores[keep]
        return items[:n], scores[:n]
