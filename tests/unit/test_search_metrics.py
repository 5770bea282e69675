"""Search metrics (shoprec.evaluation.search_metrics) on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoprec.evaluation.search_metrics import (
    dcg_at_k,
    grades_of,
    mean,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)


def test_grades_of_gives_unjudged_items_grade_zero() -> None:
    assert grades_of(["a", "x", "b"], {"a": 3, "b": 1, "c": 2}).tolist() == [3.0, 0.0, 1.0]
    assert grades_of([], {"a": 3}).size == 0


def test_dcg_uses_linear_gains_and_log2_discount() -> None:
    # 3/log2(2) + 0/log2(3) + 2/log2(4) = 3 + 0 + 1
    assert dcg_at_k([3, 0, 2], 3) == pytest.approx(4.0)
    assert dcg_at_k([3, 0, 2], 1) == pytest.approx(3.0)
    assert dcg_at_k([3, 0, 2], 10) == pytest.approx(4.0)  # k beyond the list: the list's length
    assert dcg_at_k([], 5) == 0.0


def test_ndcg_against_the_ideal_order_of_the_judged_grades() -> None:
    # DCG@3 = 4 (above); ideal [3, 2, 2, 1, 0] -> IDCG@3 = 3 + 2/log2(3) + 2/2 = 5.26186
    expected = 4.0 / (3.0 + 2.0 / math.log2(3) + 1.0)
    assert ndcg_at_k([3, 0, 2], [2, 1, 3, 0, 2], 3) == pytest.approx(expected)
    assert expected == pytest.approx(0.760188, abs=1e-6)


def test_ndcg_of_the_ideal_list_is_one_and_of_nothing_relevant_zero() -> None:
    ideal = [1, 3, 0, 2]
    assert ndcg_at_k(sorted(ideal, reverse=True), ideal, 10) == pytest.approx(1.0)
    assert ndcg_at_k([0, 0, 0], ideal, 10) == 0.0
    assert ndcg_at_k([], ideal, 10) == 0.0
    assert ndcg_at_k([3, 2], [0, 0], 10) == 0.0  # no positive judgment: nothing to find


def test_ndcg_rewards_the_better_grade_first() -> None:
    # [2, 3]: 2 + 3/log2(3) = 3.8928; [3, 2]: 3 + 2/log2(3) = 4.2619; IDCG@2 = 4.2619
    assert ndcg_at_k([2, 3], [3, 2], 2) == pytest.approx((2 + 3 / math.log2(3)) / (3 + 2 / math.log2(3)))
    assert ndcg_at_k([2, 3], [3, 2], 2) < ndcg_at_k([3, 2], [3, 2], 2)


def test_recall_counts_grade_two_and_up_in_the_first_k() -> None:
    gains = [1, 2, 0, 3, 2]
    assert recall_at_k(gains, 4, 5) == pytest.approx(3 / 4)
    assert recall_at_k(gains, 4, 2) == pytest.approx(1 / 4)
    assert recall_at_k(gains, 4, 5, min_grade=1) == 1.0
    assert recall_at_k(gains, 0, 5, min_grade=4) == 0.0
    with pytest.raises(ValueError, match="n_relevant=2"):
        recall_at_k(gains, 2, 5)


def test_reciprocal_rank_of_the_first_relevant_item() -> None:
    assert reciprocal_rank([1, 0, 2, 3]) == pytest.approx(1 / 3)
    assert reciprocal_rank([1, 0, 2, 3], min_grade=1) == 1.0
    assert reciprocal_rank([3]) == 1.0
    assert reciprocal_rank([0, 1]) == 0.0
    assert reciprocal_rank([]) == 0.0


def test_mean_of_no_queries_is_zero() -> None:
    assert mean([]) == 0.0
    assert mean([1.0, 0.5, 0.0]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dcg_at_k([1, 2], 0), "k must be >= 1"),
        (lambda: dcg_at_k([1, 2], True), "k must be an int"),
        (lambda: dcg_at_k(np.zeros((2, 2)), 3), "gains must be a 1-D array"),
        (lambda: ndcg_at_k([1], [-1, 2], 3), "ideal must hold finite grades"),
        (lambda: reciprocal_rank([float("nan")]), "gains must hold finite grades"),
        (lambda: recall_at_k([1], -1, 3), "n_relevant must be >= 0"),
    ],
)
def test_invalid_arguments_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
