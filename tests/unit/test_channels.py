from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.fakes import itemcf_of, make_bundle, make_catalog

from shoprec.recall.channels import (
    EmbeddingChannel,
    ExactDotProductIndex,
    ItemCFChannel,
    PopularityChannel,
    RecallContext,
    top_n,
)

BUNDLE = make_bundle()
CATALOG = make_catalog(BUNDLE)
ITEMCF = itemcf_of(BUNDLE)


def ctx(*recent: int, exclude: tuple[int, ...] = (), allowed: np.ndarray | None = None) -> RecallContext:
    return RecallContext(
        recent=np.asarray(recent, dtype=np.int64),
        exclude=np.asarray(exclude, dtype=np.int64),
        allowed=allowed,
    )


# --- top_n ------------------------------------------------------------------------------------------


def test_top_n_orders_by_score_then_smaller_index() -> None:
    scores = np.array([1.0, 3.0, 3.0, 0.5, 3.0], dtype=np.float32)
    assert top_n(scores, 3).tolist() == [1, 2, 4]
    assert top_n(scores, 2, np.array([True, False, True, True, True])).tolist() == [2, 4]
    assert top_n(scores, 0).tolist() == []
    assert top_n(scores, 10).tolist() == [1, 2, 4, 0, 3]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=0, max_size=40),
    st.integers(0, 45),
    st.integers(0, 2**32 - 1),
)
def test_top_n_equals_a_full_sort(values: list[int], n: int, seed: int) -> None:
    scores = np.asarray(values, dtype=np.float32)
    mask = np.random.default_rng(seed).random(scores.size) < 0.7
    expected = sorted(np.flatnonzero(mask).tolist(), key=lambda i: (-scores[i], i))[:n]
    assert top_n(scores, n, mask).tolist() == expected


# --- item-CF ----------------------------------------------------------------------------------------


def test_itemcf_returns_neighbours_of_recent_items_with_score_histories_scores() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG)
    got = channel.recall(ctx(0), 10)
    expected = ITEMCF.score_histories([np.array([0])], 12)[0]
    assert got.items.tolist() == [1, 9, 2, 10]
    assert got.scores.tolist() == pytest.approx(expected[got.items].tolist())
    np.testing.assert_allclose(channel.signal(ctx(0), got.items), got.scores)
    assert channel.reasons(ctx(0), got.items[:1]) == ["because you viewed Digital Caliper 6 inch"]


def test_itemcf_reason_names_the_most_contributing_recent_item() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG)
    assert channel.reasons(ctx(0, 5), np.array([6, 1])) == [
        "because you viewed PLA Filament Black",  # neighbour of p5 only
        "because you viewed Digital Caliper 6 inch",  # neighbour of p0 only
    ]


def test_itemcf_proximity_is_the_similarity_to_the_last_item_and_the_age_of_the_closest_source() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG)
    sims0 = dict(zip(*(a.tolist() for a in ITEMCF.similar(0)), strict=True))
    sims5 = dict(zip(*(a.tolist() for a in ITEMCF.similar(5)), strict=True))
    last, age = channel.proximity(np.array([0, 5]), np.array([6, 1, 3]))
    # p6 neighbours p5 (the newest item): age 0; p1 neighbours p0 only: age 1; p3 neither: max_history
    assert last.tolist() == pytest.approx([sims5.get(6, 0.0), sims5.get(1, 0.0), 0.0])
    assert age.tolist() == [0.0, 1.0, 20.0]
    assert sims0[1] > 0


def test_itemcf_attribution_prefers_the_most_recent_item_on_ties() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG, decay=1.0)
    # p2 and p3 both list p4 with a positive similarity; with no decay the larger similarity wins,
    # and the same item twice counts twice.
    sims = {int(j): float(s) for j, s in zip(*ITEMCF.similar(2), strict=True)}
    sims3 = {int(j): float(s) for j, s in zip(*ITEMCF.similar(3), strict=True)}
    expected = 2 if sims[4] > sims3[4] else 3
    assert channel.attribute(np.array([2, 3]), np.array([4])).tolist() == [expected]
    assert channel.attribute(np.array([0, 0]), np.array([1])).tolist() == [0]


def test_itemcf_honours_exclusions_and_the_allowed_mask() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG)
    allowed = CATALOG.mask_for(category="Lab")
    got = channel.recall(ctx(0, 2, exclude=(0, 2), allowed=allowed), 10)
    assert sorted(got.items.tolist()) == [3, 4]  # p1, p9, p10 are neighbours too, but not lab items


def test_itemcf_without_history_or_budget_returns_nothing() -> None:
    channel = ItemCFChannel(ITEMCF, CATALOG)
    assert len(channel.recall(ctx(), 10)) == 0
    assert len(channel.recall(ctx(0), 0)) == 0
    assert len(channel.recall(ctx(11), 10)) == 0  # p11 has no neighbours
    assert channel.signal(ctx(), np.array([1, 2])).tolist() == [0.0, 0.0]


# --- embeddings -------------------------------------------------------------------------------------


def test_embedding_query_is_a_recency_weighted_mean_of_the_last_items() -> None:
    channel = EmbeddingChannel(BUNDLE.item_embeddings, CATALOG, last=2, decay=0.5)
    emb = BUNDLE.item_embeddings
    vec = channel.query_vector(np.array([7, 0, 5]))
    np.testing.assert_allclose(vec, (0.5 * emb[0] + 1.0 * emb[5]) / 1.5, rtol=1e-6)


