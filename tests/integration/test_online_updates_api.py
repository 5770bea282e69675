"""Online updates through the HTTP API on the real Scientific bundle, local settings (sqlite state): many
users view item A then item B, two items the bundle does not relate, and without a retrain B shows up in
A's similar items and A in B's, and both rise in a new user's (cold-start) list, once the refresh interval
has passed. Time is the container's injected clock, never a sleep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.unit.fakes import FakeClock

from shoprec.api.app import create_app
from shoprec.artifacts import Bundle
from shoprec.container import build_container
from shoprec.settings import Settings

T0 = 1_800_000_000.0
USERS = 16  # the backward pair (B -> A) weighs a quarter: 16 users make 4 > min_count


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def unrelated_pair(bundle: Bundle) -> tuple[str, str]:
    """A well-connected item A and an item B that is neither among A's neighbours nor A among B's."""
    indices = bundle.itemcf_indices
    a = int(np.argmax((indices >= 0).sum(axis=1)))
    for b in np.argsort(bundle.popularity, kind="stable").tolist():
        if b != a and b not in indices[a] and a not in indices[b] and (indices[b] >= 0).any():
            return bundle.item_ids[a], bundle.item_ids[b]
    raise AssertionError("no unrelated pair in the bundle")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def client(bundle_dir: Path, tmp_path: Path, clock: FakeClock) -> TestClient:
    settings = Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path / 'state.db'}")
    return TestClient(create_app(build_container(settings, stats_clock=clock)))


def test_items_viewed_together_become_similar_and_trend_without_a_retrain(
    client: TestClient, bundle: Bundle, clock: FakeClock
) -> None:
    a, b = unrelated_pair(bundle)
    assert b not in ids(client.get(f"/v1/items/{a}/similar", params={"k": 10}))
    assert a not in ids(client.get(f"/v1/items/{b}/similar", params={"k": 10}))
    cold_before = ids(client.get("/v1/recommendations/newcomer-1", params={"k": 10}))
    assert b not in cold_before

    events = [
        {"event_id": f"co-{u}-{n}", "user_id": f"co-viewer-{u}", "item_id": item, "type": "view"}
        for u in range(USERS)
        for n, item in enumerate((a, b))
    ]
    assert client.post("/v1/events", json={"events": events}).status_code == 200

    clock.advance(Settings().online_refresh_s)
    similar = client.get(f"/v1/items/{a}/similar", params={"k": 10}).json()["items"]
    hit = next(item for item in similar if item["item_id"] == b)
    assert hit["channels"] == ["itemcf"]
    assert a in ids(client.get(f"/v1/items/{b}/similar", params={"k": 10}))
    cold_after = ids(client.get("/v1/recommendations/newcomer-2", params={"k": 10}))
    assert {a, b} <= set(cold_after)
