from __future__ import annotations

import numpy as np
import pytest

from shoprec.recall.popularity import PopularityRecall, fit_popularity


def test_fit_counts_occurrences() -> None:
    pop = fit_popularity([np.array([0, 1, 1]), np.array([2, 1]), np.array([], dtype=np.int64)], 5)
    assert pop.dtype == np.float32
    np.testing.assert_array_equal(pop, [1, 3, 1, 0, 0])


def test_fit_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        fit_popularity([np.array([0, 5])], 5)


def test_top_sorted_by_score_then_index() -> None:
    rec = PopularityRecall(np.array([1, 3, 1, 0, 3], dtype=np.float32))
    idx, sc = rec.top(4)
    np.testing.assert_array_equal(idx, [1, 4, 0, 2])
    np.testing.assert_array_equal(sc, [3, 3, 1, 1])
    assert sc.dtype == np.float32


def test_top_exclude_and_short_catalogue() -> None:
    rec = PopularityRecall(np.array([1, 3, 1, 0, 3], dtype=np.float32))
    idx, _ = rec.top(2, exclude={1, 0})
    np.testing.assert_array_equal(idx, [4, 2])
    idx, _ = rec.top(10, exclude={4})
    np.testing.assert_array_equal(idx, [1, 0, 2, 3])
    assert rec.top(0)[0].size == 0


def test_scores_rows_are_writable_copies() -> None:
    rec = PopularityRecall([2.0, 1.0])
    s = rec.scores(3)
    assert s.shape == (3, 2)
    assert s.dtype == np.float32
    s[0, 0] = -np.inf
    np.testing.assert_array_equal(rec.scores(1), [[2.0, 1.0]])
    np.testing.assert_array_equal(rec.score_histories([np.array([0]), np.array([1])]), [[2, 1], [2, 1]])


def test_rejects_bad_vectors() -> None:
    with pytest.raises(ValueError, match="1-D"):
        PopularityRecall(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        PopularityRecall([1.0, np.nan])
