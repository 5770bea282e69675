"""The admin routes of merchandising rules (status codes, problem+json naming the fields), the rules
reaching responses through the real container, and the evaluation paths that apply none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.unit.api_fakes import Api, assert_problem
from tests.unit.fakes import FakeRanker

from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.pipeline import Request
from shoprec.settings import Settings

PIN = {"action": "pin", "items": ["p9"], "position": 1, "scope": "query", "scope_value": "Caliper"}


def put(api: Api, rule_id: str, body: dict[str, Any]) -> Any:
    return api.client.put(f"/v1/rules/{rule_id}", json=body)


def test_put_creates_then_replaces_and_answers_the_stored_rule(api: Api) -> None:
    created = put(api, "r1", PIN)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["rule"]["rule_id"] == "r1"
    assert body["rule"]["scope_value"] == "caliper"  # stored normalised
    assert {"model_version", "request_id", "degraded"} <= body.keys()
    replaced = put(api, "r1", {**PIN, "position": 2})
    assert replaced.status_code == 200
    assert replaced.json()["rule"]["position"] == 2
    got = api.client.get("/v1/rules/r1")
    assert got.status_code == 200
    assert got.json()["rule"] == replaced.json()["rule"]
    put(api, "a0", {"action": "block", "item_brand": "3M"})
    listed = api.client.get("/v1/rules")
    assert listed.status_code == 200
    assert [r["rule_id"] for r in listed.json()["rules"]] == ["a0", "r1"]


def test_unknown_rules_are_404_on_get_and_delete(api: Api) -> None:
    assert_problem(api.client.get("/v1/rules/nope"), 404, "rule_id")
    assert_problem(api.client.delete("/v1/rules/nope"), 404, "rule_id")
    put(api, "r1", PIN)
    assert api.client.delete("/v1/rules/r1").status_code == 204
    assert_problem(api.client.delete("/v1/rules/r1"), 404, "rule_id")


def test_invalid_rules_are_422_naming_the_fields(api: Api) -> None:
    assert_problem(put(api, "r1", {"action": "pin", "items": ["p9"]}), 422, "position")
    assert_problem(put(api, "r1", {"action": "boost", "items": ["p9"], "weight": -1}), 422, "weight")
    assert_problem(put(api, "r1", {"action": "block", "items": ["p9"], "rule_id": "r1"}), 422, "rule_id")
    assert_problem(
        put(api, "r1", {"action": "block", "items": ["p9"], "ends_at": "soon"}),
        422,
        "ends_at",
    )
    body = assert_problem(put(api, "r1", {"action": "block", "items": ["p9", "ghost", "p1"]}), 422, "items")
    assert body["errors"][0]["values"] == ["ghost"]
    assert_problem(put(api, "bad id!", PIN), 422, "rule_id")
    assert_problem(api.client.put("/v1/rules/r1", content=b"{not json"), 422, "body")
    assert api.client.get("/v1/rules").json()["rules"] == []  # nothing stored


def test_a_rule_put_through_the_api_shapes_the_next_responses(api: Api) -> None:
    before = api.client.get("/v1/search", params={"q": "caliper", "k": 3}).json()["items"]
    assert "p9" not in [it["item_id"] for it in before]
    put(api, "r1", PIN)
    items = api.client.get("/v1/search", params={"q": " CALIPER", "k": 3}).json()["items"]
    assert [it["item_id"] for it in items] == ["p9"] + [it["item_id"] for it in before[:2]]
    assert items[0]["reason"] == "promoted"
    rec = api.client.get("/v1/recommendations/new-user", params={"k": 3}).json()["items"]
    put(api, "b1", {"action": "block", "items": [rec[0]["item_id"]], "surfaces": ["recommendations"]})
    again = api.client.get("/v1/recommendations/new-user", params={"k": 3}).json()
    assert not again["cached"]
    assert rec[0]["item_id"] not in [it["item_id"] for it in again["items"]]


def test_evaluation_paths_apply_no_rules(bundle_dir: Path, tmp_path: Path) -> None:
    """``shoprec evaluate`` scores the pipeline object, which knows no rules; ``search-eval`` builds the
    service with ``merchandising=False`` (shoprec.cli.search_eval._search_service)."""
    settings = Settings(
        artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path / 'state.db'}", cache="memory://"
    )
    served = build_container(settings, ranker=FakeRanker())
    client = TestClient(create_app(served))
    top = client.get("/v1/search", params={"q": "caliper", "k": 1}).json()["items"][0]["item_id"]
    assert client.put("/v1/rules/b", json={"action": "block", "items": [top]}).status_code == 201

    evaluated = build_container(settings, ranker=FakeRanker(), merchandising=False)
    assert evaluated.recommendations.merchandising is None
    assert evaluated.merchandising.list()[0].rule_id == "b"  # the rule is stored, and ignored
    assert evaluated.recommendations.search("caliper", k=1).items[0].item_id == top
    assert served.recommendations.search("caliper", k=1).items[0].item_id != top
    popular = served.pipeline.recommend([Request(k=1)])[0].items[0]
    blocked = served.catalog.item_ids[popular.item]
    client.put("/v1/rules/b", json={"action": "block", "items": [blocked]})
    assert served.pipeline.recommend([Request(k=1)])[0].items[0].item == popular.item
    assert served.recommendations.recommend("nobody", 1).items[0].item_id != blocked

    import inspect

    from shoprec.cli import search_eval

    assert "merchandising=False" in inspect.getsource(search_eval._search_service)


def test_a_wrong_method_is_405_naming_every_method_of_the_path(api: Api) -> None:
    # One route per method serves /v1/rules/{rule_id}; Allow must list them all, not the first one's.
    got = api.client.request("OPTIONS", "/v1/rules/r1")
    assert got.status_code == 405
    assert got.headers["content-type"].startswith("application/problem+json")
    assert got.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert api.client.post("/v1/events/x").status_code in (404, 405)
    assert api.client.request("PATCH", "/v1/search").headers["allow"] == "GET, HEAD"
    # Routes left out of the OpenAPI document too: the storefront page.
    assert api.client.request("POST", "/").headers["allow"] == "GET, HEAD"
