"""Search metrics over graded relevance judgments, as pure numpy functions (``shoprec search-eval``).

A query's judgments (its *qrels*) map judged item ids to a grade 0..3 (3: exactly what was asked, 2: a good
substitute, 1: related, 0: judged not relevant); an item nobody judged counts as grade 0. Every function takes
``gains``, the grades of a system's ranked list, best first (:func:`grades_of` builds it), and returns that
query's score as a Python ``float``; the mean over queries is the figure reported.

* :func:`ndcg_at_k`: ``DCG@k / IDCG@k`` with the grade itself as the gain (linear gains, as ``trec_eval``)
  and the standard discount ``1 / log2(rank + 1)`` for 1-based ranks; the ideal list is every judged grade
  of the query sorted from best down. A query with no positive grade scores 0 (nothing can be found).
* :func:`recall_at_k`: the share of the query's relevant items (grade >= ``min_grade``, 2 by default: an
  exact match or a good substitute) found in the first ``k``; 0 for a query without relevant items.
* :func:`reciprocal_rank`: ``1 / rank`` of the first relevant item (grade >= ``min_grade``), 0 when none
  is ranked; its mean over queries is MRR.

Invalid arguments raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

F64Array = npt.NDArray[np.float64]

MAX_GRADE = 3
RELEVANT_GRADE = 2

__all__ = [
    "MAX_GRADE",
    "RELEVANT_GRADE",
    "dcg_at_k",
    "grades_of",
    "mean",
    "ndcg_at_k",
    "recall_at_k",
    "reciprocal_rank",
]


def _grades(values: npt.ArrayLike, name: str) -> F64Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of grades, got shape {arr.shape}")
    if arr.size and (not np.isfinite(arr).all() or (arr < 0).any()):
        raise ValueError(f"{name} must hold finite grades >= 0")
    return arr


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def grades_of(ranked: Sequence[str], judgments: Mapping[str, int]) -> F64Array:
    """The grade of every item of ``ranked`` (best first) under ``judgments``; unjudged items get 0."""
    return np.asarray([judgments.get(item, 0) for item in ranked], dtype=np.float64)


def dcg_at_k(gains: npt.ArrayLike, k: int) -> float:
    """``sum_{i=1..min(k, n)} gains[i] / log2(i + 1)`` (1-based ranks ``i``)."""
    g = _grades(gains, "gains")[: _check_k(k)]
    discounts = np.log2(np.arange(2, g.size + 2, dtype=np.float64))
    return float(np.sum(g / discounts))


def ndcg_at_k(gains: npt.ArrayLike, ideal: npt.ArrayLike, k: int) -> float:
    """nDCG@k of a ranked list with grades ``gains`` when the query's judged grades are ``ideal`` (any
    order; the ideal list sorts them best first). 0 when no judged grade is positive."""
    ideal_sorted = np.sort(_grades(ideal, "ideal"))[::-1]
    idcg = dcg_at_k(ideal_sorted, k)
    if idcg <= 0:
        return 0.0
    return dcg_at_k(gains, k) / idcg


def recall_at_k(gains: npt.ArrayLike, n_relevant: int, k: int, *, min_grade: int = RELEVANT_GRADE) -> float:
    """The share of the ``n_relevant`` relevant items (grade >= ``min_grade``) in the first ``k``; 0 when
    ``n_relevant`` is 0. Raises when the list holds more relevant items than ``n_relevant``."""
    if n_relevant < 0:
        raise ValueError(f"n_relevant must be >= 0, got {n_relevant}")
    found = int(np.count_nonzero(_grades(gains, "gains")[: _check_k(k)] >= min_grade))
    if found > n_relevant:
        raise ValueError(f"n_relevant={n_relevant} is smaller than the {found} relevant items ranked")
    return found / n_relevant if n_relevant else 0.0


def reciprocal_rank(gains: npt.ArrayLike, *, min_grade: int = RELEVANT_GRADE) -> float:
    """``1 / rank`` (1-based) of the first item with grade >= ``min_grade``; 0 when there is none."""
    hit = np.flatnonzero(_grades(gains, "gains") >= min_grade)
    return 1.0 / float(hit[0] + 1) if hit.size else 0.0


def mean(values: Sequence[float]) -> float:
    """The mean of per-query scores; 0.0 for no queries (keeps results JSON-serialisable)."""
    return float(np.mean(values)) if len(values) else 0.0
