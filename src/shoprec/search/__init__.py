"""Keyword search over the catalogue: the :class:`SearchRecall` port and its BM25 implementation."""

from __future__ import annotations

from shoprec.search.bm25 import DEFAULT_FIELD_WEIGHTS, Bm25Search, SearchRecall, tokenize

__all__ = ["DEFAULT_FIELD_WEIGHTS", "Bm25Search", "SearchRecall", "tokenize"]
