"""BM25 keyword search over title, brand, categories and description (with the ``bm25s`` library).

Field weighting: one BM25 index per field, and an item's score is the weighted sum of its per-field
scores (title 3.0, brand 1.5, categories 1.0, description 0.5 by default).  Separate indices, rather
than repeating the title text inside one document, keep each field's own length normalisation and term
statistics: a word in a 10-word title is strong evidence, the same word somewhere in a 300-word
description is weak, and a long description cannot dilute a title match.  The cost is one sparse score
pass per field, which on a few thousand items is well under a millisecond.

Tokenisation is deliberately simple and shared by documents and queries: lowercase, words of two or
more letters or digits, the English stopwords of ``bm25s``, and a light plural folding (a final ``s``
is dropped from words longer than three letters unless they end in ``ss``, ``us`` or ``is``), so that
"calipers" finds "caliper" and "glass" stays "glass".

Matching is a disjunction (any query word), ranked by score; the matched set (every item with a
positive score) is what facets count.

:class:`SearchRecall` is the port the search service depends on; a semantic (embedding) search can
implement it later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

import bm25s
import numpy as np
import numpy.typing as npt
from bm25s.stopwords import STOPWORDS_EN

from shoprec.catalog import BoolArray, CatalogIndex, IntArray
from shoprec.recall.channels import top_n

FloatArray = npt.NDArray[np.float32]

BM25 = "bm25"
DEFAULT_FIELD_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"title": 3.0, "brand": 1.5, "categories": 1.0, "description": 0.5}
)

_TOKEN = re.compile(r"\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)
_KEEP_S = ("ss", "us", "is")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens of ``text`` without stopwords, plurals folded (see the module docstring)."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith(_KEEP_S):
            tok = tok[:-1]
        out.append(tok)
    return out


class SearchRecall(Protocol):
    """Finds catalogue items for a text query."""

    @property
    def name(self) -> str: ...

    def match(self, query: str) -> tuple[IntArray, FloatArray]:
        """Every item matching ``query`` with its score, best first (ties: smaller index)."""
        ...

    def search(self, query: str, n: int, mask: BoolArray | None = None) -> tuple[IntArray, FloatArray]:
        """The ``n`` best matches within ``mask`` (``None``: all items), best first."""
        ...


class Bm25Search:
    """Field-weighted BM25 over a :class:`CatalogIndex`; build it once per bundle."""

    name = BM25

    def __init__(self, n_items: int, fields: Mapping[str, tuple[Any, float]]) -> None:
        """Use :meth:`build`.  ``fields`` maps a field name to (indexed ``bm25s.BM25``, weight)."""
        self.n_items = n_items
        self._fields = dict(fields)

    @classmethod
    def build(
        cls,
        catalog: CatalogIndex,
        *,
        weights: Mapping[str, float] = DEFAULT_FIELD_WEIGHTS,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> Bm25Search:
        """Index the catalogue's fields named in ``weights`` (``title``, ``brand``, ``categories``,
        ``description``); fields with weight 0 are not indexed."""
        texts: dict[str, list[str]] = {
            "title": catalog.titles,
            "brand": catalog.brands,
            "categories": [" ".join(path) for path in catalog.categories],
            "description": catalog.descriptions,
        }
        unknown = set(weights) - set(texts)
        if unknown:
            raise ValueError(f"unknown search fields {sorted(unknown)}; expected some of {sorted(texts)}")
        fields: dict[str, tuple[Any, float]] = {}
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"field weight must be >= 0, got {name}={weight}")
            if weight == 0:
                continue
            corpus = [tokenize(t) for t in texts[name]]
            if not any(corpus):
                continue  # bm25s cannot index a field that is empty everywhere
            index = bm25s.BM25(k1=k1, b=b)
            index.index(corpus, show_progress=False)
            fields[name] = (index, weight)
        return cls(catalog.n_items, fields)

    def scores(self, query: str) -> FloatArray:
        """The weighted BM25 score of every item for ``query`` (0 where no query word occurs)."""
        total = np.zeros(self.n_items, dtype=np.float32)
        tokens = list(dict.fromkeys(tokenize(query)))
        if not tokens:
            return total
        for index, weight in self._fields.values():
            ids = index.get_tokens_ids(tokens)
            if ids:
                total += weight * np.asarray(index.get_scores_from_ids(ids), dtype=np.float32)
        return total

    def match(self, query: str) -> tuple[IntArray, FloatArray]:
        scores = self.scores(query)
        idx = np.flatnonzero(scores > 0)
        idx = idx[np.lexsort((idx, -scores[idx]))]
        return idx, scores[idx]

    def search(self, query: str, n: int, mask: BoolArray | None = None) -> tuple[IntArray, FloatArray]:
        scores = self.scores(query)
        positive = scores > 0
        idx = top_n(scores, n, positive if mask is None else positive & mask)
        return idx, scores[idx]
