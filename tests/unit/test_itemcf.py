from __future__ import annotations

import math

import numpy as np
import pytest

from shoprec.recall.itemcf import ItemCFNeighbours, fit_itemcf


def seqs(*rows: list[int]) -> list[np.ndarray]:
    return [np.array(r, dtype=np.int64) for r in rows]


# Hand example: sequences [0, 1, 2] and [0, 1]; counts n0=2, n1=2, n2=1, n3=0.
# Pairs (a before b, distance d): (0,1,1) twice, (1,2,1), (0,2,2).  With w(d) = 1/d, backward 0.5:
#   C[0,1] = 2      C[1,0] = 1      C[1,2] = 1      C[2,1] = 0.5    C[0,2] = 0.5    C[2,0] = 0.25
# sim = C / sqrt(n_a n_b)  (alpha 0.5)
HAND = {"alpha": 0.5, "backward_weight": 0.5, "distance_power": 1.0}
R2 = math.sqrt(2.0)


def test_hand_computed_neighbours() -> None:
    nb = fit_itemcf(seqs([0, 1, 2], [0, 1]), 4, k=2, **HAND)
    assert nb.indices.dtype == np.int32
    assert nb.scores.dtype == np.float32
    np.testing.assert_array_equal(nb.indices, [[1, 2], [2, 0], [1, 0], [-1, -1]])
    expected = [[2 / 2, 0.5 / R2], [1 / R2, 1 / 2], [0.5 / R2, 0.25 / R2], [0, 0]]
    np.testing.assert_allclose(nb.scores, expected, rtol=1e-6)


def test_padding_and_truncation() -> None:
    wide = fit_itemcf(seqs([0, 1, 2], [0, 1]), 4, k=4, **HAND)
    assert wide.indices.shape == (4, 4)
    np.testing.assert_array_equal(wide.indices[:, 2:], -1)
    np.testing.assert_array_equal(wide.scores[:, 2:], 0)
    narrow = fit_itemcf(seqs([0, 1, 2], [0, 1]), 4, k=1, **HAND)
    np.testing.assert_array_equal(narrow.indices[:, 0], [1, 2, 1, -1])
    np.testing.assert_array_equal(narrow.scores[:, 0], wide.scores[:, 0])


def test_alpha_one_is_conditional_probability() -> None:
    nb = fit_itemcf(seqs([0, 1, 2], [0, 1]), 3, k=2, alpha=1.0, backward_weight=0.0, distance_power=0.0)
    # Forward co-occurrence only, flat weights: C[0,1] = 2, C[0,2] = 1, C[1,2] = 1; divide by n_a.
    np.testing.assert_array_equal(nb.indices, [[1, 2], [2, -1], [-1, -1]])
    np.testing.assert_allclose(nb.scores, [[1.0, 0.5], [0.5, 0], [0, 0]])


def test_ties_broken_by_smaller_index() -> None:
    nb = fit_itemcf(seqs([0, 3], [0, 1], [0, 2]), 4, k=3, backward_weight=0.0)
    np.testing.assert_array_equal(nb.indices[0], [1, 2, 3])
    assert nb.scores[0, 0] == nb.scores[0, 1] == nb.scores[0, 2] > 0


def test_window_limits_pair_distance() -> None:
    nb = fit_itemcf(seqs([0, 1, 2]), 3, k=2, window=1, **HAND)
    np.testing.assert_array_equal(nb.indices[0], [1, -1])  # (0, 2) are 2 apart
    full = fit_itemcf(seqs([0, 1, 2]), 3, k=2, **HAND)
    np.testing.assert_array_equal(full.indices[0], [1, 2])


def test_repeats_are_not_self_neighbours() -> None:
    nb = fit_itemcf(seqs([0, 0, 1]), 2, k=2, **HAND)
    assert 0 not in nb.indices[0]
    assert 1 not in nb.indices[1]
    # C[0,1] = 1/2 + 1/1 (both occurrences of 0 precede 1); n0 = 2, n1 = 1.
    np.testing.assert_allclose(nb.scores[0, 0], 1.5 / R2, rtol=1e-6)


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        fit_itemcf(seqs([0, 5]), 3)
    with pytest.raises(ValueError, match="k must"):
        fit_itemcf(seqs([0, 1]), 3, k=0)


def test_empty_input() -> None:
    nb = fit_itemcf([], 3, k=2)
    np.testing.assert_array_equal(nb.indices, -1)


def test_similar() -> None:
    nb = fit_itemcf(seqs([0, 1, 2], [0, 1]), 4, k=3, **HAND)
    idx, sc = nb.similar(0)
    np.testing.assert_array_equal(idx, [1, 2])
    np.testing.assert_allclose(sc, [1.0, 0.5 / R2], rtol=1e-6)
    idx1, _ = nb.similar(0, 1)
    np.testing.assert_array_equal(idx1, [1])
    assert nb.similar(3)[0].size == 0
    with pytest.raises(IndexError):
        nb.similar(4)


def test_table_validation() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ItemCFNeighbours(np.zeros((2, 2), np.int32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="int32"):
        ItemCFNeighbours(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="must lie in"):
        ItemCFNeighbours(np.full((2, 2), 2, np.int32), np.zeros((2, 2), np.float32))


def brute_force(
    nb: ItemCFNeighbours, histories: list[np.ndarray], n_items: int, H: int, decay: float
) -> np.ndarray:
    out = np.zeros((len(histories), n_items))
    for b, h in enumerate(histories):
        items = [int(x) for x in h if x >= 0][-H:]
        for age, item in enumerate(reversed(items)):
            for j, s in zip(nb.indices[item], nb.scores[item], strict=True):
                if j >= 0:
                    out[b, j] += decay**age * s
    return out


@pytest.mark.parametrize(("H", "decay"), [(20, 0.7), (3, 0.5), (1, 1.0)])
def test_score_histories_matches_brute_force(H: int, decay: float) -> None:
    rng = np.random.default_rng(7)
    n = 40
    train = [rng.integers(0, n, size=rng.integers(2, 15)) for _ in range(120)]
    nb = fit_itemcf(train, n, k=6)
    histories = [rng.integers(0, n, size=rng.integers(0, 30)) for _ in range(25)]
    histories.append(np.array([-1, -1, 3, 4]))  # left padding
    histories.append(np.array([], dtype=np.int64))
    got = nb.score_histories(histories, n, max_history=H, decay=decay)
    assert got.dtype == np.float32
    assert got.shape == (len(histories), n)
    np.testing.assert_allclose(got, brute_force(nb, histories, n, H, decay), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[-1], 0)


def test_score_histories_hand_example() -> None:
    nb = fit_itemcf(seqs([0, 1, 2], [0, 1]), 4, k=2, **HAND)
    got = nb.score_histories([np.array([0, 1])], decay=0.5)
    # age 0: item 1 -> {2: 1/sqrt2, 0: 0.5}; age 1 (x0.5): item 0 -> {1: 1.0, 2: 0.5/sqrt2}
    np.testing.assert_allclose(got[0], [0.5, 0.5, 1 / R2 + 0.25 / R2, 0], rtol=1e-6)


def test_score_histories_wider_output_and_range_check() -> None:
    nb = fit_itemcf(seqs([0, 1, 2], [0, 1]), 3, k=2)
    assert nb.score_histories([np.array([0])], 5).shape == (1, 5)
    with pytest.raises(ValueError, match="smaller"):
        nb.score_histories([np.array([0])], 2)
    with pytest.raises(ValueError, match="out of range"):
        nb.score_histories([np.array([3])])
