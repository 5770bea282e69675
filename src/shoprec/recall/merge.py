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

from shoprec.recall.channels import EMBEDDING, ITEMCF, POPULARITY, Recalled

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


@dataclass(frozen=True, eq=False)
class Merged:
    """The merged candidate list: ``items`` and ``scores`` ``[C]``, best first; for the merged lists
    ``names`` ``[L]``: ``found[c, l]`` (list ``l`` holds item ``c``), ``ranks[c, l]`` (its 0-based position
    there, ``-1`` when absent) and ``best[c]`` (the list contributing most to the score)."""

    names: tuple[str, ...]
    items: IntArray
    scores: FloatArray
    found: npt.NDArray[np.bool_]
    ranks: IntArray
    best: IntArray

    @property
    def size(self) -> int:
        return int(self.items.size)

    def channels(self, row: int) -> list[str]:
        """The names of the lists that found candidate ``row``, in list order."""
        return [name for name, hit in zip(self.names, self.found[row].tolist(), strict=True) if hit]


def merge_candidates(lists: Sequence[tuple[str, Recalled]], policy: MergePolicy | None = None) -> Merged:
    """Merge ``(channel name, candidates best first)`` pairs as described in the module docstring.

    Each channel's list is cut to its quota first; a channel listing an item twice counts it once (at its
    first position); a channel named twice counts once.
    """
    policy = policy or MergePolicy()
    names: list[str] = []
    items: list[IntArray] = []
    parts: list[FloatArray] = []
    positions: list[IntArray] = []
    for name, recalled in lists:
        quota = policy.quota(name)
        item, score = recalled.items[:quota], recalled.scores[:quota].astype(np.float64)
        if item.size == 0 or name in names:
            continue
        lo, hi = float(score.min()), float(score.max())
        norm = (score - lo) / (hi - lo) if hi > lo else np.ones_like(score)
        _, first = np.unique(item, return_index=True)
        first.sort()
        names.append(name)
        items.append(item[first].astype(np.int64, copy=False))
        parts.append(policy.weight(name) * norm[first])
        positions.append(first.astype(np.int64))
    if not names:
        empty = np.zeros(0, dtype=np.int64)
        return Merged(
            (), empty, np.zeros(0), np.zeros((0, 0), dtype=np.bool_), np.zeros((0, 0), np.int64), empty
        )

    item = np.concatenate(items)
    part = np.concatenate(parts)
    position = np.concatenate(positions)
    channel = np.repeat(np.arange(len(names)), [a.size for a in items])
    uniq, inverse = np.unique(item, return_inverse=True)
    total: FloatArray = np.bincount(inverse, weights=part, minlength=uniq.size).astype(np.float64)
    # Per item, the entry with the largest part (ties: the earlier channel) names the best channel.
    by_part = np.lexsort((channel, -part, inverse))
    group_start = np.flatnonzero(np.r_[True, inverse[by_part][1:] != inverse[by_part][:-1]])
    best = channel[by_part[group_start]]  # indexed like uniq
    ranks = np.full((uniq.size, len(names)), -1, dtype=np.int64)
    ranks[inverse, channel] = position

    keep = np.lexsort((uniq, -total))[: policy.budget]
    return Merged(
        names=tuple(names),
        items=uniq[keep],
        scores=total[keep],
        found=ranks[keep] >= 0,
        ranks=ranks[keep],
        best=best[keep].astype(np.int64),
    )
