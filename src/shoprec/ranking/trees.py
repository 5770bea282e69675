"""Gradient-boosted tree ensembles evaluated with numpy: the serving side of the stacking fusion.

Training fits the ensemble with LightGBM (``shoprec.training.fusion``) and stores it as flat arrays, one
row per tree, one column per node; serving needs neither LightGBM nor torch. Every tree is walked for all
rows at once, one tree level per step, so a request's few hundred candidates cost a few dozen numpy
operations whatever the number of trees.

A node ``j`` of tree ``t`` is a split when ``feature[t, j] >= 0``: a row goes to ``left[t, j]`` when
``x[feature] <= threshold[t, j]`` (LightGBM's numerical decision rule) and to ``right[t, j]`` otherwise.
A leaf has ``feature == -1``; ``value`` holds the leaf output, and for a split node the mean output of the
rows that reached it in training (LightGBM's ``internal_value``). Those inner values give each feature's
contribution to a prediction (Saabas' method): walking from the root, every step adds
``value[child] - value[node]`` to the split feature, so the contributions plus ``bias`` (the sum of the root
values) add up to the prediction exactly. The pipeline uses them to say which signal made an item rise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

ARRAY_NAMES = ("feature", "threshold", "left", "right", "value")


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A sum of binary regression trees over ``n_features`` numeric features (arrays ``[trees, nodes]``)."""

    feature: I32
    threshold: F64
    left: I32
    right: I32
    value: F64
    n_features: int
    depth: int = field(init=False, default=0)
    _tree_base: npt.NDArray[np.int64] = field(init=False, repr=False)
    _flat_feature: npt.NDArray[np.int64] = field(init=False, repr=False)
    _flat_safe_feature: npt.NDArray[np.int64] = field(init=False, repr=False)
    _flat_threshold: F64 = field(init=False, repr=False)
    _flat_left: npt.NDArray[np.int64] = field(init=False, repr=False)
    _flat_right: npt.NDArray[np.int64] = field(init=False, repr=False)
    _flat_value: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = self.feature.shape
        if len(shape) != 2 or shape[1] < 1:
            raise ValueError(f"tree arrays must be 2-D [trees, nodes], got feature {shape}")
        for name in ARRAY_NAMES[1:]:
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"tree array '{name}' has shape {getattr(self, name).shape}, expected {shape}"
                )
        if self.feature.size and int(self.feature.max()) >= self.n_features:
            raise ValueError(
                f"a split uses feature {int(self.feature.max())}, but there are {self.n_features}"
            )
        split = self.feature >= 0
        n_nodes = shape[1]
        for name in ("left", "right"):
            child = getattr(self, name)[split]
            if child.size and (child.min() < 1 or child.max() >= n_nodes):
                raise ValueError(f"tree array '{name}' points outside the tree")
        if not (np.all(np.isfinite(self.value)) and np.all(np.isfinite(self.threshold[split]))):
            raise ValueError("tree values and thresholds must be finite")
        object.__setattr__(self, "depth", _max_depth(self.feature, self.left, self.right))
        # Flat arrays over all trees: node j of tree t is t * n_nodes + j, and a leaf's children are itself,
        # so a walk can run every tree for the same number of steps.
        base = np.arange(self.n_trees, dtype=np.int64)[:, None] * n_nodes
        node = base + np.arange(n_nodes, dtype=np.int64)[None, :]
        flat: dict[str, npt.NDArray[Any]] = {
            "_tree_base": base.reshape(1, -1),
            "_flat_feature": self.feature.astype(np.int64).ravel(),
            "_flat_safe_feature": np.maximum(self.feature, 0).astype(np.int64).ravel(),
            "_flat_threshold": np.where(split, self.threshold, np.inf).ravel(),
            "_flat_left": np.where(split, base + self.left, node).ravel(),
            "_flat_right": np.where(split, base + self.right, node).ravel(),
            "_flat_value": self.value.ravel(),
        }
        for name, array in flat.items():
            object.__setattr__(self, name, array)

    @property
    def n_trees(self) -> int:
        return int(self.feature.shape[0])

    @property
    def bias(self) -> float:
        """The prediction before any split: the sum of the root values."""
        return float(self.value[:, 0].sum())

    def predict(self, X: npt.ArrayLike) -> F64:
        """The ensemble's output for each row of ``X`` ``[rows, n_features]``."""
        rows = _rows(X, self.n_features)
        leaves = self._leaves(rows)
        out: F64 = self._flat_value[leaves].sum(axis=1)
        return out

    def predict_with_contributions(self, X: npt.ArrayLike) -> tuple[F64, F64]:
        """Outputs ``[rows]`` and per-feature contributions ``[rows, n_features]``; for every row the
        contributions sum to ``output - bias``. About twice the cost of :meth:`predict`: serving asks for
        contributions of the few items it returns only."""
        rows = _rows(X, self.n_features)
        n_rows = rows.shape[0]
        flat_x = rows.ravel()
        row_base = (np.arange(n_rows, dtype=np.int64) * self.n_features)[:, None]
        node = np.broadcast_to(self._tree_base, (n_rows, self.n_trees)).copy()
        contrib = np.zeros(n_rows * self.n_features, dtype=np.float64)
        for _ in range(self.depth):
            feat = self._flat_feature[node]
            split = feat >= 0
            slot = row_base + np.maximum(feat, 0)
            child = np.where(
                flat_x[slot] <= self._flat_threshold[node], self._flat_left[node], self._flat_right[node]
            )
            gain = self._flat_value[child] - self._flat_value[node]
            contrib += np.bincount(slot[split], weights=gain[split], minlength=contrib.size)
            node = child
        pred: F64 = self._flat_value[node].sum(axis=1)
        return pred, contrib.reshape(n_rows, self.n_features)

    def _leaves(self, rows: F64) -> npt.NDArray[np.int64]:
        """Flat index of the leaf each row reaches in each tree ``[rows, trees]``: one tree level per step,
        every (row, tree) pair still at a split at once. Pairs that reached a leaf drop out, so a level costs
        what is still walking: leaf-wise trees are deep on a few paths and shallow on most."""
        n_rows = rows.shape[0]
        flat_x = rows.ravel()
        node = np.broadcast_to(self._tree_base, (n_rows, self.n_trees)).copy().ravel()
        walking = np.arange(node.size, dtype=np.int64)
        row_start = (walking // self.n_trees) * self.n_features
        for _ in range(self.depth):
            at = node[walking]
            feature = self._flat_feature[at]
            split = feature >= 0
            if not split.all():
                walking, at, feature, row_start = walking[split], at[split], feature[split], row_start[split]
                if walking.size == 0:
                    break
            x = flat_x[row_start + feature]
            node[walking] = np.where(x <= self._flat_threshold[at], self._flat_left[at], self._flat_right[at])
        return node.reshape(n_rows, self.n_trees)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays to store (``np.savez``-able); :meth:`from_arrays` reads them back."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "n_features": np.asarray(self.n_features, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> TreeEnsemble:
        """The ensemble stored by :meth:`to_arrays`; ``ValueError`` naming a missing or malformed array."""
        missing = [name for name in (*ARRAY_NAMES, "n_features") if name not in arrays]
        if missing:
            raise ValueError(f"tree ensemble lacks array(s) {', '.join(missing)}")
        return cls(
            feature=np.asarray(arrays["feature"], dtype=np.int32),
            threshold=np.asarray(arrays["threshold"], dtype=np.float64),
            left=np.asarray(arrays["left"], dtype=np.int32),
            right=np.asarray(arrays["right"], dtype=np.int32),
            value=np.asarray(arrays["value"], dtype=np.float64),
            n_features=int(arrays["n_features"]),
        )


def _rows(X: npt.ArrayLike, n_features: int) -> F64:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"X must be [rows, {n_features}], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("X must be finite")
    return arr


def _max_depth(feature: I32, left: I32, right: I32) -> int:
    """Length of the longest root-to-leaf walk over all trees."""
    tree = np.arange(feature.shape[0])
    node = np.zeros(feature.shape[0], dtype=np.int64)
    depth = 0
    while True:
        split = feature[tree, node] >= 0
        if not split.any():
            return depth
        depth += 1
        if depth > feature.shape[1]:
            raise ValueError("tree arrays contain a cycle")
        tree, node = tree[split], node[split]
        tree, node = np.concatenate([tree, tree]), np.concatenate([left[tree, node], right[tree, node]])
