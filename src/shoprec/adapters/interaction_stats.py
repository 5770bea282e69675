"""What the three ``InteractionStatsStore`` adapters share: the time decay they store counts under, how a
neighbour list is kept bounded, and :func:`interaction_stats_for`, the store beside a state DSN.

Decay without rewriting
-----------------------
A count that decays with half-life ``h`` would need a read-modify-write per event if it were stored as
"value at time t". Instead every weight is stored *forward-decayed* against a landmark: a weight ``w``
observed at ``t`` is added as ``w * 2 ** ((t - L) / h)``, so plain additions (DynamoDB's ``ADD``) build
the sum, and the value at ``now`` is the stored sum times ``2 ** -((now - L) / h)``. The landmark ``L`` is
the start of the *epoch* holding ``t`` (epochs last ``EPOCH_HALF_LIVES`` half-lives), which keeps the
stored numbers below ``2 ** EPOCH_HALF_LIVES`` times the raw counts. Reads combine the current epoch
and the one before; an older epoch is worth at most ``2 ** -EPOCH_HALF_LIVES`` (0.4 %) of what it was
and is dropped (the adapters delete it, DynamoDB by TTL), which bounds the data to two epochs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shoprec.ports import InteractionStatsStore

EPOCH_HALF_LIVES: Final = 8
"""Length of an epoch in half-lives: stored weights grow by at most ``2 ** 8`` within one."""
DEFAULT_HALF_LIFE_S: Final = 86_400.0
DEFAULT_MAX_NEIGHBOURS: Final = 20
"""Neighbours kept per item and epoch; a list is cut back to this many when it reaches twice as many."""


@dataclass(frozen=True)
class Decay:
    """The forward decay of the module docstring for one half-life (seconds)."""

    half_life_s: float = DEFAULT_HALF_LIFE_S

    def __post_init__(self) -> None:
        if not self.half_life_s > 0:
            raise ValueError(f"half_life_s must be > 0, got {self.half_life_s}")

    @property
    def epoch_s(self) -> float:
        return self.half_life_s * EPOCH_HALF_LIVES

    def epoch(self, at: float) -> int:
        """The epoch holding ``at``."""
        return math.floor(at / self.epoch_s)

    def live_epochs(self, at: float) -> tuple[int, int]:
        """The epochs a read at ``at`` combines: the one before and the current one."""
        current = self.epoch(at)
        return current - 1, current

    def stored(self, weight: float, at: float) -> float:
        """What to add in ``epoch(at)`` for ``weight`` observed at ``at``."""
        return weight * math.pow(2.0, (at - self.epoch(at) * self.epoch_s) / self.half_life_s)

    def factor(self, epoch: int, at: float) -> float:
        """The value at ``at`` of one stored unit of ``epoch``."""
        return math.pow(2.0, -(at - epoch * self.epoch_s) / self.half_life_s)

    def combine(self, by_epoch: Mapping[int, Mapping[str, float]], at: float) -> dict[str, float]:
        """The decayed values at ``at`` of the stored sums of the live epochs in ``by_epoch``."""
        out: dict[str, float] = {}
        for epoch in self.live_epochs(at):
            values = by_epoch.get(epoch)
            if not values:
                continue
            factor = self.factor(epoch, at)
            for key, value in values.items():
                out[key] = out.get(key, 0.0) + value * factor
        return out


def weakest(weights: Mapping[str, float], keep: int) -> list[str]:
    """The members of ``weights`` beyond the ``keep`` heaviest (ties: the smaller id stays)."""
    order = sorted(weights, key=lambda k: (-weights[k], k))
    return order[keep:]


def top(weights: Mapping[str, float], keep: int) -> dict[str, float]:
    """The ``keep`` heaviest of ``weights`` (ties: the smaller id)."""
    order = sorted(weights, key=lambda k: (-weights[k], k))[:keep]
    return {k: weights[k] for k in order}


def needs_pruning(size: int, max_neighbours: int) -> bool:
    """Whether a neighbour list of ``size`` members is cut back to ``max_neighbours``: when it reached
    twice as many, so that cutting costs one extra write per ``max_neighbours`` new members at most."""
    return size >= 2 * max_neighbours


def check_weights(pairs: Mapping[str, Mapping[str, float]], items: Mapping[str, float]) -> None:
    """Refuse negative or non-finite weights: decayed counts only grow."""
    values: Iterable[float] = [*items.values(), *(w for row in pairs.values() for w in row.values())]
    for w in values:
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weights must be finite and >= 0, got {w}")


def interaction_stats_for(
    dsn: str | None,
    *,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
    max_neighbours: int = DEFAULT_MAX_NEIGHBOURS,
    read_timeout_s: float | None = None,
) -> InteractionStatsStore:
    """The interaction counts beside the user state of ``dsn`` (same sqlite file, or same DynamoDB table
    under their own partitions); ``None``: in process only. ``read_timeout_s``: DynamoDB's reads, which
    serving makes on the request path (default: the store's)."""
    decay = Decay(half_life_s)
    if dsn is None:
        from shoprec.adapters.local.memory_stats import MemoryInteractionStats

        return MemoryInteractionStats(decay=decay, max_neighbours=max_neighbours)
    if dsn.startswith("dynamodb://"):
        from shoprec.adapters.aws.dynamodb_stats import DynamoDbInteractionStats

        table = dsn.removeprefix("dynamodb://")
        if read_timeout_s is None:
            return DynamoDbInteractionStats(table, decay=decay, max_neighbours=max_neighbours)
        return DynamoDbInteractionStats(
            table, decay=decay, max_neighbours=max_neighbours, read_timeout_s=read_timeout_s
        )
    if dsn.startswith("sqlite:///"):
        from shoprec.adapters.local.sqlite_stats import SqliteInteractionStats

        return SqliteInteractionStats(
            Path(dsn.removeprefix("sqlite:///")), decay=decay, max_neighbours=max_neighbours
        )
    raise ValueError(f"interaction stats: unknown backend {dsn!r}")
