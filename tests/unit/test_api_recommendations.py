"""GET /v1/recommendations, /v1/items/{id}/similar, /v1/search and POST /v1/rank through the app."""

from __future__ import annotations

import pytest
from tests.unit.api_fakes import Api, assert_problem

LIST_ITEM_KEYS = {"item_id", "score", "channels", "reason", "title"}


def test_unknown_user_gets_cold_start_list_with_every_field(api: Api) -> None:
    r = api.client.get("/v1/recommendations/nobody", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 3
    assert all(item.keys() == LIST_ITEM_KEYS for item in body["items"])
    assert body["model_version"] == api.container.model_version
    assert body["degraded"] is False
    assert body["request_id"] == r.headers["x-request-id"]
    assert api.ranker.calls == []  # cold start is served from popularity, not the ranker


def test_user_with_history_is_ranked_and_seen_items_are_left_out(api: Api) -> None:
    api.state.recent["u1"] = ["p0", "p1"]
    body = api.client.get("/v1/recommendations/u1", params={"k": 5}).json()
    ids = [item["item_id"] for item in body["items"]]
    assert len(api.ranker.calls) == 1
    assert not {"p0", "p1"} & set(ids)
    assert body["degraded"] is False


def test_ranker_failure_is_reported_as_degraded_not_as_an_error(api: Api) -> None:
    api.state.recent["u1"] = ["p5"]
    api.ranker.fail = True
    r = api.client.get("/v1/recommendations/u1")
    assert r.status_code == 200
    assert r.json()["degraded"] is True
    assert r.json()["items"]


def test_second_identical_request_is_served_from_the_cache(api: Api) -> None:
    api.state.recent["u1"] = ["p2"]
    first = api.client.get("/v1/recommendations/u1?k=4").json()
    second = api.client.get("/v1/recommendations/u1?k=4").json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["items"] == second["items"]


def test_filters_restrict_the_list(api: Api) -> None:
    body = api.client.get("/v1/recommendations/nobody", params={"brand": "hatchbox", "k": 10}).json()
    assert {item["item_id"] for item in body["items"]} <= {"p5", "p6"}


@pytest.mark.parametrize("k", ["0", "101", "-1", "ten"])
def test_k_outside_1_to_100_is_a_problem_naming_k(api: Api, k: str) -> None:
    assert_problem(api.client.get(f"/v1/recommendations/u1?k={k}"), 422, "k")


@pytest.mark.parametrize("user_id", ["a" * 129, "bad%20id", "semi;colon"])
def test_user_id_outside_the_safe_alphabet_is_a_problem_naming_user_id(api: Api, user_id: str) -> None:
    body = assert_problem(api.client.get(f"/v1/recommendations/{user_id}"), 422, "user_id")
    assert body["type"].endswith("validation-error")


def test_128_character_ids_are_accepted(api: Api) -> None:
    assert api.client.get(f"/v1/recommendations/{'u' * 128}").status_code == 200


def test_similar_items_of_a_known_item(api: Api) -> None:
    body = api.client.get("/v1/items/p0/similar", params={"k": 3}).json()
    ids = [item["item_id"] for item in body["items"]]
    assert len(ids) == 3
    assert "p0" not in ids
    assert ids[0] == "p1"  # the calipers are bought together


def test_similar_items_of_an_unknown_item_is_404_naming_item_id(api: Api) -> None:
    body = assert_problem(api.client.get("/v1/items/nope/similar"), 404, "item_id")
    assert body["instance"] == "/v1/items/nope/similar"
    assert "nope" in body["detail"]


def test_search_returns_matches_and_brand_and_category_facets(api: Api) -> None:
    r = api.client.get("/v1/search", params={"q": "filament", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 2
    assert body["facets"]["brand"] == {"HATCHBOX": 2, "eSUN": 2}
    assert body["facets"]["category"] == {"Filament": 4}


def test_search_personalised_for_a_user_with_history_uses_the_ranker(api: Api) -> None:
    api.state.recent["u1"] = ["p5"]
    body = api.client.get("/v1/search", params={"q": "filament", "user_id": "u1"}).json()
    assert api.ranker.calls
    assert body["items"]


@pytest.mark.parametrize("q", ["", "x" * 201])
def test_query_length_outside_1_to_200_is_a_problem_naming_q(api: Api, q: str) -> None:
    assert_problem(api.client.get("/v1/search", params={"q": q}), 422, "q")


def test_missing_and_blank_queries_are_problems_naming_q(api: Api) -> None:
    assert_problem(api.client.get("/v1/search"), 422, "q")
    assert_problem(api.client.get("/v1/search", params={"q": "   "}), 422, "q")


def test_rank_orders_exactly_the_given_items(api: Api) -> None:
    api.state.recent["u1"] = ["p0"]
    api.ranker.score_fn = lambda history, item: {"p2": 3.0, "p9": 2.0, "p5": 1.0}[item]
    r = api.client.post("/v1/rank", json={"user_id": "u1", "item_ids": ["p5", "p9", "p2"]})
    assert r.status_code == 200
    assert [item["item_id"] for item in r.json()["items"]] == ["p2", "p9", "p5"]


def test_rank_with_unknown_items_lists_them(api: Api) -> None:
    r = api.client.post("/v1/rank", json={"user_id": "u1", "item_ids": ["p1", "ghost", "p2", "phantom"]})
    body = assert_problem(r, 422, "item_ids")
    assert body["errors"][0]["values"] == ["ghost", "phantom"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "u1", "item_ids": []}, "item_ids"),
        ({"user_id": "u1", "item_ids": [f"p{i % 12}" for i in range(301)]}, "item_ids"),
        ({"user_id": "u 1", "item_ids": ["p1"]}, "user_id"),
        ({"user_id": "u1", "item_ids": ["p1", "bad/id"]}, "item_ids[1]"),
        ({"user_id": "u1"}, "item_ids"),
        ({"user_id": "u1", "item_ids": ["p1"], "itemIds": ["p2"]}, "itemIds"),
    ],
)
def test_rank_body_problems_name_the_field(api: Api, payload: dict[str, object], field: str) -> None:
    assert_problem(api.client.post("/v1/rank", json=payload), 422, field)


def test_exclude_seen_false_may_return_the_users_own_items(api: Api) -> None:
    api.state.recent["u1"] = ["p0", "p1"]
    api.ranker.score_fn = lambda history, item: 10.0 if item in ("p0", "p1") else 0.0
    body = api.client.get("/v1/recommendations/u1", params={"k": 3, "exclude_seen": "false"}).json()
    assert {"p0", "p1"} & {item["item_id"] for item in body["items"]}  # re-ranking may diversify one out


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "glass", "user_id": "bad id"}, "user_id"),
        ({"q": "glass", "category": "c" * 201}, "category"),
        ({"q": "glass", "brand": "b" * 201}, "brand"),
        ({"q": "glass", "k": "0"}, "k"),
    ],
)
def test_search_parameter_problems_name_the_field(api: Api, params: dict[str, str], field: str) -> None:
    assert_problem(api.client.get("/v1/search", params=params), 422, field)


def test_several_invalid_parameters_are_all_named(api: Api) -> None:
    r = api.client.get("/v1/recommendations/u1", params={"k": "0", "brand": "b" * 201})
    body = assert_problem(r, 422, "k", "brand")
    assert body["detail"] == "invalid value for k, brand"
