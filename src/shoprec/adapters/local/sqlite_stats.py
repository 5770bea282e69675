"""Interaction counts in the state store's sqlite file (tables ``cooccurrence`` and ``trending``): the
single-machine implementation of ``InteractionStatsStore``."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shoprec.adapters.interaction_stats import (
    DEFAULT_MAX_NEIGHBOURS,
    Decay,
    check_weights,
    needs_pruning,
    top,
)
from shoprec.adapters.local.sqlite_state import thread_connection, write_transaction
from shoprec.errors import BackendUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cooccurrence (
    item      TEXT NOT NULL,
    epoch     INTEGER NOT NULL,
    neighbour TEXT NOT NULL,
    weight    REAL NOT NULL,  -- forward-decayed sum (shoprec.adapters.interaction_stats)
    PRIMARY KEY (item, epoch, neighbour)
);
CREATE TABLE IF NOT EXISTS trending (
    epoch  INTEGER NOT NULL,
    item   TEXT NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (epoch, item)
);
"""
_ADD_PAIR = (
    "INSERT INTO cooccurrence (item, epoch, neighbour, weight) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (item, epoch, neighbour) DO UPDATE SET weight = weight + excluded.weight"
)
_ADD_ITEM = (
    "INSERT INTO trending (epoch, item, weight) VALUES (?, ?, ?) "
    "ON CONFLICT (epoch, item) DO UPDATE SET weight = weight + excluded.weight"
)
_LIST = "SELECT neighbour, weight FROM cooccurrence WHERE item = ? AND epoch = ?"
_CUT = "DELETE FROM cooccurrence WHERE item = ? AND epoch = ? AND neighbour = ?"
BUSY_TIMEOUT_MS = 5_000


class SqliteInteractionStats:
    """Forward-decayed sums per (item, epoch, neighbour) and per (epoch, item) in the sqlite file ``path``
    (the state store's, WAL mode), one connection per thread. A :meth:`record` is one transaction; it cuts
    back the lists it made too long and drops the epochs no read combines any more."""

    def __init__(
        self,
        path: str | Path,
        *,
        decay: Decay | None = None,
        max_neighbours: int = DEFAULT_MAX_NEIGHBOURS,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.path = Path(path).expanduser().resolve()
        self.decay = decay or Decay()
        self.max_neighbours = max_neighbours
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: cannot open the database: {exc}") from exc

    def record(
        self, pairs: Mapping[str, Mapping[str, float]], items: Mapping[str, float], *, at: float
    ) -> None:
        check_weights(pairs, items)
        epoch = self.decay.epoch(at)
        stored = self.decay.stored
        with self._transaction() as conn:
            for item, row in pairs.items():
                conn.executemany(_ADD_PAIR, [(item, epoch, other, stored(w, at)) for other, w in row.items()])
                weights = dict(conn.execute(_LIST, (item, epoch)).fetchall())
                if needs_pruning(len(weights), self.max_neighbours):
                    kept = top(weights, self.max_neighbours)
                    conn.executemany(_CUT, [(item, epoch, o) for o in weights if o not in kept])
                conn.execute("DELETE FROM cooccurrence WHERE item = ? AND epoch < ?", (item, epoch - 1))
            conn.executemany(_ADD_ITEM, [(epoch, item, stored(w, at)) for item, w in items.items()])
            conn.execute("DELETE FROM trending WHERE epoch < ?", (epoch - 1,))

    def neighbours(self, item_ids: Sequence[str], *, at: float) -> dict[str, dict[str, float]]:
        wanted = list(dict.fromkeys(item_ids))
        if not wanted:
            return {}
        first, current = self.decay.live_epochs(at)
        marks = ",".join("?" * len(wanted))
        rows = self._read(
            f"SELECT item, epoch, neighbour, weight FROM cooccurrence "
            f"WHERE item IN ({marks}) AND epoch BETWEEN ? AND ?",
            (*wanted, first, current),
        )
        by_item: dict[str, dict[int, dict[str, float]]] = {}
        for item, epoch, neighbour, weight in rows:
            by_item.setdefault(str(item), {}).setdefault(int(epoch), {})[str(neighbour)] = float(weight)
        cap = self.max_neighbours
        return {item: top(self.decay.combine(by_epoch, at), cap) for item, by_epoch in by_item.items()}

    def trending(self, *, at: float) -> dict[str, float]:
        first, current = self.decay.live_epochs(at)
        rows = self._read(
            "SELECT epoch, item, weight FROM trending WHERE epoch BETWEEN ? AND ?", (first, current)
        )
        by_epoch: dict[int, dict[str, float]] = {}
        for epoch, item, weight in rows:
            by_epoch.setdefault(int(epoch), {})[str(item)] = float(weight)
        return self.decay.combine(by_epoch, at)

    def describe(self) -> str:
        return f"sqlite:///{self.path}#cooccurrence"

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn().execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"{self.describe()}: read failed: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        return thread_connection(self._local, self.path, self._busy_timeout_ms)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.describe())
