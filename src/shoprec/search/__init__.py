"""Keyword search over the catalogue: the :class:`SearchRecall` port, its BM25 implementation and the
spelling correction of queries."""

from __future__ import annotations

from shoprec.search.bm25 import DEFAULT_FIELD_WEIGHTS, Bm25Search, SearchRecall, analyze, tokenize
from shoprec.search.spelling import Correction, SpellingCorrector

__all__ = [
    "DEFAULT_FIELD_WEIGHTS",
    "Bm25Search",
    "Correction",
    "SearchRecall",
    "SpellingCorrector",
    "analyze",
    "tokenize",
]
