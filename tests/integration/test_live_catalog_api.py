"""The live catalogue through the HTTP API on the real Scientific catalogue, with the real sentence encoder.

A brand-new item is put; within a second of the 2xx it is found by a paraphrase of its title (none of its
title's words), listed among the similar items of a related item, recommended to a user who viewed that
item, and usable in events, in the process that wrote it and in a second process on the same state; a
delist hides it everywhere, and out-of-stock and price filters hold on every list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.settings import Settings

RELATED = "204"  # "AcuRite 00613 Humidity Monitor with Indoor Thermometer, Digital Hygrometer ..."
NEW = {
    "title": "ThermoPro TP50 Digital Hygrometer Indoor Thermometer Room Humidity Gauge",
    "brand": "ThermoPro",
    "categories": ["Industrial & Scientific", "Test, Measure & Inspect", "Temperature & Humidity"],
    "description": "Checks the air of a room every 10 seconds.",
    "price": 11.99,
}
PARAPHRASE = "gadget that tells how damp the air in my room is"


@pytest.fixture
def apps(bundle_dir: Path, tmp_path: Path) -> tuple[TestClient, TestClient]:
    """Two API processes (containers) on one state database, as two Lambda execution environments."""
    settings = Settings(artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path / 'state.db'}")
    return TestClient(create_app(build_container(settings))), TestClient(
        create_app(build_container(settings))
    )


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long ``check`` took to hold (polled), failing after ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not true within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_new_item_is_served_everywhere_within_a_second_and_a_delist_removes_it(
    apps: tuple[TestClient, TestClient],
) -> None:
    writer, other = apps
    assert other.get("/v1/search", params={"q": PARAPHRASE}).status_code == 200  # builds its index first
    event = {"event_id": "live-1", "user_id": "new-fan", "item_id": "new-hygro", "type": "view"}
    assert writer.post("/v1/events", json={"events": [event]}).status_code == 422  # not yet an item

    put = writer.put("/v1/items/new-hygro", json=NEW)
    assert put.status_code == 201, put.text
    assert put.json()["title"] == NEW["title"]
    assert writer.put("/v1/items/new-hygro", json=NEW).status_code == 200  # the same body: no change

    for client in (writer, other):
        within(
            1.0, lambda c=client: "new-hygro" in ids(c.get("/v1/search", params={"q": PARAPHRASE, "k": 3}))
        )
        assert "new-hygro" in ids(client.get(f"/v1/items/{RELATED}/similar", params={"k": 10}))
    found = writer.get("/v1/search", params={"q": PARAPHRASE, "k": 3}).json()["items"]
    hit = next(item for item in found if item["item_id"] == "new-hygro")
    assert "semantic" in hit["channels"]

    viewer = {"event_id": "live-2", "user_id": "hygro-viewer", "item_id": RELATED, "type": "view"}
    assert writer.post("/v1/events", json={"events": [viewer]}).status_code == 200
    assert "new-hygro" in ids(writer.get("/v1/recommendations/hygro-viewer", params={"k": 20}))
    assert writer.post("/v1/events", json={"events": [event]}).status_code == 200  # usable in events now
    only_new = writer.get("/v1/recommendations/new-fan", params={"k": 10})
    assert ids(only_new)
    assert not only_new.json()["degraded"]

    # Price filters see the new item's price (the Scientific items have none).
    assert ids(writer.get("/v1/search", params={"q": "hygrometer", "min_price": 10, "max_price": 12})) == [
        "new-hygro"
    ]
    assert ids(writer.get("/v1/recommendations/hygro-viewer", params={"max_price": 5})) == []

    assert writer.delete("/v1/items/new-hygro").status_code == 204
    assert writer.delete("/v1/items/new-hygro").status_code == 204  # again: still delisted
    assert writer.delete("/v1/items/no-such-item").status_code == 404

    def gone(client: TestClient) -> bool:
        lists = [
            client.get("/v1/search", params={"q": PARAPHRASE, "k": 20}),
            client.get(f"/v1/items/{RELATED}/similar", params={"k": 20}),
            client.get("/v1/recommendations/hygro-viewer", params={"k": 50}),
            client.post("/v1/rank", json={"user_id": "hygro-viewer", "item_ids": ["new-hygro", RELATED]}),
        ]
        return all("new-hygro" not in ids(r) for r in lists)

    for client in (writer, other):
        within(1.0, lambda c=client: gone(c))
        assert client.get("/v1/items/new-hygro/similar").status_code == 404

    relisted = writer.put("/v1/items/new-hygro", json=NEW)
    assert relisted.status_code == 200
    assert not relisted.json()["delisted"]
    assert "new-hygro" in ids(writer.get("/v1/search", params={"q": PARAPHRASE, "k": 3}))


def test_an_out_of_stock_bundle_item_is_not_served_but_keeps_its_page(
    apps: tuple[TestClient, TestClient],
) -> None:
    writer, _ = apps
    similar = ids(writer.get(f"/v1/items/{RELATED}/similar", params={"k": 5}))
    twin = similar[0]  # "205", the same humidity monitor
    body = {"title": "AcuRite 00613 Humidity Monitor", "available": False}
    assert (
        writer.put(f"/v1/items/{twin}", json=body).status_code == 200
    )  # a bundle item: replaced, not created
    assert twin not in ids(writer.get(f"/v1/items/{RELATED}/similar", params={"k": 5}))
    assert twin not in ids(writer.get("/v1/search", params={"q": "humidity monitor", "k": 20}))
    assert ids(writer.get(f"/v1/items/{twin}/similar", params={"k": 3}))  # its own page still works


def test_bad_item_bodies_are_refused_naming_the_field(apps: tuple[TestClient, TestClient]) -> None:
    writer, _ = apps
    for body, field in (
        ({"title": "  "}, "title"),
        ({"title": "x", "price": -1}, "price"),
        ({"title": "x", "colour": "red"}, "colour"),
    ):
        response = writer.put("/v1/items/bad-1", json=body)
        assert response.status_code == 422, body
        assert field in response.text
    assert writer.get("/v1/items/bad-1/similar").status_code == 404  # nothing was stored
