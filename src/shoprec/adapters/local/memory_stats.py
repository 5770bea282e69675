"""Interaction counts in dicts: the ``InteractionStatsStore`` of a process that keeps no state (tests, and
the graph built around a state store passed in ready)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from shoprec.adapters.interaction_stats import (
    DEFAULT_MAX_NEIGHBOURS,
    Decay,
    check_weights,
    needs_pruning,
    top,
)
from shoprec.errors import BackendUnavailableError


class MemoryInteractionStats:
    """Forward-decayed sums per (item, epoch) and per epoch (``shoprec.adapters.interaction_stats``) in
    this process only. ``fail = True`` makes every call raise ``BackendUnavailableError``; ``reads`` counts
    the calls to :meth:`neighbours` and :meth:`trending`."""

    def __init__(self, *, decay: Decay | None = None, max_neighbours: int = DEFAULT_MAX_NEIGHBOURS) -> None:
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.decay = decay or Decay()
        self.max_neighbours = max_neighbours
        self._lists: dict[tuple[str, int], dict[str, float]] = {}
        self._trending: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()
        self.fail = False
        self.reads = 0

    def record(
        self, pairs: Mapping[str, Mapping[str, float]], items: Mapping[str, float], *, at: float
    ) -> None:
        self._check()
        check_weights(pairs, items)
        epoch = self.decay.epoch(at)
        with self._lock:
            for item, row in pairs.items():
                weights = self._lists.setdefault((item, epoch), {})
                for other, w in row.items():
                    weights[other] = weights.get(other, 0.0) + self.decay.stored(w, at)
                if needs_pruning(len(weights), self.max_neighbours):
                    self._lists[(item, epoch)] = top(weights, self.max_neighbours)
            counts = self._trending.setdefault(epoch, {})
            for item, w in items.items():
                counts[item] = counts.get(item, 0.0) + self.decay.stored(w, at)
            # Epochs before the one a read still combines are worth nothing any more: drop them.
            for key in [k for k in self._lists if k[1] < epoch - 1]:
                del self._lists[key]
            for old in [e for e in self._trending if e < epoch - 1]:
                del self._trending[old]

    def neighbours(self, item_ids: Sequence[str], *, at: float) -> dict[str, dict[str, float]]:
        self._check()
        self.reads += 1
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for item in dict.fromkeys(item_ids):
                epochs = [e for e in self.decay.live_epochs(at) if (item, e) in self._lists]
                row = self.decay.combine({e: self._lists[(item, e)] for e in epochs}, at)
                if row:
                    out[item] = top(row, self.max_neighbours)
        return out

    def trending(self, *, at: float) -> dict[str, float]:
        self._check()
        self.reads += 1
        with self._lock:
            return self.decay.combine(self._trending, at)

    def describe(self) -> str:
        return "memory://"

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailableError("interaction stats store down (memory)")
