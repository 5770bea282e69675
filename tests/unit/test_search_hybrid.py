"""The semantic channel (category prior, query cache) and the hybrid fusion, on hand-made vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from shoprec.catalog import CatalogIndex
from shoprec.search.bm25 import Bm25Search
from shoprec.search.dense import DenseSearch, category_centroids
from shoprec.search.hybrid import HybridSearch, hits_of
from shoprec.text import item_text


class FakeEncoder:
    """Maps known query texts to fixed vectors and counts calls."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
        self.calls: list[str] = []

    def encode(self, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
        self.calls.extend(texts)
        return np.stack([self.vectors[t] for t in texts])


# Items 0, 1 are "Gloves", 2 is "Tape", 3 has no category.
ITEMS = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
LEAVES = ["Gloves", "Gloves", "Tape", ""]


def test_category_centroids_are_unit_means() -> None:
    c = category_centroids(ITEMS, np.array([0, 0, 1, 2]), 3)
    assert c[0] == pytest.approx(np.array([1.6, 0.8]) / np.hypot(1.6, 0.8))
    assert c[1] == pytest.approx([0.0, 1.0])
    assert c[2] == pytest.approx([0.8, 0.6])


def test_dense_score_adds_the_category_prior_by_hand() -> None:
    dense = DenseSearch(FakeEncoder({"q": [0.0, 1.0]}), ITEMS, LEAVES, category_weight=0.5)
    gloves = 0.8 / np.hypot(1.6, 0.8)  # cos(q, gloves centroid)
    expected = [
        0.0 + 0.5 * gloves,
        0.8 + 0.5 * gloves,
        1.0 + 0.5 * 1.0,
        0.6 + 0.0,
    ]  # no prior without a category
    assert dense.scores("q") == pytest.approx(expected)
    idx, scores = dense.search("q", 2)
    assert idx.tolist() == [2, 1]
    assert scores.tolist() == pytest.approx([1.5, expected[1]])
    mask = np.array([True, False, False, True])
    assert dense.search("q", 5, mask)[0].tolist() == [3, 0]


def test_dense_match_keeps_its_depth_and_caches_query_vectors() -> None:
    encoder = FakeEncoder({"q": [1.0, 0.0]})
    dense = DenseSearch(encoder, ITEMS, LEAVES, depth=2)
    assert dense.match("q")[0].size == 2
    dense.match("  Q ")  # normalised to the same key
    assert encoder.calls == ["q"]


def test_dense_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="do not match"):
        DenseSearch(FakeEncoder({}), ITEMS, LEAVES[:3])
    with pytest.raises(ValueError, match="depth"):
        DenseSearch(FakeEncoder({}), ITEMS, LEAVES, depth=0)


def _catalog() -> CatalogIndex:
    rows = {
        "a": {"title": "nitrile gloves", "categories": ["Safety", "Gloves"]},
        "b": {"title": "latex exam gloves", "categories": ["Safety", "Gloves"]},
        "c": {"title": "gaffer tape", "categories": ["Tapes", "Tape"]},
        "d": {"title": "caliper"},
    }
    return CatalogIndex.build(list(rows), rows)


def _hybrid(query_vectors: dict[str, list[float]], **kw: float) -> HybridSearch:
    cat = _catalog()
    dense = DenseSearch(FakeEncoder(query_vectors), ITEMS, LEAVES, category_weight=0.0)
    return HybridSearch(Bm25Search.build(cat), dense, **kw)  # type: ignore[arg-type]


def test_hybrid_fuses_normalised_scores_by_hand() -> None:
    hybrid = _hybrid({"tape": [1.0, 0.0]}, semantic_weight=0.5, feedback_weight=0.0)
    hits = hybrid.hits("tape")
    # BM25 matches only c (normalised 1.0). Semantic cosines: a 1.0, b 0.6, c 0.0, d 0.8 -> min-max over the
    # candidates {a, b, c, d}: 1.0, 0.6, 0.0, 0.8.  Fused 0.5 * lexical + 0.5 * semantic:
    assert hits.items.tolist() == [0, 2, 3, 1]
    assert hits.scores.tolist() == pytest.approx([0.5, 0.5, 0.4, 0.3])
    assert hits.channels == [("semantic",), ("bm25", "semantic"), ("semantic",), ("semantic",)]
    assert hybrid.search("tape", 2)[0].tolist() == [0, 2]
    assert hybrid.search("tape", 5, np.array([False, True, True, False]))[0].tolist() == [2, 1]


def test_feedback_vector_is_rocchio_with_a_rank_discount_by_hand() -> None:
    dense = DenseSearch(FakeEncoder({}), ITEMS, LEAVES)
    q = np.array([1.0, 0.0], dtype=np.float32)
    # Items 0 and 2 weighted 1 and 1/log2(3): mean (1 * [1, 0] + 0.6309 * [0, 1]) / 1.6309 = [0.6131, 0.3869];
    # q + 1.0 * mean = [1.6131, 0.3869], norm 1.6589.
    expanded = dense.feedback_vector(q, np.array([0, 2]), 1.0)
    assert expanded.tolist() == pytest.approx([0.97240, 0.23323], abs=1e-4)
    assert dense.feedback_vector(q, np.array([0, 2]), 0.0) is q
    assert dense.feedback_vector(q, np.array([], dtype=np.int64), 1.0) is q


def test_hybrid_scores_the_semantic_channel_again_with_the_feedback_vector_by_hand() -> None:
    hybrid = _hybrid({"tape": [1.0, 0.0]}, semantic_weight=0.5, feedback_items=2, feedback_weight=1.0)
    hits = hybrid.hits("tape")
    # First ranking a, c, d, b (the test above): feedback from a and c gives q' = [0.9724, 0.2332]
    # (test above). Cosines a 0.9724, b 0.7700, c 0.2332, d 0.9179 -> min-max 1.0, 0.7262, 0.0, 0.9262;
    # fused 0.5 * lexical (c: 1) + 0.5 * semantic:
    assert hits.items.tolist() == [0, 2, 3, 1]
    assert hits.scores.tolist() == pytest.approx([0.5, 0.5, 0.4631, 0.3631], abs=1e-4)
    with pytest.raises(ValueError, match="feedback"):
        _hybrid({}, feedback_items=0)


def test_long_queries_lean_on_the_semantic_channel() -> None:
    hybrid = _hybrid({}, semantic_weight=0.6, long_query_weight=0.9, long_query_words=3)
    assert hybrid.weight_for("duct tape") == 0.6
    assert hybrid.weight_for("tape to hold down cables") == 0.9
    with pytest.raises(ValueError, match="long_query_weight"):
        _hybrid({}, long_query_weight=1.5)


def test_hits_of_a_lexical_index_name_its_channel() -> None:
    hits = hits_of(Bm25Search.build(_catalog()), "gloves")
    assert set(hits.items.tolist()) == {0, 1}
    assert hits.channels == [("bm25",), ("bm25",)]


def test_item_text_joins_title_brand_and_the_two_deepest_categories() -> None:
    assert item_text("Nitrile Gloves", "Dynarex", ("Industrial", "Safety", "Gloves")) == (
        "Nitrile Gloves. Dynarex. Safety > Gloves"
    )
    assert item_text("Caliper", "", ()) == "Caliper"
    assert item_text("", " ", ("Tape",)) == "Tape"
