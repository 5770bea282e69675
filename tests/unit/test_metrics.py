"""Ranking metrics against hand-computed values, edge cases, validation and a few properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shoprec.evaluation.metrics import (
    auc_from_ranks,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    hits_from_ranks,
    mrr,
    mrr_from_ranks,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

LOG2_3 = math.log2(3)  # discount of position 1 (0-based): 1 / log2(1 + 2)

# Two users, one relevant item each; user 0's is ranked at position 1, user 1's is not in the list.
HITS = np.array([[0, 1, 0], [0, 0, 0]], dtype=bool)
ONE_EACH = np.array([1, 1])


class TestSingleRelevant:
    def test_hit_rate(self) -> None:
        # k=1: nobody has a hit in position 0 -> 0. k=2: user 0 hits at position 1 -> 1/2. k=3: same.
        assert hit_rate_at_k(HITS, 1) == 0.0
        assert hit_rate_at_k(HITS, 2) == 0.5
        assert hit_rate_at_k(HITS, 3) == 0.5

    def test_ndcg(self) -> None:
        # user 0: DCG@2 = 1/log2(3) = 0.6309, IDCG = 1 (one relevant) -> 0.6309; user 1: 0.
        # mean = 0.5 * 0.6309 = 0.3155
        assert ndcg_at_k(HITS, ONE_EACH, 2) == pytest.approx(0.5 / LOG2_3)
        assert ndcg_at_k(HITS, ONE_EACH, 2) == pytest.approx(0.3155, abs=1e-4)
        assert ndcg_at_k(HITS, ONE_EACH, 1) == 0.0

    def test_mrr(self) -> None:
        # user 0: first hit at position 1 -> 1/2; user 1: no hit -> 0. mean = 0.25
        assert mrr(HITS) == 0.25

    def test_precision(self) -> None:
        # P@2: user 0 has 1 hit in 2 -> 0.5, user 1 -> 0; mean 0.25. P@3: (1/3 + 0) / 2 = 1/6.
        assert precision_at_k(HITS, 2) == 0.25
        assert precision_at_k(HITS, 3) == pytest.approx(1 / 6)

    def test_recall(self) -> None:
        # R@2: user 0 found 1 of 1 -> 1, user 1 -> 0; mean 0.5. R@1: 0.
        assert recall_at_k(HITS, ONE_EACH, 2) == 0.5
        assert recall_at_k(HITS, ONE_EACH, 1) == 0.0

    def test_f1(self) -> None:
        # F1@2: user 0 P=1/2, R=1 -> 2*(1/2)*1/(3/2) = 2/3; user 1 P=R=0 -> 0. mean = 1/3.
        assert f1_at_k(HITS, ONE_EACH, 2) == pytest.approx(1 / 3)
        # F1@1: P=R=0 for both -> 0 (no division by zero).
        assert f1_at_k(HITS, ONE_EACH, 1) == 0.0


class TestMultiRelevant:
    # One user with 3 relevant items, 2 of which appear at positions 0 and 2.
    H = np.array([[1, 0, 1, 0]], dtype=bool)
    N = np.array([3])

    def test_precision_recall_f1(self) -> None:
        # P@4 = 2/4, R@4 = 2/3, F1 = 2 * (1/2)(2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7
        assert precision_at_k(self.H, 4) == 0.5
        assert recall_at_k(self.H, self.N, 4) == pytest.approx(2 / 3)
        assert f1_at_k(self.H, self.N, 4) == pytest.approx(4 / 7)

    def test_ndcg_ideal_uses_min_of_relevant_and_k(self) -> None:
        # @4: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/log2(4) (3 relevant) = 2.1309
        assert ndcg_at_k(self.H, self.N, 4) == pytest.approx(1.5 / (1.5 + 1 / LOG2_3))
        # @2: DCG = 1; IDCG from min(3, 2) = 2 items = 1 + 1/log2(3) = 1.6309 -> 0.6131
        assert ndcg_at_k(self.H, self.N, 2) == pytest.approx(1 / (1 + 1 / LOG2_3))

    def test_ndcg_fewer_relevant_than_k(self) -> None:
        # one relevant item at position 2: DCG = 1/log2(4) = 0.5, IDCG = 1 -> 0.5
        assert ndcg_at_k(np.array([[0, 0, 1]], dtype=bool), [1], 3) == 0.5

    def test_mrr_is_first_hit(self) -> None:
        assert mrr(self.H) == 1.0
        assert mrr(np.array([[0, 0, 1, 1]], dtype=bool)) == pytest.approx(1 / 3)

    def test_user_without_relevant_items_scores_zero(self) -> None:
        h = np.array([[0, 0], [1, 0]], dtype=bool)
        n = np.array([0, 1])
        # user 0 has nothing to find: recall, NDCG and F1 are 0 for it, 1 for user 1 -> means 0.5
        assert recall_at_k(h, n, 2) == 0.5
        assert ndcg_at_k(h, n, 2) == 0.5
        # user 1: P@2 = 1/2, R = 1 -> F1 = 2/3; user 0: 0 -> mean 1/3
        assert f1_at_k(h, n, 2) == pytest.approx(1 / 3)

    def test_integer_hits_accepted(self) -> None:
        assert hit_rate_at_k(np.array([[0, 1]]), 2) == 1.0


class TestRanksForm:
    def test_hits_from_ranks(self) -> None:
        expected = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
        np.testing.assert_array_equal(hits_from_ranks([0, 2, 5], 3), expected)
        assert hits_from_ranks([0, 2, 5], 3).dtype == np.bool_

    def test_mrr_from_ranks_is_not_truncated(self) -> None:
        # (1/1 + 1/2 + 1/4) / 3 = 0.58333; rank 99 still counts 1/100
        assert mrr_from_ranks([0, 1, 3]) == pytest.approx(1.75 / 3)
        assert mrr_from_ranks([99]) == pytest.approx(0.01)

    def test_auc_scalar_candidates(self) -> None:
        # 5 candidates -> 4 negatives. rank 0 -> 4/4, rank 4 -> 0/4, rank 2 -> 2/4. mean = 0.5
        assert auc_from_ranks([0, 4, 2], 5) == 0.5

    def test_auc_per_user_candidates(self) -> None:
        # user 0: a single candidate (no negatives) -> 1.0; user 1: 3 candidates, rank 1 -> 1/2. mean 0.75
        assert auc_from_ranks([0, 1], [1, 3]) == 0.75

    def test_coverage(self) -> None:
        top = np.array([[0, 1], [1, 2], [-1, -1]])  # the third user has no rankable items (padding)
        # top-2 union {0, 1, 2} of 10 items -> 0.3; top-1 union {0, 1} -> 0.2
        assert coverage_at_k(top, 10, 2) == pytest.approx(0.3)
        assert coverage_at_k(top, 10, 1) == pytest.approx(0.2)

    def test_ranks_consistent_with_hits(self) -> None:
        ranks = np.array([0, 3, 7, 1, 20])
        hits = hits_from_ranks(ranks, 10)
        assert hit_rate_at_k(hits, 5) == 0.6
        # within the first 10 positions MRR over hits equals MRR over ranks minus the user at 20
        assert mrr(hits) == pytest.approx(mrr_from_ranks(ranks) - 1 / 21 / 5)


class TestEmptyAndEdges:
    def test_no_users_gives_zero(self) -> None:
        empty = np.zeros((0, 3), dtype=bool)
        none = np.zeros(0, dtype=np.int64)
        assert hit_rate_at_k(empty, 3) == 0.0
        assert ndcg_at_k(empty, none, 3) == 0.0
        assert precision_at_k(empty, 1) == 0.0
        assert recall_at_k(empty, none, 2) == 0.0
        assert f1_at_k(empty, none, 2) == 0.0
        assert mrr(empty) == 0.0
        assert mrr_from_ranks(none) == 0.0
        assert auc_from_ranks(none, 5) == 0.0
        assert coverage_at_k(np.zeros((0, 3), dtype=np.int64), 5, 3) == 0.0
        assert hits_from_ranks(none, 4).shape == (0, 4)

    def test_k_equal_to_list_length(self) -> None:
        assert hit_rate_at_k(HITS, HITS.shape[1]) == 0.5

    @pytest.mark.parametrize("k", [0, -1, 4])
    def test_bad_k(self, k: int) -> None:
        with pytest.raises(ValueError, match="k"):
            hit_rate_at_k(HITS, k)
        with pytest.raises(ValueError, match="k"):
            ndcg_at_k(HITS, ONE_EACH, k)

    def test_non_int_k(self) -> None:
        with pytest.raises(ValueError, match="k must be an int"):
            precision_at_k(HITS, 1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be an int"):
            precision_at_k(HITS, True)


class TestValidation:
    def test_hits_must_be_2d(self) -> None:
        with pytest.raises(ValueError, match="hits"):
            hit_rate_at_k(np.array([True, False]), 1)

    def test_hits_must_be_boolean(self) -> None:
        with pytest.raises(ValueError, match="hits"):
            hit_rate_at_k(np.array([[0, 2]]), 1)
        with pytest.raises(ValueError, match="hits"):
            hit_rate_at_k(np.array([[0.5, 1.0]]), 1)

    def test_n_relevant_shape(self) -> None:
        with pytest.raises(ValueError, match="n_relevant"):
            recall_at_k(HITS, [1, 1, 1], 2)
        with pytest.raises(ValueError, match="n_relevant"):
            ndcg_at_k(HITS, [[1, 1]], 2)

    def test_n_relevant_negative(self) -> None:
        with pytest.raises(ValueError, match="n_relevant"):
            recall_at_k(HITS, [-1, 1], 2)

    def test_n_relevant_below_hit_count(self) -> None:
        with pytest.raises(ValueError, match=r"n_relevant\[0\]"):
            ndcg_at_k(np.array([[1, 1]], dtype=bool), [1], 2)

    def test_ranks(self) -> None:
        with pytest.raises(ValueError, match="ranks"):
            mrr_from_ranks([0, -1])
        with pytest.raises(ValueError, match="ranks"):
            hits_from_ranks([[0]], 2)
        with pytest.raises(ValueError, match="k_max"):
            hits_from_ranks([0], 0)

    def test_auc_arguments(self) -> None:
        with pytest.raises(ValueError, match="ranks"):
            auc_from_ranks([5], 5)
        with pytest.raises(ValueError, match="n_candidates"):
            auc_from_ranks([0], 0)
        with pytest.raises(ValueError, match="n_candidates"):
            auc_from_ranks([0, 1], [3])
        with pytest.raises(ValueError, match="n_candidates"):
            auc_from_ranks([0], 2.5)

    def test_coverage_arguments(self) -> None:
        with pytest.raises(ValueError, match="topk_items"):
            coverage_at_k(np.array([[0, 9]]), 5, 2)
        with pytest.raises(ValueError, match="topk_items"):
            coverage_at_k(np.array([0, 1]), 5, 1)
        with pytest.raises(ValueError, match="n_items"):
            coverage_at_k(np.array([[0]]), 0, 1)
        with pytest.raises(ValueError, match="k"):
            coverage_at_k(np.array([[0]]), 5, 2)


# ------------------------------------------------------------------------------------------------ properties


@st.composite
def relevance(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    u = draw(st.integers(1, 12))
    k_max = draw(st.integers(1, 8))
    hits = draw(hnp.arrays(np.bool_, (u, k_max)))
    extra = draw(hnp.arrays(np.int64, (u,), elements=st.integers(0, 4)))
    return hits, hits.sum(axis=1) + extra


def _ndcg_reference(hits: np.ndarray, n_rel: np.ndarray, k: int) -> float:
    values = []
    for row, n in zip(hits, n_rel, strict=True):
        dcg = sum(1 / math.log2(i + 2) for i in range(k) if row[i])
        idcg = sum(1 / math.log2(i + 2) for i in range(min(int(n), k)))
        values.append(dcg / idcg if idcg else 0.0)
    return sum(values) / len(values)


@settings(max_examples=60, deadline=None)
@given(relevance())
def test_metrics_bounded_and_ordered(case: tuple[np.ndarray, np.ndarray]) -> None:
    hits, n_rel = case
    previous_hr = 0.0
    for k in range(1, hits.shape[1] + 1):
        hr = hit_rate_at_k(hits, k)
        nd = ndcg_at_k(hits, n_rel, k)
        values = [hr, nd, precision_at_k(hits, k), recall_at_k(hits, n_rel, k), f1_at_k(hits, n_rel, k)]
        assert all(0.0 <= v <= 1.0 + 1e-12 for v in values)
        assert hr >= previous_hr  # HR@k is monotone in k
        assert nd <= hr + 1e-12  # NDCG never exceeds HR
        assert nd == pytest.approx(_ndcg_reference(hits, n_rel, k))
        previous_hr = hr
    assert 0.0 <= mrr(hits) <= hit_rate_at_k(hits, hits.shape[1])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 20), elements=st.integers(0, 30)), st.integers(1, 10))
def test_ranks_and_hits_agree(ranks: np.ndarray, k: int) -> None:
    hits = hits_from_ranks(ranks, k)
    assert hit_rate_at_k(hits, k) == pytest.approx(float(np.mean(ranks < k)))
    assert mrr(hits) == pytest.approx(float(np.mean(np.where(ranks < k, 1 / (ranks + 1), 0.0))))
    assert 0.0 <= auc_from_ranks(ranks, 31) <= 1.0
