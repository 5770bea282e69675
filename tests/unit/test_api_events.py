"""POST /v1/events and DELETE /v1/users/{id} through the app: validation, idempotency, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.api_fakes import Api, assert_problem, make_api


def ev(n: int, item: str = "p5", user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "user_id": user, "item_id": item, "type": "view", **extra}


def test_events_are_applied_and_reported(api: Api) -> None:
    r = api.client.post("/v1/events", json={"events": [ev(1, "p5"), ev(2, "p6", type="purchase")]})
    assert r.status_code == 200
    body = r.json()
    assert (body["applied"], body["duplicates"], body["degraded"]) == (2, 0, False)
    assert body["model_version"] == api.container.model_version
    assert api.state.recent["u1"] == ["p5", "p6"]


def test_repeated_event_ids_are_applied_once(api: Api) -> None:
    api.client.post("/v1/events", json={"events": [ev(1)]})
    body = api.client.post("/v1/events", json={"events": [ev(1), ev(2, "p7")]}).json()
    assert (body["applied"], body["duplicates"]) == (1, 1)
    assert api.state.recent["u1"] == ["p5", "p7"]


def test_events_are_ordered_by_timestamp_and_naive_times_are_utc(api: Api) -> None:
    events = [
        ev(1, "p7", timestamp="2026-01-01T10:00:00Z"),
        ev(2, "p6", timestamp="2026-01-01T09:00:00"),
        ev(3, "p5", timestamp="2026-01-01T11:30:00+02:00"),
    ]
    assert api.client.post("/v1/events", json={"events": events}).status_code == 200
    assert api.state.recent["u1"] == ["p6", "p5", "p7"]


def test_new_events_change_the_next_recommendations(api: Api) -> None:
    before = api.client.get("/v1/recommendations/u1?k=5").json()
    api.client.post("/v1/events", json={"events": [ev(1, "p5"), ev(2, "p6")]})
    after = api.client.get("/v1/recommendations/u1?k=5").json()
    assert after["cached"] is False  # the user's cached list was invalidated
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before["items"]]
    assert not {"p5", "p6"} & {i["item_id"] for i in after["items"]}


def test_unknown_items_reject_the_whole_batch_and_list_them(api: Api) -> None:
    r = api.client.post("/v1/events", json={"events": [ev(1, "p5"), ev(2, "ghost"), ev(3, "p6")]})
    body = assert_problem(r, 422, "events")
    assert body["errors"][0]["values"] == ["ghost"]
    assert api.state.recent == {}
    assert api.state.apply_calls == 0


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([], "events"),
        ([ev(i) for i in range(101)], "events"),
        ([ev(1), ev(2, type="like")], "events[1].type"),
        ([ev(1, user="x" * 129)], "events[0].user_id"),
        ([ev(1, item="p 5")], "events[0].item_id"),
        ([{"user_id": "u1", "item_id": "p5", "type": "view"}], "events[0].event_id"),
        ([ev(1, timestamp="yesterday")], "events[0].timestamp"),
        ([ev(1, userId="u2")], "events[0].userId"),
    ],
)
def test_invalid_events_are_problems_naming_the_field_and_store_nothing(
    api: Api, events: list[dict[str, Any]], field: str
) -> None:
    assert_problem(api.client.post("/v1/events", json={"events": events}), 422, field)
    assert api.state.recent == {}


def test_exactly_100_events_are_accepted(api: Api) -> None:
    r = api.client.post("/v1/events", json={"events": [ev(i, f"p{i % 11}") for i in range(100)]})
    assert r.json()["applied"] == 100


def test_a_body_that_is_not_json_is_a_problem_naming_the_body(api: Api) -> None:
    r = api.client.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422, "body")


def test_a_body_over_256_kib_is_413_and_not_applied(api: Api) -> None:
    big = json.dumps({"events": [ev(1)], "padding": "x" * 262_144}).encode()
    r = api.client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    body = assert_problem(r, 413)
    assert body["type"].endswith("payload-too-large")
    assert api.state.apply_calls == 0


def test_a_chunked_body_over_the_limit_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(300):
            yield b" " * 1024

    r = api.client.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413)
    assert api.state.apply_calls == 0


def test_the_body_limit_comes_from_the_settings(bundle_dir: Path) -> None:
    api = make_api(bundle_dir, max_body_bytes=2048)
    r = api.client.post("/v1/events", json={"events": [ev(i) for i in range(60)]})
    assert_problem(r, 413)


def test_deleting_a_user_removes_their_state_and_cached_lists(api: Api) -> None:
    api.client.post("/v1/events", json={"events": [ev(1, "p0")]})
    api.client.get("/v1/recommendations/u1")
    r = api.client.delete("/v1/users/u1")
    assert r.status_code == 204
    assert r.content == b""
    assert "u1" not in api.state.recent
    assert "u1" in api.cache.invalidated
    assert api.client.get("/v1/recommendations/u1").json()["cached"] is False


def test_deleting_a_user_without_stored_data_is_404_naming_user_id(api: Api) -> None:
    assert_problem(api.client.delete("/v1/users/never-seen"), 404, "user_id")


def test_deleting_with_an_invalid_user_id_is_422(api: Api) -> None:
    assert_problem(api.client.delete(f"/v1/users/{'u' * 129}"), 422, "user_id")
