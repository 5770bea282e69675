"""Leave-one-out evaluation protocols: rank each user's held-out target with a scorer and compute metrics.

A *scorer* maps a batch of user histories (each an int64 array of internal item indices ``0 .. n_items-1``
in chronological order) to a score matrix ``[B, n_items]`` (float32 expected; higher is better).

Protocols (details and formulas in docs/evaluation.md):

``"full"``
    The target is ranked among all items. Items in the user's history are excluded from the ranking, except
    the target itself, which stays rankable even when it occurs earlier in the history (a repeat purchase is
    a correct prediction). ``EvalResult.target_in_history`` counts those users. This is the primary protocol.
``"sampled"``
    The target is ranked against ``n_negatives`` items drawn uniformly without replacement from the items
    the user never interacted with. Sampled metrics are inflated and unstable (Krichene & Rendle 2020); the
    result carries ``inflated=True`` and reports no coverage.

Ties are broken deterministically as if sorting by ``(-score, item index)``. The evaluation never
materialises more than ``batch_size`` rows of scores at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shoprec.evaluation.metrics import (
    auc_from_ranks,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    hits_from_ranks,
    mrr_from_ranks,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Scorer = Callable[[list[IntArray]], npt.NDArray[np.floating[Any]]]
Protocol = Literal["full", "sampled"]

__all__ = [
    "EvalResult",
    "FloatArray",
    "IntArray",
    "Protocol",
    "Scorer",
    "evaluate",
    "sample_negatives",
    "top_k_items",
]


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`evaluate`.

    ``metrics`` maps names such as ``"HR@10"``, ``"NDCG@10"``, ``"P@10"``, ``"R@10"``, ``"F1@10"``,
    ``"Coverage@10"`` (full protocol only), ``"MRR"`` and ``"AUC"`` to means over ``users``.
    ``target_in_history`` is the number of users whose target also occurs in their history.
    ``inflated`` is true for the sampled protocol. ``n_negatives`` and ``seed`` are set for sampled runs.
    """

    protocol: str
    users: int
    metrics: dict[str, float]
    target_in_history: int
    inflated: bool
    n_negatives: int | None = None
    seed: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "users": self.users,
            "metrics": dict(self.metrics),
            "target_in_history": self.target_in_history,
            "inflated": self.inflated,
        }
        if self.n_negatives is not None:
            out["n_negatives"] = self.n_negatives
        if self.seed is not None:
            out["seed"] = self.seed
        return out


# ------------------------------------------------------------------------------------------------- ranking


