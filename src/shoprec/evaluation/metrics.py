"""Ranking metrics as pure numpy functions.

Two input forms are supported:

* a *relevance matrix* ``hits`` (bool ``[U, K_max]``): ``hits[u, i]`` is true when the item the system ranked
  at 0-based position ``i`` for user ``u`` is relevant, plus ``n_relevant`` (int ``[U]``), the number of
  relevant items user ``u`` has in total (also those outside the list);
* *ranks* (int ``[U]``): for single-target leave-one-out, the 0-based rank of the one relevant item among the
  scored candidates. :func:`hits_from_ranks` converts ranks into a relevance matrix.

Every function returns the mean over users as a Python ``float``. With no users (``U == 0``) every mean is
``0.0``: there is nothing to average and ``0.0`` keeps results JSON-serialisable (no NaN). A user with
``n_relevant == 0`` contributes 0 to recall, NDCG and F1 (there is nothing to find). Invalid arguments raise
``ValueError`` naming the argument. See docs/evaluation.md for the formulas.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
F64Array = npt.NDArray[np.float64]

__all__ = [
    "auc_from_ranks",
    "coverage_at_k",
    "f1_at_k",
    "hit_rate_at_k",
    "hits_from_ranks",
    "mrr",
    "mrr_from_ranks",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
]


# ---------------------------------------------------------------------------------------------- validation


def _as_hits(hits: npt.ArrayLike) -> BoolArray:
    arr = np.asarray(hits)
    if arr.ndim != 2:
        raise ValueError(f"hits must be a 2-D array [users, K_max], got shape {arr.shape}")
    if arr.size and arr.dtype != np.bool_ and (arr.dtype.kind not in "iub" or not np.isin(arr, (0, 1)).all()):
        raise ValueError(f"hits must be boolean (or 0/1), got dtype {arr.dtype}")
    return arr.astype(np.bool_, copy=False)


def _check_k(k: int, k_max: int, *, name: str = "k", bound_name: str = "hits.shape[1]") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"{name} must be an int, got {type(k).__name__}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    if k > k_max:
        raise ValueError(f"{name}={k} exceeds {bound_name}={k_max}")
    return k


def _as_int_vector(values: npt.ArrayLike, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _as_n_relevant(n_relevant: npt.ArrayLike, hits: BoolArray) -> IntArray:
    n_rel = _as_int_vector(n_relevant, "n_relevant")
    if n_rel.shape[0] != hits.shape[0]:
        raise ValueError(
            f"n_relevant has {n_rel.shape[0]} entries but hits has {hits.shape[0]} rows (one per user)"
        )
    if n_rel.size and n_rel.min() < 0:
        raise ValueError("n_relevant must be >= 0")
    if hits.size and np.any(hits.sum(axis=1) > n_rel):
        bad = int(np.flatnonzero(hits.sum(axis=1) > n_rel)[0])
        raise ValueError(
            f"n_relevant[{bad}]={int(n_rel[bad])} is smaller than the number of hits in row {bad} "
            f"({int(hits[bad].sum())})"
        )
    return n_rel


def _as_ranks(ranks: npt.ArrayLike) -> IntArray:
    r = _as_int_vector(ranks, "ranks")
    if r.size and r.min() < 0:
        raise ValueError("ranks must be >= 0 (0-based ranks)")
    return r


def _mean(values: npt.ArrayLike) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()) if arr.size else 0.0


def _discounts(n: int) -> F64Array:
    """``1 / log2(i + 2)`` for positions ``i = 0 .. n-1``."""
    return 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)


# ------------------------------------------------------------------------------------ relevance-matrix form


def hit_rate_at_k(hits: npt.ArrayLike, k: int) -> float:
    """Fraction of users with at least one relevant item in their top ``k``."""
    h = _as_hits(hits)
    k = _check_k(k, h.shape[1])
    return _mean(h[:, :k].any(axis=1))


def precision_at_k(hits: npt.ArrayLike, k: int) -> float:
    """Mean over users of ``#hits in top k / k``."""
    h = _as_hits(hits)
    k = _check_k(k, h.shape[1])
    return _mean(h[:, :k].sum(axis=1) / float(k))


def _recall_per_user(h: BoolArray, n_rel: IntArray, k: int) -> F64Array:
    found = h[:, :k].sum(axis=1).astype(np.float64)
    out = np.zeros(h.shape[0], dtype=np.float64)
    np.divide(found, n_rel, out=out, where=n_rel > 0)
    return out


def recall_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> float:
    """Mean over users of ``#hits in top k / n_relevant`` (0 for a user with ``n_relevant == 0``)."""
    h = _as_hits(hits)
    k = _check_k(k, h.shape[1])
    n_rel = _as_n_relevant(n_relevant, h)
    return _mean(_recall_per_user(h, n_rel, k))


def f1_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> float:
    """Mean over users of the per-user F1 ``2PR / (P + R)`` at ``k`` (0 where ``P + R == 0``)."""
    h = _as_hits(hits)
    k = _check_k(k, h.shape[1])
    n_rel = _as_n_relevant(n_relevant, h)
    p = h[:, :k].sum(axis=1) / float(k)
    r = _recall_per_user(h, n_rel, k)
    denom = p + r
    f1 = np.zeros(h.shape[0], dtype=np.float64)
    np.divide(2.0 * p * r, denom, out=f1, where=denom > 0)
    return _mean(f1)


