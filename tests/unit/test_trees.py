"""The numpy tree ensemble that serves the stacking fusion: hand-made trees, contributions, validation."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.ranking.trees import TreeEnsemble


def stump_and_tree() -> TreeEnsemble:
    """Tree 0: x0 <= 0.5 ? 1.0 : 3.0 (root value 2.0).
    Tree 1: x1 <= 0 ? (x0 <= 2 ? -1 : 0) : 0.5 (root value 0.0, inner left value -0.5)."""
    nan = 0.0
    feature = np.array([[0, -1, -1, -1, -1], [1, 0, -1, -1, -1]], dtype=np.int32)
    threshold = np.array([[0.5, nan, nan, nan, nan], [0.0, 2.0, nan, nan, nan]])
    left = np.array([[1, 0, 0, 0, 0], [1, 3, 0, 0, 0]], dtype=np.int32)
    right = np.array([[2, 0, 0, 0, 0], [2, 4, 0, 0, 0]], dtype=np.int32)
    value = np.array([[2.0, 1.0, 3.0, 0.0, 0.0], [0.0, -0.5, 0.5, -1.0, 0.0]])
    return TreeEnsemble(feature, threshold, left, right, value, n_features=2)


def test_rows_follow_the_splits_to_their_leaves() -> None:
    trees = stump_and_tree()
    X = np.array([[0.0, -1.0], [0.5, 1.0], [3.0, -1.0], [1.0, 0.0]])
    # row 0: 1.0 + (-1.0); row 1: x0 <= 0.5 is a left turn: 1.0 + 0.5; row 2: 3.0 + 0.0; row 3: 3.0 + (-1.0)
    np.testing.assert_allclose(trees.predict(X), [0.0, 1.5, 3.0, 2.0])
    assert trees.depth == 2
    assert trees.bias == 2.0


def test_contributions_credit_each_split_feature_and_add_up_to_the_prediction() -> None:
    trees = stump_and_tree()
    X = np.array([[0.0, -1.0], [3.0, 2.0]])
    pred, contrib = trees.predict_with_contributions(X)
    # row 0: tree 0 x0: 1 - 2 = -1; tree 1 x1: -0.5 - 0, x0: -1 - (-0.5) = -0.5
    np.testing.assert_allclose(contrib, [[-1.5, -0.5], [1.0, 0.5]])
    np.testing.assert_allclose(contrib.sum(axis=1) + trees.bias, pred)
    np.testing.assert_allclose(pred, trees.predict(X))


def test_arrays_round_trip() -> None:
    trees = stump_and_tree()
    again = TreeEnsemble.from_arrays(trees.to_arrays())
    X = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(again.predict(X), trees.predict(X))


def test_malformed_ensembles_are_refused_naming_what_is_wrong() -> None:
    arrays = stump_and_tree().to_arrays()
    with pytest.raises(ValueError, match="lacks array"):
        TreeEnsemble.from_arrays({k: v for k, v in arrays.items() if k != "value"})
    bad = dict(arrays, left=np.array([[9, 0, 0, 0, 0], [1, 3, 0, 0, 0]]))
    with pytest.raises(ValueError, match="'left' points outside"):
        TreeEnsemble.from_arrays(bad)
    with pytest.raises(ValueError, match="feature 1, but there are 1"):
        TreeEnsemble.from_arrays(dict(arrays, n_features=np.asarray(1)))
    with pytest.raises(ValueError, match="shape"):
        TreeEnsemble.from_arrays(dict(arrays, threshold=np.zeros((2, 4))))
    cycle = dict(arrays, left=np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]))
    with pytest.raises(ValueError, match="cycle"):
        TreeEnsemble.from_arrays(cycle)


def test_inputs_must_match_the_feature_count_and_be_finite() -> None:
    trees = stump_and_tree()
    with pytest.raises(ValueError, match=r"\[rows, 2\]"):
        trees.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        trees.predict(np.array([[np.nan, 0.0]]))
