"""Search over the live catalogue: the bundle's search index plus the items added or edited since.

The BM25 index and the item text embeddings are built at training time over the bundle's items. An item
added through ``PUT /v1/items`` (or a bundle item whose text was edited) is searched without rebuilding
them:

- **lexical**: its fields are tokenised as the index's documents are and scored with BM25 against the
  *index's* corpus statistics (each token's document frequency, the mean field length, ``k1``, ``b``,
  the field weights; :class:`~shoprec.search.bm25.FieldStats`): the score it would get if it had been
  indexed, up to the tiny change its own words would make to those statistics. An edited bundle item's
  indexed text is ignored in favour of the new one.
- **semantic**: its text embedding (encoded when the live catalogue refreshed) joins the item vectors.

Both feed the same fusion (:class:`~shoprec.search.hybrid.HybridSearch`) as the bundle's items, so a new
item ranks among them by the same rules. Spelling correction keeps the bundle's vocabulary: a new word is
found when spelled right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shoprec.catalog import CatalogIndex
from shoprec.search.bm25 import BM25, Bm25Search, FieldStats, LexicalMatches, SearchRecall, analyze
from shoprec.search.spelling import Correction

FloatArray = npt.NDArray[np.float32]


def field_texts(catalog: CatalogIndex, i: int) -> dict[str, str]:
    """Item ``i``'s text per search field, as :meth:`Bm25Search.build` reads them."""
    return {
        "title": catalog.titles[i],
        "brand": catalog.brands[i],
        "categories": " ".join(catalog.categories[i]),
        "description": catalog.descriptions[i],
    }


@dataclass(frozen=True, eq=False)
class _Doc:
    """One field of one external document: its token counts and length."""

    counts: Counter[str]
    length: int


class LiveLexical(LexicalMatches):
    """BM25 over the bundle's items (``base``) and ``external`` items (catalogue index -> field texts)
    scored against ``base``'s statistics; the base index's own scores of those indices are dropped (an
    edited item is searched by its new text only). ``n_items`` is the live catalogue's size."""

    name = BM25

    def __init__(self, base: Bm25Search, external: Mapping[int, Mapping[str, str]], n_items: int) -> None:
        self.base = base
        self.n_items = n_items
        self.stats: list[FieldStats] = base.field_stats()
        self.indices = np.asarray(sorted(external), dtype=np.int64)
        self._docs: dict[str, list[_Doc]] = {}
        stems = base.stem_weight > 0
        for field in self.stats:
            docs = []
            for i in self.indices.tolist():
                exact, stem = analyze(external[i].get(field.name, ""))
                tokens = exact + stem if stems else exact
                docs.append(_Doc(Counter(tokens), len(tokens)))
            self._docs[field.name] = docs

    def correct(self, query: str) -> Correction:
        return self.base.correct(query)

    def external_scores(self, query: str) -> FloatArray:
        """BM25 of each external item for ``query`` (aligned with ``self.indices``)."""
        out = np.zeros(self.indices.size, dtype=np.float64)
        if not self.indices.size:
            return out.astype(np.float32)
        groups = self.base.query_tokens(query)
        for field in self.stats:
            docs = self._docs[field.name]
            for tokens, group_weight in groups:
                for token in tokens:
                    idf = field.idf(token)
                    for d, doc in enumerate(docs):
                        tf = doc.counts.get(token, 0)
                        if tf:
                            norm = field.k1 * ((1 - field.b) + field.b * doc.length / field.mean_length)
                            out[d] += field.weight * group_weight * idf * tf / (norm + tf)
        return out.astype(np.float32)

    def scores(self, query: str) -> FloatArray:
        total = np.zeros(self.n_items, dtype=np.float32)
        total[: self.base.n_items] = self.base.scores(query)
        total[self.indices] = self.external_scores(query)
        return total


def live_search(
    base: SearchRecall,
    catalog: CatalogIndex,
    external: Sequence[int],
    vectors: npt.NDArray[np.float32] | None,
) -> SearchRecall:
    """``base`` (built over the bundle's items) extended to ``catalog``: the items at ``external`` (every
    live-added item, and the bundle items whose text was edited) are searched by their current text, and
    by ``vectors`` (the live catalogue's text embeddings, all items, or ``None`` without semantic search)."""
    from shoprec.search.hybrid import HybridSearch

    texts = {i: field_texts(catalog, i) for i in external}
    if isinstance(base, HybridSearch):
        if vectors is None:
            raise ValueError("a hybrid search needs the live catalogue's text embeddings")
        if not isinstance(base.lexical, Bm25Search):
            raise TypeError(f"cannot extend a lexical channel of type {type(base.lexical).__name__}")
        lexical = LiveLexical(base.lexical, texts, catalog.n_items)
        semantic = base.semantic.extended(vectors, [path[-1] if path else "" for path in catalog.categories])
        return HybridSearch(
            lexical,
            semantic,
            semantic_weight=base.semantic_weight,
            long_query_weight=base.long_query_weight,
            long_query_words=base.long_query_words,
            feedback_items=base.feedback_items,
            feedback_weight=base.feedback_weight,
        )
    if isinstance(base, Bm25Search):
        return LiveLexical(base, texts, catalog.n_items)
    raise TypeError(f"cannot extend a search of type {type(base).__name__}")
