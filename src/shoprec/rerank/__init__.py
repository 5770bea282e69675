"""Business rules applied to the ranked candidates: exclusions, filters, diversity, final ordering."""

from __future__ import annotations

from shoprec.rerank.rules import default_category_cap, rerank

__all__ = ["default_category_cap", "rerank"]
