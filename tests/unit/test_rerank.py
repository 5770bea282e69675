from __future__ import annotations

import pytest
from tests.unit.fakes import make_catalog

from shoprec.catalog import CatalogIndex
from shoprec.domain import Candidate
from shoprec.rerank.rules import default_category_cap, rerank

CATALOG = make_catalog()


def cand(item: int, score: float) -> Candidate:
    return Candidate(item=item, score=score, channels=["x"], reason="r")


def items(out: list[Candidate]) -> list[int]:
    return [c.item for c in out]


def test_seen_items_are_excluded_by_default_and_kept_on_request() -> None:
    cands = [cand(0, 3.0), cand(1, 2.0), cand(2, 1.0)]
    assert items(rerank(cands, 10, CATALOG, seen=[1])) == [0, 2]
    assert items(rerank(cands, 10, CATALOG, seen=[1], exclude_seen=False)) == [0, 1, 2]


def test_category_and_brand_filters() -> None:
    cands = [cand(i, 12.0 - i) for i in range(12)]
    assert items(rerank(cands, 10, CATALOG, category="lab supplies")) == [2, 3, 4]
    assert items(rerank(cands, 10, CATALOG, brand="seoh")) == [2, 4]
    assert items(rerank(cands, 10, CATALOG, category="filament", brand="ESUN")) == [7, 8]
    assert rerank(cands, 10, CATALOG, category="nothing like this") == []


def test_default_category_cap_scales_with_k() -> None:
    assert [default_category_cap(k) for k in (1, 2, 3, 4, 10, 11, 20, 50)] == [1, 1, 2, 2, 5, 6, 10, 25]


def test_diversity_caps_items_per_leaf_category_in_the_top_k() -> None:
    # Four filaments (5..8) score highest; with k=4 at most ceil(2.0)=2 may be filaments.
    cands = [cand(5, 9.0), cand(6, 8.0), cand(7, 7.0), cand(8, 6.0), cand(0, 5.0), cand(2, 4.0)]
    assert items(rerank(cands, 4, CATALOG)) == [5, 6, 0, 2]
    assert items(rerank(cands, 4, CATALOG, max_per_category=4)) == [5, 6, 7, 8]


def test_diversity_is_soft_the_best_capped_items_fill_a_short_list() -> None:
    cands = [cand(5, 9.0), cand(6, 8.0), cand(7, 7.0), cand(0, 1.0)]
    out = rerank(cands, 4, CATALOG, max_per_category=1)
    assert items(out) == [5, 6, 7, 0]  # sorted by score again after filling
    assert [c.score for c in out] == [9.0, 8.0, 7.0, 1.0]


def test_items_without_a_category_are_not_capped() -> None:
    cat = CatalogIndex.build(["a", "b", "c"], {})
    out = rerank([cand(0, 3.0), cand(1, 2.0), cand(2, 1.0)], 3, cat, max_per_category=1)
    assert items(out) == [0, 1, 2]


def test_ties_are_broken_by_item_id_not_by_index() -> None:
    cat = CatalogIndex.build(["b", "c", "a"], {})
    out = rerank([cand(0, 1.0), cand(1, 1.0), cand(2, 1.0), cand(1, 5.0)], 3, cat)
    assert [cat.item_ids[c.item] for c in out] == ["a", "b", "c"]  # the duplicate of item 1 is dropped


def test_k_bounds_and_validation() -> None:
    cands = [cand(i, float(i)) for i in range(12)]
    assert len(rerank(cands, 5, CATALOG, max_per_category=5)) == 5
    assert rerank(cands, 0, CATALOG) == []
    with pytest.raises(ValueError, match="k must be"):
        rerank(cands, -1, CATALOG)
    with pytest.raises(ValueError, match="max_per_category"):
        rerank(cands, 5, CATALOG, max_per_category=0)
