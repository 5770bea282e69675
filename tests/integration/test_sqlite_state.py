"""SqliteUserStateStore beyond the shared contract: durability, WAL, threads, errors."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.domain import Event, EventType
from shoprec.errors import BackendUnavailableError

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def event(event_id: str, user: str, item: str, seconds: float = 0.0) -> Event:
    return Event(event_id, user, item, EventType.CLICK, T0 + timedelta(seconds=seconds))


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteUserStateStore(path)
    first.apply_events([event("e1", "u1", "10"), event("e2", "u1", "11", 1)])
    first.close()
    second = SqliteUserStateStore(path)
    assert second.recent_items("u1") == ["10", "11"]
    assert second.apply_events([event("e1", "u1", "10")]).duplicates == 1
    second.close()


def test_the_database_uses_write_ahead_logging(tmp_path: Path) -> None:
    store = SqliteUserStateStore(tmp_path / "state.db")
    with sqlite3.connect(tmp_path / "state.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_describe_is_a_sqlite_url_with_the_absolute_path(tmp_path: Path) -> None:
    store = SqliteUserStateStore(tmp_path / "sub" / "state.db")
    assert store.describe() == f"sqlite:///{(tmp_path / 'sub' / 'state.db').resolve()}"
    store.close()


def test_concurrent_writers_from_many_threads_lose_no_items(tmp_path: Path) -> None:
    store = SqliteUserStateStore(tmp_path / "state.db")
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(10):
                store.apply_events([event(f"t{t}-{i}", "shared", f"{t}-{i}", i)])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    items = store.recent_items("shared")
    assert sorted(items) == sorted(f"{t}-{i}" for t in range(4) for i in range(10))
    for t in range(4):  # each writer's own items stay in its order
        assert [i for i in items if i.startswith(f"{t}-")] == [f"{t}-{i}" for i in range(10)]
    store.close()


def test_a_batch_that_fails_midway_leaves_no_partial_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteUserStateStore(path)
    store.apply_events([event("e1", "u1", "1"), event("e2", "u2", "2")])
    with sqlite3.connect(path) as raw:  # damage u2's row so that the batch fails after u1 is written
        raw.execute("UPDATE user_items SET items = 'not json' WHERE user_id = 'u2'")
    with pytest.raises(ValueError, match="Expecting value"):
        store.apply_events([event("e3", "u1", "3", 1), event("e4", "u2", "4", 1)])
    assert store.recent_items("u1") == ["1"]
    assert store.apply_events([event("e3", "u1", "3", 1)]).applied == 1  # e3 was not recorded either
    store.close()


def test_an_unusable_path_is_reported_as_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(BackendUnavailableError, match="sqlite:///"):
        SqliteUserStateStore(tmp_path / "a-directory")


def test_a_database_of_the_earlier_schema_is_rekeyed_per_user_and_keeps_everything(tmp_path: Path) -> None:
    """Databases written when event ids were unique across users (key: event_id alone) open with their
    items and applied ids intact, and then take the same id from another user."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE user_items (user_id TEXT PRIMARY KEY, items TEXT NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE applied_events (
                event_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, applied_at REAL NOT NULL
            );
            CREATE INDEX applied_events_by_user ON applied_events (user_id);
            INSERT INTO user_items VALUES ('u1', '["10", "11"]', 1.0);
            INSERT INTO applied_events VALUES ('e1', 'u1', 1.0), ('e2', 'u1', 1.0);
            """
        )
    conn.close()
    store = SqliteUserStateStore(path)
    assert store.recent_items("u1") == ["10", "11"]
    assert store.apply_events([event("e1", "u1", "10"), event("e2", "u1", "11")]).duplicates == 2
    assert store.apply_events([event("e1", "u2", "12")]).applied == 1
    store.close()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = conn.execute(
            "SELECT user_id, event_id FROM applied_events ORDER BY user_id, event_id"
        ).fetchall()
    conn.close()
    assert tables == {"user_items", "applied_events"}
    assert rows == [("u1", "e1"), ("u1", "e2"), ("u2", "e1")]
    SqliteUserStateStore(path).close()  # opening a migrated file again is a no-op
