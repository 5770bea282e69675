"""The live catalogue's overlay in the state store's sqlite file: the single-machine implementation of
``ItemStore``.

Two tables beside the user state and the merchandising rules::

    catalog_items    item_id (key), body (the item as JSON, CatalogItem.to_row), updated_at
    catalog_version  one row: epoch (random, set when the table is made), n (writes that changed something)

Every write that changes an item bumps ``n`` in the same ``BEGIN IMMEDIATE`` transaction, so a reader that
sees the version it last saw knows the items are those it last listed. The epoch makes the token of a
recreated file differ from the old file's, even at the same count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from shoprec.adapters.item_rows import decode, encode
from shoprec.adapters.local.sqlite_state import thread_connection, write_transaction
from shoprec.errors import BackendUnavailableError
from shoprec.items import CatalogItem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_items (
    item_id    TEXT PRIMARY KEY,
    body       TEXT NOT NULL,  -- the item as JSON (CatalogItem.to_row)
    updated_at REAL NOT NULL   -- unix seconds
);
CREATE TABLE IF NOT EXISTS catalog_version (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    epoch TEXT NOT NULL,
    n     INTEGER NOT NULL
);
"""
_UPSERT = (
    "INSERT INTO catalog_items (item_id, body, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (item_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at"
)
BUSY_TIMEOUT_MS = 5_000


class SqliteItemStore:
    """Overlay items in the sqlite file ``path`` (the state store's, in WAL mode), one connection per
    thread. Each write is one ``BEGIN IMMEDIATE`` transaction: it reads the stored item, writes only when
    the content differs, and bumps the version with it.

    A stored row that no longer reads as an item reads as a bare tombstone of its id (and is logged; see
    :func:`shoprec.adapters.item_rows.decode`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO catalog_version (id, epoch, n) VALUES (0, ?, 0)",
                (uuid.uuid4().hex[:12],),
            )
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: cannot open the database: {exc}") from exc

    def put(self, item: CatalogItem) -> bool:
        new = dataclasses.replace(item, delisted=False)
        with self._transaction() as conn:
            old = self._stored(conn, item.item_id)
            if old is None or old.content() != new.content():
                self._write(conn, dataclasses.replace(new, updated_at=self._clock()))
        return old is None

    def delist(self, item_id: str) -> bool:
        with self._transaction() as conn:
            old = self._stored(conn, item_id)
            if old is not None and old.delisted:
                return False
            tombstone = old or CatalogItem(item_id)
            self._write(conn, dataclasses.replace(tombstone, delisted=True, updated_at=self._clock()))
        return True

    def get(self, item_id: str) -> CatalogItem | None:
        items = _parse(self._read("SELECT item_id, body FROM catalog_items WHERE item_id = ?", (item_id,)))
        return items[0] if items else None

    def list(self) -> list[CatalogItem]:
        return _parse(self._read("SELECT item_id, body FROM catalog_items ORDER BY item_id", ()))

    def version(self) -> str:
        rows = self._read("SELECT epoch, n FROM catalog_version WHERE id = 0", ())
        if not rows:
            raise BackendUnavailableError(f"{self.describe()}: the version row is missing")
        epoch, n = rows[0]
        return f"{epoch}.{n}"

    def describe(self) -> str:
        return f"sqlite:///{self.path}#catalog_items"

    @staticmethod
    def _stored(conn: sqlite3.Connection, item_id: str) -> CatalogItem | None:
        row = conn.execute("SELECT body FROM catalog_items WHERE item_id = ?", (item_id,)).fetchone()
        return decode(item_id, str(row[0])) if row else None

    @staticmethod
    def _write(conn: sqlite3.Connection, item: CatalogItem) -> None:
        conn.execute(_UPSERT, (item.item_id, encode(item), item.updated_at))
        conn.execute("UPDATE catalog_version SET n = n + 1 WHERE id = 0")

    def _read(self, sql: str, args: tuple[str, ...]) -> Sequence[tuple[str, str]]:
        try:
            return [(str(a), str(b)) for a, b in self._conn().execute(sql, args).fetchall()]
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"{self.describe()}: read failed: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        return thread_connection(self._local, self.path, self._busy_timeout_ms)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.describe())


def _parse(rows: Sequence[tuple[str, str]]) -> list[CatalogItem]:
    return [item for item in (decode(item_id, body) for item_id, body in rows) if item is not None]
