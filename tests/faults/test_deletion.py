"""DELETE /v1/users/{id}: 2xx only when every store is clean, one audit record per deletion naming the user
by a keyed hash, and no copy of the deleted rows left in the sqlite files.

The app is the real one over the real sqlite store and a real redis-server behind a :class:`FaultProxy`
(the cache is a plain ``RedisCache`` with a short timeout, so that each test sees the cache's own failure).
"""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.faults.proxy import FaultProxy, Mode
from tests.unit.api_fakes import assert_problem
from tests.unit.fakes import FakeRanker

from shoprec import observability
from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.domain import Event, EventType
from shoprec.services.events import AUDIT_EVENT, user_hash
from shoprec.settings import Settings

CACHE_TIMEOUT_S = 0.1


@dataclass
class App:
    client: TestClient
    db: Path
    proxy: FaultProxy
    audit: io.StringIO

    def add_views(self, user: str, items: list[str]) -> None:
        events = [
            {"event_id": f"{user}-e{n}", "user_id": user, "item_id": item, "type": "view"}
            for n, item in enumerate(items)
        ]
        assert self.client.post("/v1/events", json={"events": events}).status_code == 200

    def recommend(self, user: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/recommendations/{user}?k=5")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def rows_of(self, user: str) -> int:
        with sqlite3.connect(self.db) as conn:
            return sum(
                conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = ?", (user,)).fetchone()[0]
                for table in ("user_items", "applied_events")
            )

    def audit_records(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.audit.getvalue().splitlines() if line.strip()]
        return [line for line in lines if line.get("audit") == AUDIT_EVENT]


@pytest.fixture
def deletion_app(
    fault_bundle_dir: Path, fault_redis_proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[App]:
    db = tmp_path / "state.db"
    state = SqliteUserStateStore(db)
    cache = RedisCache(
        fault_redis_proxy.url("redis", "/0"),
        prefix=f"del-{uuid.uuid4().hex[:8]}:",
        socket_timeout_s=CACHE_TIMEOUT_S,
    )
    container = build_container(
        Settings(artifacts=str(fault_bundle_dir)), state=state, cache=cache, ranker=FakeRanker()
    )
    audit = io.StringIO()
    monkeypatch.setattr(observability.logger.registered_handler, "stream", audit)
    yield App(TestClient(create_app(container)), db, fault_redis_proxy, audit)
    cache.close()
    state.close()


def test_a_deletion_is_acknowledged_with_one_audit_record_naming_the_user_by_hash(deletion_app: App) -> None:
    user = f"shopper-{uuid.uuid4().hex[:8]}"
    deletion_app.add_views(user, ["p0", "p5"])
    assert not deletion_app.recommend(user)["cached"]
    assert deletion_app.recommend(user)["cached"]

    assert deletion_app.client.delete(f"/v1/users/{user}").status_code == 204
    assert deletion_app.rows_of(user) == 0
    after = deletion_app.recommend(user)
    assert not after["cached"]
    assert set(after["items"][0]["channels"]) == {"popularity"}  # cold start: nothing personal is left
    (record,) = deletion_app.audit_records()
    assert record["user_hash"] == user_hash(user)
    assert record["outcome"] == "deleted"
    assert record["state_removed"] is True
    assert record["cached_lists"] == 1
    assert user not in deletion_app.audit.getvalue()


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
def test_a_deletion_the_cache_cannot_take_is_503_and_a_retry_finishes_it(
    deletion_app: App, fault: Mode
) -> None:
    user = f"shopper-{uuid.uuid4().hex[:8]}"
    deletion_app.add_views(user, ["p0", "p5"])
    personal = deletion_app.recommend(user)["items"]

    deletion_app.proxy.set_mode(fault)
    body = assert_problem(deletion_app.client.delete(f"/v1/users/{user}"), 503)
    assert body["type"] == "urn:shoprec:problem:backend-unavailable"
    assert deletion_app.rows_of(user) == 0  # the state is gone all the same
    failed = deletion_app.audit_records()[-1]
    assert (failed["outcome"], failed["failed_step"], failed["state_removed"]) == ("failed", "cache", True)

    deletion_app.proxy.set_mode("pass")
    # Not acknowledged, so the old list may still be served: that is what the retry is for.
    assert deletion_app.recommend(user)["items"] == personal
    assert_problem(deletion_app.client.delete(f"/v1/users/{user}"), 404, "user_id")  # already deleted
    after = deletion_app.recommend(user)
    assert not after["cached"]
    assert after["items"] != personal
    assert deletion_app.audit_records()[-1]["outcome"] == "nothing_stored"
    assert user not in deletion_app.audit.getvalue()


def test_a_deleted_users_rows_leave_no_copy_in_the_database_or_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteUserStateStore(db)
    victim, bystander = f"victim-{uuid.uuid4().hex}", f"bystander-{uuid.uuid4().hex}"
    secrets = [victim, f"{victim}-e0", f"{victim}-e2", json.dumps(["p3", "p7", "p9"])]
    store.apply_events([event(victim, item, n) for n, item in enumerate(["p3", "p7", "p9"])])
    store.apply_events([event(bystander, item, n) for n, item in enumerate(["p1", "p2"])])

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())

    assert all(s.encode() in on_disk() for s in secrets)  # the check can see them while they are stored
    assert store.delete_user(victim)
    left = [s for s in secrets if s.encode() in on_disk()]
    assert left == []
    assert bystander.encode() in on_disk()
    assert store.recent_items(bystander) == ["p1", "p2"]
    store.close()


def event(user: str, item: str, n: int) -> Event:
    return Event(
        event_id=f"{user}-e{n}",
        user_id=user,
        item_id=item,
        type=EventType.VIEW,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
    )
