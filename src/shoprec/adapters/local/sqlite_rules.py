"""Merchandising rules in the state store's sqlite file (table ``merch_rules``): the single-machine
implementation of ``RuleStore``."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from shoprec.adapters.local.sqlite_state import thread_connection, write_transaction
from shoprec.errors import BackendUnavailableError
from shoprec.merchandising import MerchRule

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS merch_rules (
    rule_id    TEXT PRIMARY KEY,
    body       TEXT NOT NULL,  -- the rule as JSON (MerchRule)
    updated_at REAL NOT NULL   -- unix seconds
);
"""
_UPSERT = (
    "INSERT INTO merch_rules (rule_id, body, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (rule_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at"
)
BUSY_TIMEOUT_MS = 5_000


class SqliteRuleStore:
    """Rules in the sqlite file ``path`` (the state store's, in WAL mode), one connection per thread.
    Each write is one ``BEGIN IMMEDIATE`` transaction, so ``put`` knows whether it created the rule."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path).expanduser().resolve()
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: cannot open the database: {exc}") from exc

    def put(self, rule: MerchRule) -> bool:
        with self._transaction() as conn:
            existed = conn.execute("SELECT 1 FROM merch_rules WHERE rule_id = ?", (rule.rule_id,)).fetchone()
            conn.execute(_UPSERT, (rule.rule_id, rule.to_json(), time.time()))
        return existed is None

    def get(self, rule_id: str) -> MerchRule | None:
        rows = self._read("SELECT rule_id, body FROM merch_rules WHERE rule_id = ?", (rule_id,))
        rules = _parse(rows)
        return rules[0] if rules else None

    def list(self) -> list[MerchRule]:
        return _parse(self._read("SELECT rule_id, body FROM merch_rules ORDER BY rule_id", ()))

    def delete(self, rule_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM merch_rules WHERE rule_id = ?", (rule_id,)).rowcount > 0

    def describe(self) -> str:
        return f"sqlite:///{self.path}#merch_rules"

    def _read(self, sql: str, args: tuple[str, ...]) -> Sequence[tuple[str, str]]:
        try:
            return [(str(a), str(b)) for a, b in self._conn().execute(sql, args).fetchall()]
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"{self.describe()}: read failed: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        return thread_connection(self._local, self.path, self._busy_timeout_ms)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.describe())


def _parse(rows: Sequence[tuple[str, str]]) -> list[MerchRule]:
    rules = []
    for rule_id, body in rows:
        try:
            rules.append(MerchRule.from_json(body))
        except ValidationError as exc:
            log.warning("skipping stored rule %r that no longer validates: %s", rule_id, exc)
    return rules
