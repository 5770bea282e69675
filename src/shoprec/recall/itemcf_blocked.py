"""``fit_itemcf`` in bounded memory: the same neighbour table, fitted one block of items at a time.

``fit_itemcf`` accumulates every distinct co-occurring pair ``(a, b)`` of the whole data before it keeps the
top ``k`` of each row, so its memory grows with the number of distinct pairs: on the synthetic 1M-item
catalogue it passed 6 GB between 10M and 20M interactions (docs/scale.md, "Offline at 1M items / 50M
interactions"). The top ``k`` of row ``a`` needs only the pairs whose first item is ``a``, so this variant
cuts the items into contiguous blocks holding at most ``max_block_pairs`` pair entries each (counted in a
first pass) and, for every block, runs fit_itemcf's pair loop keeping only the entries of the block's rows,
normalises them and keeps their top ``k``. Memory is the data, the table and one block's pairs; time is the
pair loop once per block (plus the counting pass) on top of the same sort and reduce work.

The similarity, the normalisation, the ``k`` and the (-score, index) tie order are fit_itemcf's (module
``shoprec.recall.itemcf``); the sums of a pair's weights are added in the same order but reduced at other
points, so a score can differ from fit_itemcf's in the last bit of its float64 sum before the float32
cast (the tests compare the tables on the real datasets and find them equal). numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from shoprec.recall.itemcf import (
    DEFAULT_ALPHA,
    DEFAULT_BACKWARD_WEIGHT,
    DEFAULT_DISTANCE_POWER,
    DEFAULT_K,
    AnyIntArray,
    IntArray,
    ItemCFNeighbours,
    merge_pairs,
)

DEFAULT_MAX_BLOCK_PAIRS = 40_000_000
"""Pair entries (forward and backward) one block may hold: about 1.5 GB of keys, weights and sort
buffers at the peak of its reduce."""
_REDUCE_EVERY = 4_000_000

_POSITIONS_PER_CHUNK = 8_000_000
"""Positions scanned at once for the pairs at one distance (bounds the pair loop's temporaries)."""

PairsAt = Callable[[int], Iterator[tuple[IntArray, IntArray]]]
"""``d -> chunks of (a, b)``: the items of every pair of positions ``d`` apart with ``a != b``, in
position order."""


def fit_itemcf_blocked(
    train_sequences: Sequence[AnyIntArray],
    n_items: int,
    *,
    k: int = DEFAULT_K,
    window: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    backward_weight: float = DEFAULT_BACKWARD_WEIGHT,
    distance_power: float = DEFAULT_DISTANCE_POWER,
    max_block_pairs: int = DEFAULT_MAX_BLOCK_PAIRS,
) -> ItemCFNeighbours:
    """``fit_itemcf(train_sequences, n_items, ...)``'s table, fitted in blocks of items whose rows hold at
    most ``max_block_pairs`` pair entries together (a single row with more is a block of its own)."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if backward_weight < 0:
        raise ValueError(f"backward_weight must be >= 0, got {backward_weight}")
    if max_block_pairs < 1:
        raise ValueError(f"max_block_pairs must be >= 1, got {max_block_pairs}")

    lens = np.fromiter((np.size(s) for s in train_sequences), dtype=np.int64, count=len(train_sequences))
    # int32 items and distances: the data is held once more here, at half fit_itemcf's width.
    dtype = np.int32 if n_items <= np.iinfo(np.int32).max else np.int64
    flat = np.zeros(int(lens.sum()), dtype=dtype)
    at = 0
    for s, n in zip(train_sequences, lens.tolist(), strict=True):
        flat[at : at + n] = np.asarray(s).ravel()
        at += n
    if flat.size and (flat.min() < 0 or flat.max() >= n_items):
        raise ValueError(f"training items must lie in [0, {n_items})")
    counts = np.bincount(flat, minlength=n_items).astype(np.float64, copy=False)
    # Items remaining after each position in its own sequence: pairs at distance d start where rem >= d.
    remaining = np.zeros(flat.size, dtype=np.int32)
    at = 0
    for n in lens.tolist():
        remaining[at : at + n] = np.arange(n - 1, -1, -1, dtype=np.int32)
        at += n
    max_dist = int(remaining.max()) if remaining.size else 0
    if window is not None:
        max_dist = min(max_dist, window)
    backward = backward_weight > 0

    def pairs(d: int) -> Iterator[tuple[IntArray, IntArray]]:
        """The pairs at distance ``d``, in position order, a chunk of positions at a time."""
        for start in range(0, flat.size, _POSITIONS_PER_CHUNK):
            pos = np.flatnonzero(remaining[start : start + _POSITIONS_PER_CHUNK] >= d) + start
            a = flat[pos].astype(np.int64)
            b = flat[pos + d].astype(np.int64)
            distinct = a != b
            yield a[distinct], b[distinct]

    # Pass 1: pair entries per row (forward rows a, backward rows b), to cut the blocks.
    load = np.zeros(n_items, dtype=np.int64)
    for d in range(1, max_dist + 1):
        for a, b in pairs(d):
            load += np.bincount(a, minlength=n_items)
            if backward:
                load += np.bincount(b, minlength=n_items)
    bounds = _block_bounds(load, max_block_pairs)

    indices = np.full((n_items, k), -1, dtype=np.int32)
    scores = np.zeros((n_items, k), dtype=np.float32)
    for lo, hi in itertools.pairwise(bounds):
        keys, vals = _block_sums(pairs, max_dist, lo, hi, n_items, distance_power, backward_weight)
        rows = keys // max(n_items, 1) + lo
        cols = keys % max(n_items, 1)
        del keys
        sims = (vals / (counts[rows] ** alpha * counts[cols] ** (1.0 - alpha))).astype(np.float32)
        del vals
        _fill_top_k(indices, scores, rows, cols, sims, lo, hi, k)
    return ItemCFNeighbours(indices=indices, scores=scores)


def _block_bounds(load: IntArray, max_block_pairs: int) -> list[int]:
    """Item boundaries ``[0, ..., n_items]`` of contiguous blocks of at most ``max_block_pairs`` entries
    (a row with more stands alone)."""
    bounds = [0]
    total = 0
    for item, entries in enumerate(load.tolist()):
        if total and total + entries > max_block_pairs:
            bounds.append(item)
            total = 0
        total += entries
    n_items = int(load.size)
    if bounds[-1] != n_items or n_items == 0:
        bounds.append(n_items)
    return bounds


def _block_sums(
    pairs: PairsAt,
    max_dist: int,
    lo: int,
    hi: int,
    n_items: int,
    distance_power: float,
    backward_weight: float,
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """fit_itemcf's pair loop restricted to rows ``lo <= a < hi``: the block's distinct keys
    ``(a - lo) * n_items + b`` and their summed weights."""
    acc_keys: IntArray = np.zeros(0, dtype=np.int64)
    acc_vals: npt.NDArray[np.float64] = np.zeros(0, dtype=np.float64)
    pend_keys: list[IntArray] = []
    pend_vals: list[npt.NDArray[np.float64]] = []
    pending = 0

    def reduce() -> None:
        nonlocal acc_keys, acc_vals, pending
        acc_keys, acc_vals = merge_pairs(acc_keys, acc_vals, pend_keys, pend_vals)
        pend_keys.clear()
        pend_vals.clear()
        pending = 0

    for d in range(1, max_dist + 1):
        w = float(d) ** -distance_power
        # fit_itemcf's order: every forward entry at this distance, then every backward one.
        for a, b in pairs(d):
            fwd = (a >= lo) & (a < hi)
            pend_keys.append((a[fwd] - lo) * n_items + b[fwd])
            pend_vals.append(np.full(int(fwd.sum()), w))
            pending += int(fwd.sum())
        if backward_weight > 0:
            for a, b in pairs(d):
                bwd = (b >= lo) & (b < hi)
                pend_keys.append((b[bwd] - lo) * n_items + a[bwd])
                pend_vals.append(np.full(int(bwd.sum()), w * backward_weight))
                pending += int(bwd.sum())
        if pending >= _REDUCE_EVERY:
            reduce()
    reduce()
    return acc_keys, acc_vals


def _fill_top_k(
    indices: npt.NDArray[np.int32],
    scores: npt.NDArray[np.float32],
    rows: IntArray,
    cols: IntArray,
    sims: npt.NDArray[np.float32],
    lo: int,
    hi: int,
    k: int,
) -> None:
    """The ``k`` best (-score, col) entries of rows ``lo..hi-1`` into the table (fit_itemcf's top k)."""
    keep = sims > 0
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    order = np.lexsort((cols, -sims, rows))
    rows, cols, sims = rows[order], cols[order], sims[order]
    row_start = np.searchsorted(rows, np.arange(lo, hi))
    rank = np.arange(rows.size) - row_start[rows - lo]
    top = rank < k
    indices[rows[top], rank[top]] = cols[top]
    scores[rows[top], rank[top]] = sims[top]