def ndcg_at_k(hits: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> float:
    """Mean over users of ``DCG@k / IDCG@k`` with binary gain and ``log2(i + 2)`` discount.

    ``DCG@k = sum_{i<k} hits[u, i] / log2(i + 2)``; the ideal DCG places ``min(n_relevant, k)`` relevant
    items first. A user with ``n_relevant == 0`` scores 0.
    """
    h = _as_hits(hits)
    k = _check_k(k, h.shape[1])
    n_rel = _as_n_relevant(n_relevant, h)
    disc = _discounts(k)
    dcg = h[:, :k].astype(np.float64) @ disc
    ideal_prefix = np.concatenate(([0.0], np.cumsum(disc)))  # ideal_prefix[m] = IDCG with m relevant items
    idcg = ideal_prefix[np.minimum(n_rel, k)]
    out = np.zeros(h.shape[0], dtype=np.float64)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return _mean(out)


def mrr(hits: npt.ArrayLike) -> float:
    """Mean over users of ``1 / (1 + position of the first hit)`` within the given list; 0 without a hit."""
    h = _as_hits(hits)
    if h.shape[1] == 0:
        return 0.0
    first = h.argmax(axis=1)
    rr = np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _mean(rr)


# ----------------------------------------------------------------------------------------------- ranks form


def hits_from_ranks(ranks: npt.ArrayLike, k_max: int) -> BoolArray:
    """Relevance matrix ``[U, k_max]`` of single-target 0-based ranks: ``hits[u, i] = (ranks[u] == i)``."""
    r = _as_ranks(ranks)
    k_max = _check_k(k_max, np.iinfo(np.int64).max, name="k_max", bound_name="the int64 range")
    return np.asarray(r[:, None] == np.arange(k_max, dtype=np.int64)[None, :], dtype=np.bool_)


def mrr_from_ranks(ranks: npt.ArrayLike) -> float:
    """Mean of ``1 / (rank + 1)`` over the full ranking (no cut-off)."""
    r = _as_ranks(ranks)
    return _mean(1.0 / (r.astype(np.float64) + 1.0))


def auc_from_ranks(ranks: npt.ArrayLike, n_candidates: int | npt.ArrayLike) -> float:
    """Mean per-user AUC of a single target ranked among ``n_candidates`` scored items (target included).

    Per user ``AUC = (n_candidates - 1 - rank) / (n_candidates - 1)``: the fraction of the
    ``n_candidates - 1`` negatives scored below the target. ``n_candidates`` is a scalar or one value per user
    (the full protocol's candidate count differs per user because history items are excluded). A user whose
    only candidate is the target (``n_candidates == 1``) has no negative to misorder and scores 1.0.
    """
    r = _as_ranks(ranks)
    n_arr = np.asarray(n_candidates)
    if n_arr.ndim == 0:
        if n_arr.dtype.kind not in "iu":
            raise ValueError(f"n_candidates must be an int, got {n_arr.dtype}")
        n = np.full(r.shape[0], int(n_arr), dtype=np.int64)
    else:
        n = _as_int_vector(n_arr, "n_candidates")
        if n.shape[0] != r.shape[0]:
            raise ValueError(f"n_candidates has {n.shape[0]} entries but ranks has {r.shape[0]}")
    if n.size and n.min() < 1:
        raise ValueError("n_candidates must be >= 1")
    if r.size and np.any(r >= n):
        bad = int(np.flatnonzero(r >= n)[0])
        raise ValueError(f"ranks[{bad}]={int(r[bad])} is not below n_candidates={int(n[bad])}")
    negatives = (n - 1).astype(np.float64)
    auc = np.ones(r.shape[0], dtype=np.float64)
    np.divide(negatives - r, negatives, out=auc, where=negatives > 0)
    return _mean(auc)


def coverage_at_k(topk_items: npt.ArrayLike, n_items: int, k: int) -> float:
    """Fraction of the ``n_items`` catalogue appearing in at least one user's top ``k``.

    ``topk_items`` is an int array ``[U, >= k]`` of item indices in rank order. Entries ``< 0`` are padding
    (a user with fewer than ``k`` rankable items) and are ignored.
    """
    items = np.asarray(topk_items)
    if items.ndim != 2:
        raise ValueError(f"topk_items must be a 2-D array [users, >= k], got shape {items.shape}")
    if items.size and items.dtype.kind not in "iu":
        raise ValueError(f"topk_items must hold integers, got dtype {items.dtype}")
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise ValueError(f"n_items must be an int >= 1, got {n_items!r}")
    k = _check_k(k, items.shape[1], bound_name="topk_items.shape[1]")
    top = items[:, :k].astype(np.int64, copy=False).ravel()
    top = top[top >= 0]
    if top.size and top.max() >= n_items:
        raise ValueError(f"topk_items holds item {int(top.max())}, outside 0..n_items-1={int(n_items) - 1}")
    if top.size == 0:
        return 0.0
    return float(np.unique(top).size / int(n_items))