def top_k_items(scores: npt.ArrayLike, k: int) -> IntArray:
    """Each row's ``k`` best column indices, ordered by ``(-score, index)``.

    NaN entries mark excluded items: they are never returned. A row with fewer than ``k`` non-NaN entries is
    padded with ``-1``. Runs in ``O(n_items)`` per row: ``np.partition`` finds the k-th best value, a mask
    keeps the items at least that good (lowest indices first among those tied at the k-th value), and only
    the ``k`` kept items per row are sorted.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array [batch, n_items], got shape {s.shape}")
    n_rows, n_cols = s.shape
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_cols:
        raise ValueError(f"k must be an int in 1..{n_cols} (scores.shape[1]), got {k!r}")
    k = int(k)
    if n_rows == 0:
        return np.full((0, k), -1, dtype=np.int64)
    # Ascending order of -score is descending score; NaN sorts last, as in np.sort.
    neg = np.ascontiguousarray(-s.astype(np.result_type(s.dtype, np.float32), copy=False))
    return _top_k_keys(neg, k)


def _top_k_keys(neg: npt.NDArray[np.floating[Any]], k: int) -> IntArray:
    """:func:`top_k_items` on sort keys ``neg = -scores`` (C-contiguous, NaN = excluded, lower = better)."""
    n_rows, n_cols = neg.shape
    out = np.full((n_rows, k), -1, dtype=np.int64)
    kth = np.partition(neg, k - 1, axis=1)[:, k - 1]  # k-th best value per row; NaN if < k rankable
    cand = neg <= kth[:, None]  # NaN compares false: excluded items never qualify
    short = np.flatnonzero(np.isnan(kth))
    if short.size:
        cand[short] = ~np.isnan(neg[short])
    flat = np.flatnonzero(cand)  # row-major: rows ascending, columns ascending within a row
    rows = flat // n_cols
    cols = flat - rows * n_cols
    vals = neg.reshape(-1)[flat]
    # Items strictly better than the k-th value are all in; of those tied with it, keep the lowest
    # indices until the row holds k (rows short of k rankable items have kth NaN: no ties, all kept).
    is_tie = vals == kth[rows]
    need = k - np.bincount(rows[~is_tie], minlength=n_rows)
    tie_rows = rows[is_tie]
    tie_starts = np.concatenate(([0], np.cumsum(np.bincount(tie_rows, minlength=n_rows))[:-1]))
    keep = ~is_tie
    keep[is_tie] = np.arange(tie_rows.size) - tie_starts[tie_rows] < need[tie_rows]
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, vals, rows))
    rows, cols = rows[order], cols[order]
    starts = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n_rows))[:-1]))
    out[rows, np.arange(rows.size) - starts[rows]] = cols
    return out


def _ranks_with_ties(
    cand_keys: npt.NDArray[np.floating[Any]],
    cand_items: IntArray | None,
    target_keys: npt.NDArray[np.floating[Any]],
    targets: IntArray,
) -> IntArray:
    """0-based rank of each target: ``#(key < t) + #(key == t and item < target)`` over the candidates.

    Keys are negated scores (lower is better), so this is ``#(score > s_t) + #(score == s_t and item <
    target)``. ``cand_keys`` holds the keys of the other candidates (NaN = excluded, never counted);
    ``cand_items`` their item indices, or None when column ``j`` is item ``j``. The target's own entry may be
    among the candidates: it is neither better than nor a lower-index tie of itself.
    """
    t = target_keys[:, None]
    rank: IntArray = np.asarray((cand_keys < t).sum(axis=1), dtype=np.int64)
    tie = cand_keys == t
    rows = np.flatnonzero(tie.sum(axis=1) > (1 if cand_items is None else 0))
    if rows.size:
        items = (
            np.broadcast_to(np.arange(cand_keys.shape[1], dtype=np.int64), (rows.size, cand_keys.shape[1]))
            if cand_items is None
            else cand_items[rows]
        )
        rank[rows] += (tie[rows] & (items < targets[rows, None])).sum(axis=1)
    return rank


# ---------------------------------------------------------------------------------------------- validation


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    try:
        values = list(ks)
    except TypeError:
        raise ValueError(f"ks must be an iterable of ints, got {ks!r}") from None
    if not values:
        raise ValueError("ks must not be empty")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"ks must hold ints >= 1, got {k!r}")
    return tuple(sorted({int(k) for k in values}))


def _check_history(h: Any, u: int, n_items: int) -> IntArray:
    arr = np.asarray(h)
    if arr.ndim != 1:
        raise ValueError(f"histories[{u}] must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"histories[{u}] must hold integer item indices, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= n_items:
        bad = lo if lo < 0 else hi
        raise ValueError(f"histories[{u}] holds item {bad}, outside 0..n_items-1={n_items - 1}")
    return arr.astype(np.int64, copy=False)


def _call_scorer(scorer: Scorer, batch: list[IntArray], n_items: int, first_user: int) -> npt.NDArray[Any]:
    raw = scorer(batch)
    s = np.asarray(raw)
    if s.shape != (len(batch), n_items):
        raise ValueError(
            f"scorer returned shape {s.shape}, expected ({len(batch)}, {n_items}) [batch, n_items]"
        )
    if s.dtype.kind in "iub":
        s = s.astype(np.float64)
    elif s.dtype.kind != "f":
        raise ValueError(f"scorer returned dtype {s.dtype}, expected a float array")
    nan = np.isnan(s)
    if nan.any():
        r, c = np.argwhere(nan)[0]
        raise ValueError(
            f"scorer returned NaN scores ({int(nan.sum())} in this batch; first for user "
            f"{first_user + int(r)}, item {int(c)})"
        )
    return s


# ------------------------------------------------------------------------------------------------ evaluate


def _sample_negatives(
    rng: np.random.Generator,
    h_rows: IntArray,
    h_cols: IntArray,
    targets: IntArray,
    n_items: int,
    n_negatives: int,
    first_user: int,
) -> IntArray:
    """``[B, n_negatives]`` distinct items per user, uniform over those not in its history nor its target.

    ``(h_rows, h_cols)`` lists the batch's (user row, history item) pairs. One ``rng.choice`` per user, in
    user order, so the negatives depend only on the seed and the users' order, not on the batch size.
    """
    b = targets.shape[0]
    rows = np.concatenate((h_rows, np.arange(b, dtype=np.int64)))
    stride = n_items + 1
    codes = np.unique(rows * stride + np.concatenate((h_cols, targets)))  # sorted by (row, item), distinct
    f_rows = codes // stride
    f_items = codes - f_rows * stride
    counts = np.bincount(f_rows, minlength=b)
    pools = n_items - counts
    if pools.min() < n_negatives:
        u = int(np.argmin(pools))
        raise ValueError(
            f"user {first_user + u} has only {int(pools[u])} items never interacted with, "
            f"fewer than n_negatives={n_negatives}"
        )
    j = np.stack([rng.choice(int(p), size=n_negatives, replace=False) for p in pools]).astype(np.int64)
    # j indexes the user's allowed items in increasing order. The j-th allowed item is j + #(forbidden
    # items below it), and f - (its position among the user's forbidden items) counts the allowed items
    # below forbidden item f, so that number is #(those counts <= j): one searchsorted for the whole batch,
    # rows kept apart by an offset of (n_items + 2) per row.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    below = f_items - (np.arange(codes.size, dtype=np.int64) - starts[f_rows])
    offset = np.arange(b, dtype=np.int64)[:, None] * (n_items + 2)
    pos = np.searchsorted(below + f_rows * (n_items + 2), j + offset, side="right")
    return np.asarray(j + pos - starts[:, None], dtype=np.int64)


def sample_negatives(
    histories: Sequence[IntArray],
    targets: npt.ArrayLike,
    n_items: int,
    *,
    n_negatives: int = 99,
    seed: int = 0,
    batch_size: int = 256,
) -> IntArray:
    """The negatives ``[users, n_negatives]`` that :func:`evaluate`'s sampled protocol draws for the same
    arguments, so that other rankers (the whole pipeline) are scored against the very same items."""
    tgt = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = np.empty((len(histories), n_negatives), dtype=np.int64)
    for start in range(0, len(histories), batch_size):
        stop = min(start + batch_size, len(histories))
        batch = [_check_history(histories[u], u, n_items) for u in range(start, stop)]
        lens = np.fromiter((h.size for h in batch), dtype=np.int64, count=stop - start)
        h_rows = np.repeat(np.arange(stop - start, dtype=np.int64), lens)
        h_cols = np.concatenate(batch) if lens.sum() else np.zeros(0, dtype=np.int64)
        out[start:stop] = _sample_negatives(rng, h_rows, h_cols, tgt[start:stop], n_items, n_negatives, start)
    return out


def evaluate(
    scorer: Scorer,
    histories: Sequence[IntArray],
    targets: npt.ArrayLike,
    n_items: int,
    protocol: Protocol,
    *,
    ks: Iterable[int] = (5, 10, 20),
    n_negatives: int = 99,
    seed: int = 0,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Rank each user's ``targets[u]`` given ``histories[u]`` and return the metrics.

    ``progress(done, total)`` is called after each batch with the number of users evaluated so far.
    Raises ``ValueError`` for invalid arguments, for a scorer output of the wrong shape or with NaN, for no
    users, and (sampled) for a user with fewer than ``n_negatives`` items never interacted with.
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise ValueError(f"n_items must be an int >= 1, got {n_items!r}")
    n_items = int(n_items)
    ks_t = _check_ks(ks)
    k_max = ks_t[-1]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if protocol == "sampled":
        if isinstance(n_negatives, bool) or not isinstance(n_negatives, int | np.integer) or n_negatives < 1:
            raise ValueError(f"n_negatives must be an int >= 1, got {n_negatives!r}")
        n_negatives = int(n_negatives)
        if k_max > n_negatives + 1:
            raise ValueError(f"ks holds {k_max}, more than the 1+n_negatives={n_negatives + 1} candidates")
    elif k_max > n_items:
        raise ValueError(f"ks holds {k_max}, more than n_items={n_items}")

    tgt = np.asarray(targets)
    if tgt.ndim != 1:
        raise ValueError(f"targets must be a 1-D array, got shape {tgt.shape}")
    if tgt.size and tgt.dtype.kind not in "iu":
        raise ValueError(f"targets must hold integer item indices, got dtype {tgt.dtype}")
    tgt = tgt.astype(np.int64, copy=False)
    n_users = len(histories)
    if tgt.shape[0] != n_users:
        raise ValueError(f"targets has {tgt.shape[0]} entries but histories has {n_users}")
    if n_users == 0:
        raise ValueError("histories is empty: no users to evaluate")
    if tgt.min() < 0 or tgt.max() >= n_items:
        bad = int(tgt.min()) if tgt.min() < 0 else int(tgt.max())
        raise ValueError(f"targets holds item {bad}, outside 0..n_items-1={n_items - 1}")

    rng = np.random.default_rng(seed) if protocol == "sampled" else None
    ranks = np.empty(n_users, dtype=np.int64)
    n_candidates = np.empty(n_users, dtype=np.int64)
    top_lists = np.empty((n_users, k_max), dtype=np.int64) if protocol == "full" else None
    target_in_history = 0

    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        batch = [_check_history(histories[u], u, n_items) for u in range(start, stop)]
        bt = tgt[start:stop]
        b = stop - start
        lens = np.fromiter((h.size for h in batch), dtype=np.int64, count=b)
        h_rows = np.repeat(np.arange(b, dtype=np.int64), lens)
        h_cols = np.concatenate(batch) if lens.sum() else np.zeros(0, dtype=np.int64)
        is_target = h_cols == bt[h_rows]
        target_in_history += int(np.unique(h_rows[is_target]).size)

        scores = _call_scorer(scorer, batch, n_items, start)
        row_idx = np.arange(b)
        t_scores = scores[row_idx, bt]

        if protocol == "full":
            assert top_lists is not None
            ex_rows, ex_cols = h_rows[~is_target], h_cols[~is_target]
            keys = np.negative(scores)  # a fresh array: the scorer's output is never modified
            keys[ex_rows, ex_cols] = np.nan  # NaN compares false: excluded from ranks and top-k
            ranks[start:stop] = _ranks_with_ties(keys, None, -t_scores, bt)
            n_excluded = np.bincount(np.unique(ex_rows * n_items + ex_cols) // n_items, minlength=b)
            n_candidates[start:stop] = n_items - n_excluded
            top_lists[start:stop] = _top_k_keys(keys, k_max)
        else:
            assert rng is not None
            negs = _sample_negatives(rng, h_rows, h_cols, bt, n_items, n_negatives, start)
            neg_keys = -scores[row_idx[:, None], negs]
            ranks[start:stop] = _ranks_with_ties(neg_keys, negs, -t_scores, bt)
            n_candidates[start:stop] = n_negatives + 1

        if progress is not None:
            progress(stop, n_users)

    hits = hits_from_ranks(ranks, k_max)
    n_relevant = np.ones(n_users, dtype=np.int64)
    metrics: dict[str, float] = {}
    for k in ks_t:
        metrics[f"HR@{k}"] = hit_rate_at_k(hits, k)
        metrics[f"NDCG@{k}"] = ndcg_at_k(hits, n_relevant, k)
        metrics[f"P@{k}"] = precision_at_k(hits, k)
        metrics[f"R@{k}"] = recall_at_k(hits, n_relevant, k)
        metrics[f"F1@{k}"] = f1_at_k(hits, n_relevant, k)
        if top_lists is not None:
            metrics[f"Coverage@{k}"] = coverage_at_k(top_lists, n_items, k)
    metrics["MRR"] = mrr_from_ranks(ranks)
    metrics["AUC"] = auc_from_ranks(ranks, n_candidates)

    sampled = protocol == "sampled"
    return EvalResult(
        protocol=protocol,
        users=n_users,
        metrics=metrics,
        target_in_history=target_in_history,
        inflated=sampled,
        n_negatives=n_negatives if sampled else None,
        seed=int(seed) if sampled else None,
    )
