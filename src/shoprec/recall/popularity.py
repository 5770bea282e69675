"""Popularity recall: how often each item occurs in the training sequences.

The non-personalised baseline and the cold-start fallback (users without history, items without
neighbours).  Serving code imports this module; it needs numpy only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
AnyIntArray = npt.NDArray[np.integer[Any]]


def fit_popularity(train_sequences: Sequence[AnyIntArray], n_items: int) -> FloatArray:
    """Occurrence count of every item in ``train_sequences``, float32 ``[n_items]``.

    A repeated item in one sequence counts once per occurrence.
    """
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    seqs = [np.asarray(s, dtype=np.int64).ravel() for s in train_sequences]
    flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_items):
        raise ValueError(f"training items must lie in [0, {n_items})")
    return np.bincount(flat, minlength=n_items).astype(np.float32)


class PopularityRecall:
    """Ranks items by a fixed popularity vector; ties are broken by the smaller item index."""

    def __init__(self, popularity: npt.ArrayLike) -> None:
        pop = np.asarray(popularity, dtype=np.float32)
        if pop.ndim != 1:
            raise ValueError(f"popularity must be 1-D, got shape {pop.shape}")
        if not np.all(np.isfinite(pop)):
            raise ValueError("popularity must be finite")
        self.popularity: FloatArray = pop
        self.popularity.setflags(write=False)
        # Global order by (-score, index), computed once.
        self._order: IntArray = np.lexsort((np.arange(pop.size), -pop)).astype(np.int64)

    @property
    def n_items(self) -> int:
        return int(self.popularity.size)

    def scores(self, n: int) -> FloatArray:
        """The popularity row repeated for ``n`` users: float32 ``[n, n_items]`` (a writable copy)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return np.tile(self.popularity, (n, 1))

    def score_histories(self, histories: Sequence[AnyIntArray], n_items: int | None = None) -> FloatArray:
        """Same interface as ``ItemCFNeighbours.score_histories``: the histories are ignored."""
        if n_items is not None and n_items != self.n_items:
            raise ValueError(f"n_items={n_items} does not match the popularity vector ({self.n_items})")
        return self.scores(len(histories))

    def top(self, k: int, exclude: Collection[int] = frozenset()) -> tuple[IntArray, FloatArray]:
        """The ``k`` most popular items not in ``exclude``, sorted by (-score, index)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        head = self._order[: k + len(exclude)]
        if exclude:
            excluded = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
            head = head[~np.isin(head, excluded)]
        idx = head[:k].copy()
        return idx, self.popularity[idx].copy()
