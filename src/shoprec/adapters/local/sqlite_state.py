"""User state in an embedded sqlite database: the single-machine implementation of ``UserStateStore``."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from shoprec.adapters import plan_events
from shoprec.domain import MAX_RECENT_ITEMS, Appended, ApplyResult, Event
from shoprec.errors import BackendUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_items (
    user_id    TEXT PRIMARY KEY,
    items      TEXT NOT NULL,  -- JSON list of item ids, oldest first
    updated_at REAL NOT NULL   -- unix seconds
);
CREATE TABLE IF NOT EXISTS applied_events (
    user_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
"""
_PER_USER_KEY = "PRIMARY KEY (user_id, event_id)"
_MIGRATE_GLOBAL_EVENT_IDS = """
ALTER TABLE applied_events RENAME TO applied_events_global_ids;
DROP INDEX IF EXISTS applied_events_by_user;
CREATE TABLE applied_events (
    user_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
INSERT INTO applied_events (user_id, event_id, applied_at)
    SELECT user_id, event_id, applied_at FROM applied_events_global_ids;
DROP TABLE applied_events_global_ids;
"""
"""Databases written before event ids were per user had ``event_id`` alone as the key: copied over as they are
(ids unique across users are unique per user too)."""

_SELECT_ITEMS = "SELECT items FROM user_items WHERE user_id = ?"
_INSERT_EVENT = "INSERT OR IGNORE INTO applied_events (event_id, user_id, applied_at) VALUES (?, ?, ?)"
_UPSERT_ITEMS = (
    "INSERT INTO user_items (user_id, items, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET items = excluded.items, updated_at = excluded.updated_at"
)

BUSY_TIMEOUT_MS = 5_000
"""How long a writer waits for another writer's transaction before the store reports itself unavailable."""


class SqliteUserStateStore:
    """Users' recent items and applied event ids in a sqlite file (WAL mode).

    Every thread gets its own connection (FastAPI runs sync routes in a thread pool and sqlite connections
    must not be shared across threads); WAL lets readers proceed while one writer holds the lock, and each
    ``apply_events`` call is one ``BEGIN IMMEDIATE`` transaction, so a batch is applied entirely or not
    at all, also across processes sharing the file.

    Event ids are unique per user, as in the DynamoDB store: the same id sent for two users is two events.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            self._migrate(conn)
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: cannot open the database: {exc}") from exc

    def recent_items(self, user_id: str) -> list[str]:
        try:
            row = self._conn().execute(_SELECT_ITEMS, (user_id,)).fetchone()
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"{self.describe()}: read failed: {exc}") from exc
        return list(json.loads(row[0])) if row else []

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        plan = plan_events(events)
        applied = 0
        duplicates = plan.duplicates_in_batch
        changed: dict[str, Appended] = {}
        now = time.time()
        with self._transaction() as conn:
            for user_id, user_events in plan.by_user.items():
                new_items: list[str] = []
                for event in user_events:
                    cur = conn.execute(_INSERT_EVENT, (event.event_id, user_id, now))
                    if cur.rowcount == 0:
                        duplicates += 1
                    else:
                        new_items.append(event.item_id)
                if not new_items:
                    continue
                row = conn.execute(_SELECT_ITEMS, (user_id,)).fetchone()
                before = json.loads(row[0]) if row else []
                items = before + new_items
                conn.execute(_UPSERT_ITEMS, (user_id, json.dumps(items[-MAX_RECENT_ITEMS:]), now))
                applied += len(new_items)
                changed[user_id] = Appended(tuple(before), tuple(new_items))
        return ApplyResult(applied=applied, duplicates=duplicates, users=frozenset(changed), appended=changed)

    def delete_user(self, user_id: str) -> bool:
        """Delete the user's rows so that no copy stays in the files: ``secure_delete`` (set on every
        connection) overwrites the freed bytes with zeros, and a ``TRUNCATE`` checkpoint then copies the
        zeroed pages into the database file and empties the WAL, which still held the rows as they were
        written. Raises ``BackendUnavailableError`` if the checkpoint cannot finish (another connection
        kept reading an old snapshot past the busy timeout): the rows are deleted, their old copies are
        not yet, and a retry, returning ``False``, checkpoints again."""
        with self._transaction() as conn:
            states = conn.execute("DELETE FROM user_items WHERE user_id = ?", (user_id,)).rowcount
            events = conn.execute("DELETE FROM applied_events WHERE user_id = ?", (user_id,)).rowcount
        self._truncate_wal()
        return states + events > 0

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _truncate_wal(self) -> None:
        try:
            busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise BackendUnavailableError(
                f"{self.describe()}: checkpoint after a deletion failed: {exc}"
            ) from exc
        if busy:
            raise BackendUnavailableError(
                f"{self.describe()}: deleted, but the WAL could not be checkpointed (busy); retry"
            )

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Re-key an ``applied_events`` table of the earlier schema, in one transaction (all or nothing)."""
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'applied_events'"
        ).fetchone()
        if row is None or _PER_USER_KEY in row[0]:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _MIGRATE_GLOBAL_EVENT_IDS.split(";")):
                conn.execute(statement)
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (the store is unusable afterwards)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit transactions, so BEGIN IMMEDIATE below is the only one.
            # check_same_thread=False only so that close() may close it; otherwise one thread uses it.
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Durable enough with WAL (a power loss may drop the last commits, never corrupt the file).
            conn.execute("PRAGMA synchronous = NORMAL")
            # Deleted and overwritten rows are zeroed on their pages (and freed pages wiped), so that a
            # deleted user's data is gone from the file, not merely unlinked (see delete_user).
            conn.execute("PRAGMA secure_delete = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.describe())


def thread_connection(local: threading.local, path: str | Path, busy_timeout_ms: float) -> sqlite3.Connection:
    """This thread's connection to ``path``, opened on first use and kept in ``local``: autocommit (no
    implicit transactions, :func:`write_transaction` begins them) and waiting ``busy_timeout_ms`` for a lock.
    The rules, items and interaction-stats stores share it; the state store opens its own (more pragmas)."""
    conn: sqlite3.Connection | None = getattr(local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        local.conn = conn
    return conn


@contextmanager
def write_transaction(connect: Callable[[], sqlite3.Connection], where: str) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT`` on ``connect()``'s connection: rolled back when the body
    raises, and sqlite errors turned into ``BackendUnavailableError`` naming ``where`` (the store).
    Shared by the sqlite stores that live in the state file (user state, merchandising rules)."""
    try:
        conn = connect()
        # IMMEDIATE takes the write lock up front: two writers cannot both read the old sequence and
        # then race to write it back.
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise BackendUnavailableError(f"{where}: cannot start a transaction: {exc}") from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        _rollback(conn)
        raise BackendUnavailableError(f"{where}: write failed: {exc}") from exc
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise BackendUnavailableError(f"{where}: commit failed: {exc}") from exc


def _rollback(conn: sqlite3.Connection) -> None:
    # sqlite may already have rolled back on its own (e.g. after SQLITE_FULL); that is not a second error.
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