def test_embedding_channel_ranks_by_dot_product_and_excludes_seen() -> None:
    channel = EmbeddingChannel(BUNDLE.item_embeddings, CATALOG)
    got = channel.recall(ctx(5, 6, exclude=(5, 6)), 3)
    query = channel.query_vector(np.array([5, 6]))
    dots = BUNDLE.item_embeddings @ query
    np.testing.assert_allclose(channel.signal(ctx(5, 6), got.items), dots[got.items], rtol=1e-6)
    dots[[5, 6]] = -np.inf
    assert got.items.tolist() == np.argsort(-dots)[:3].tolist()
    assert got.items[0] in (7, 8)  # the other filaments are closest
    assert channel.reasons(ctx(5, 6), got.items) == ["similar to items you viewed"] * 3


def test_exact_index_respects_exclude_and_allowed() -> None:
    index = ExactDotProductIndex(np.eye(4, dtype=np.float32))
    idx, scores = index.search(np.array([0.1, 0.4, 0.3, 0.2]), 2)
    assert idx.tolist() == [1, 2]
    assert scores.tolist() == pytest.approx([0.4, 0.3])
    idx, _ = index.search(np.array([0.1, 0.4, 0.3, 0.2]), 2, np.array([1]))
    assert idx.tolist() == [2, 3]
    idx, _ = index.search(np.array([0.1, 0.4, 0.3, 0.2]), 5, allowed=np.array([True, False, False, True]))
    assert idx.tolist() == [3, 0]


# --- popularity -------------------------------------------------------------------------------------


def test_popularity_orders_by_count_then_index_with_category_reasons() -> None:
    channel = PopularityChannel(BUNDLE.popularity, CATALOG)
    got = channel.recall(ctx(), 4)
    pop = BUNDLE.popularity
    expected = sorted(range(12), key=lambda i: (-pop[i], i))[:4]
    assert got.items.tolist() == expected
    assert channel.reasons(ctx(), got.items[:1]) == [f"popular in {CATALOG.leaf_category(expected[0])}"]
    assert channel.reason_of[11] == "popular now"
    np.testing.assert_allclose(channel.signal(ctx(), got.items), np.log1p(pop[got.items]))
    assert channel.percentile[expected[0]] == 1.0
    assert channel.percentile.min() == 0.0


def test_popularity_respects_filters_and_exclusions() -> None:
    channel = PopularityChannel(BUNDLE.popularity, CATALOG)
    allowed = CATALOG.mask_for(category="Lab")
    got = channel.recall(ctx(exclude=(2,), allowed=allowed), 10)
    assert sorted(got.items.tolist()) == [3, 4]


def test_popularity_rejects_a_vector_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="shape"):
        PopularityChannel(np.ones(3), CATALOG)


# --- content channel ----------------------------------------------------------------------------------


def _text_vectors() -> np.ndarray:
    """Unit vectors: items 0-2 near axis x (item 0 exactly on it), items 3-5 near y, the rest on z; the
    last item has no text (a zero row)."""
    n = CATALOG.n_items
    v = np.zeros((n, 3), dtype=np.float32)
    v[:, 2] = 1.0
    v[0] = [1.0, 0.0, 0.0]
    v[1] = [0.9, 0.1, 0.0]
    v[2] = [0.8, 0.2, 0.0]
    v[3] = [0.0, 1.0, 0.0]
    v[4] = [0.1, 0.9, 0.0]
    v[5] = [0.2, 0.8, 0.0]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[n - 1] = 0.0
    return v


def test_content_channel_recalls_the_texts_closest_to_the_recent_ones() -> None:
    from shoprec.recall.channels import ContentChannel

    vectors = _text_vectors()
    ch = ContentChannel(vectors, CATALOG, last=2, decay=0.5)
    got = ch.recall(ctx(3, 0, exclude=(3, 0)), 3)
    # query = normalised(0.5 * v3 + 1.0 * v0) = (0.894, 0.447, 0): cos 0.975 (item 2), 0.937 (1), 0.65 (5).
    query = 0.5 * vectors[3] + vectors[0]
    query /= np.linalg.norm(query)
    expected = np.argsort(-(vectors @ query), kind="stable")
    expected = [i for i in expected.tolist() if i not in (0, 3)][:3]
    assert got.items.tolist() == expected == [2, 1, 5]
    assert got.scores == pytest.approx((vectors @ query)[expected])
    assert ch.signal(ctx(3, 0), np.array([1, 4])) == pytest.approx((vectors @ query)[[1, 4]])
    reasons = ch.reasons(ctx(3, 0), np.array([1, 4]))
    assert reasons == [
        f"like {CATALOG.short_title(0)} that you viewed",
        f"like {CATALOG.short_title(3)} that you viewed",
    ]


def test_content_channel_similar_and_without_text() -> None:
    from shoprec.recall.channels import ContentChannel

    ch = ContentChannel(_text_vectors(), CATALOG)
    assert ch.similar(0, 2)[0].tolist() == [1, 2]
    assert ch.similar(0, 2, np.array([1]))[0].tolist() == [2, 5]  # cos 0.97, then 0.24 (item 4: 0.11)
    assert ch.similar(CATALOG.n_items - 1, 3)[0].size == 0  # an item without text has no text neighbours
    empty = ContentChannel(None, CATALOG)
    assert not empty.available
    assert len(empty.recall(ctx(0, 1), 5)) == 0
    assert empty.signal(ctx(0, 1), np.array([2, 3])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="text embeddings have shape"):
        ContentChannel(np.zeros((2, 3), np.float32), CATALOG)
