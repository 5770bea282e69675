"""The browse routes (item details, popular items) and the storefront's static page, over the tiny
catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.api_fakes import Api, assert_problem

from shoprec.services.catalogue import _price


def test_an_item_has_its_title_brand_category_path_and_description(api: Api) -> None:
    body = api.client.get("/v1/items/p2").json()
    assert body["item"] == {
        "item_id": "p2",
        "title": "Glass Beaker 250ml",
        "brand": "SEOH",
        "categories": ["Lab", "Lab Supplies", "Beakers"],
        "description": "borosilicate glass",
        "price": None,
    }
    assert body["model_version"] == api.container.model_version
    assert body["degraded"] is False


def test_an_item_without_metadata_has_blanks_and_an_unknown_one_is_404(api: Api) -> None:
    assert api.client.get("/v1/items/p11").json()["item"] == {
        "item_id": "p11",
        "title": "",
        "brand": "",
        "categories": [],
        "description": "",
        "price": None,
    }
    assert_problem(api.client.get("/v1/items/nope"), 404, "item_id")


def test_items_come_in_the_order_asked_each_once(api: Api) -> None:
    body = api.client.get("/v1/items", params=[("ids", "p5"), ("ids", "p0"), ("ids", "p5")]).json()
    assert [(i["item_id"], i["brand"]) for i in body["items"]] == [("p5", "HATCHBOX"), ("p0", "Neiko")]


def test_unknown_ids_reject_the_whole_request_listing_them(api: Api) -> None:
    body = assert_problem(api.client.get("/v1/items", params=[("ids", "p0"), ("ids", "x1")]), 422, "ids")
    assert body["errors"][0]["values"] == ["x1"]
    assert_problem(api.client.get("/v1/items"), 422, "ids")
    too_many = [("ids", "p0")] * 101
    assert_problem(api.client.get("/v1/items", params=too_many), 422, "ids")


def test_popular_items_follow_the_bundles_popularity_whoever_asks(api: Api) -> None:
    popularity = api.container.bundle.popularity
    order = np.lexsort((np.arange(popularity.size), -popularity))
    expected = [api.container.catalog.item_ids[i] for i in order[:4]]
    body = api.client.get("/v1/popular", params={"k": 4}).json()
    assert [i["item_id"] for i in body["items"]] == expected
    assert body["items"][0]["score"] == 1.0
    assert all(i["channels"] == ["popularity"] for i in body["items"])
    assert all(i["reason"].startswith("popular in ") for i in body["items"])
    assert api.ranker.calls == []  # nothing is ranked


def test_popular_items_can_be_filtered_by_category_and_brand(api: Api) -> None:
    beakers = api.client.get("/v1/popular", params={"category": "lab supplies", "brand": "SEOH"}).json()
    assert sorted(i["item_id"] for i in beakers["items"]) == ["p2", "p4"]
    assert api.client.get("/v1/popular", params={"brand": "no such brand"}).json()["items"] == []


@pytest.mark.parametrize(
    ("value", "price"),
    [(12.5, 12.5), (3, 3.0), (np.float32(2.5), 2.5), (None, None), (-1, None), (float("nan"), None),
     (True, None), ("9.99", None)],
)  # fmt: skip
def test_only_a_finite_non_negative_number_is_a_price(value: object, price: float | None) -> None:
    assert _price(value) == price


def test_the_storefront_page_and_its_assets_are_served_outside_the_schema(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for testid in ("search-input", "shelf-recommended", "shelf-similar", "user-switcher"):
        assert f'data-testid="{testid}"' in page.text
    script = api.client.get("/storefront/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'data-testid": "product-card"' in script.text
    assert api.client.get("/storefront/style.css").headers["content-type"].startswith("text/css")
    assert api.client.head("/").status_code == 200
    assert_problem(api.client.get("/storefront/../app.py"), 404)
    assert_problem(api.client.get("/storefront/index.html"), 404, "name")
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/items/{item_id}", "/v1/items", "/v1/popular"} <= paths.keys()
    assert not [p for p in paths if not p.startswith("/v1/")]
