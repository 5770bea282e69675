"""Merging the recall channels' candidate lists into one list for the ranker.

For every channel ``c`` with candidates scored ``s``, the scores are min-max normalised within the
channel's list, ``norm_c(i) = (s_i - min) / (max - min)`` (``1.0`` for every candidate when all scores are
equal), so that similarity sums, dot products and interaction counts become comparable.  An item's merged
score is the weighted sum over the channels that found it::

    score(i) = sum_c weight_c * norm_c(i)

so an item found by several channels rises.  The default weights, item-CF 1.0, embedding 0.6,
popularity 0.2, follow the channels' offline quality on the Amazon data (item-CF is the strongest
next-item signal, popularity the weakest).  An item keeps the reason of the channel contributing most
to its score (ties: the earlier channel), and ``channels`` lists every channel that found it, in
channel order.  The result is sorted by (-score, item index) and cut to the budget.

Quotas bound what each channel may contribute before the budget cut, so that one large channel cannot
crowd out the others' best candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from shoprec.domain import Candidate
from shoprec.recall.channels import EMBEDDING, ITEMCF, POPULARITY

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_BUDGET = 300
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({ITEMCF: 1.0, EMBEDDING: 0.6, POPULARITY: 0.2})
DEFAULT_QUOTAS: Mapping[str, int] = MappingProxyType({ITEMCF: 200, EMBEDDING: 150, POPULARITY: 100})


@dataclass(frozen=True)
class MergePolicy:
    """How channel lists are merged: weights per channel name (unknown channels weigh ``default_weight``),
    quotas per channel (a channel without one may contribute up to ``budget``), and the total budget."""

    budget: int = DEFAULT_BUDGET
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    quotas: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    default_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"weights must be >= 0, got {dict(self.weights)}")
        if any(q < 0 for q in self.quotas.values()):
            raise ValueError(f"quotas must be >= 0, got {dict(self.quotas)}")

    def weight(self, channel: str) -> float:
        return self.weights.get(channel, self.default_weight)

    def quota(self, channel: str) -> int:
        """How many candidates to ask ``channel`` for: its quota, never more than the budget."""
        return min(self.quotas.get(channel, self.budget), self.budget)


def merge_candidates(
    lists: Sequence[tuple[str, Sequence[Candidate]]], policy: MergePolicy | None = None
) -> list[Candidate]:
    """Merge ``(channel name, candidates best first)`` pairs as described in the module docstring.

    Each channel's list is cut to its quota first; a channel listing an item twice counts it once.  The
    arithmetic runs on arrays and :class:`Candidate` objects are built for the kept items only; the
    input candidates are not modified.
    """
    policy = policy or MergePolicy()
    names: list[str] = []
    items: list[IntArray] = []
    parts: list[FloatArray] = []
    reasons: list[str] = []
    for name, candidates in lists:
        head = candidates[: policy.quota(name)]
        if not head or name in names:
            continue
        item = np.fromiter((c.item for c in head), dtype=np.int64, count=len(head))
        score = np.fromiter((c.score for c in head), dtype=np.float64, count=len(head))
        lo, hi = float(score.min()), float(score.max())
        norm = (score - lo) / (hi - lo) if hi > lo else np.ones_like(score)
        _, first = np.unique(item, return_index=True)
        first.sort()
        names.append(name)
        items.append(item[first])
        parts.append(policy.weight(name) * norm[first])
        reasons.extend(head[i].reason for i in first.tolist())
    if not names:
        return []

    item = np.concatenate(items)
    part = np.concatenate(parts)
    channel = np.repeat(np.arange(len(names)), [a.size for a in items])
    uniq, inverse = np.unique(item, return_inverse=True)
    total = np.bincount(inverse, weights=part, minlength=uniq.size)
    # Per item, the entry with the largest part (ties: the earlier channel) gives the reason.
    by_part = np.lexsort((channel, -part, inverse))
    group_start = np.flatnonzero(np.r_[True, inverse[by_part][1:] != inverse[by_part][:-1]])
    best_entry = by_part[group_start]  # indexed like uniq
    found_by = np.zeros(uniq.size, dtype=np.int64)
    np.bitwise_or.at(found_by, inverse, 1 << channel)

    keep = np.lexsort((uniq, -total))[: policy.budget]
    sets = {m: tuple(n for c, n in enumerate(names) if m >> c & 1) for m in set(found_by[keep].tolist())}
    return [
        Candidate(item=i, score=sc, channels=list(sets[m]), reason=reasons[entry])
        for i, sc, m, entry in zip(
            uniq[keep].tolist(),
            total[keep].tolist(),
            found_by[keep].tolist(),
            best_entry[keep].tolist(),
            strict=True,
        )
    ]
