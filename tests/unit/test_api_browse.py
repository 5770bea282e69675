"""The browse routes (item details, popular items) and the storefront's static page, over the tiny
catalogue."""

from __future__ import annotations

import numpy as np
from tests.unit.api_fakes import Api, assert_problem

from shoprec.items import CatalogItem


def test_an_item_has_its_title_brand_category_path_and_description(api: Api) -> None:
    body = api.client.get("/v1/items/p2").json()
    assert body.pop("request_id")
    assert body == {
        "item_id": "p2",
        "title": "Glass Beaker 250ml",
        "brand": "SEOH",
        "categories": ["Lab", "Lab Supplies", "Beakers"],
        "description": "borosilicate glass",
        "price": None,
        "available": True,
        "model_version": api.container.model_version,
        "degraded": False,
    }


def test_an_item_without_metadata_has_blanks_and_an_unknown_one_is_404(api: Api) -> None:
    body = api.client.get("/v1/items/p11").json()
    assert {k: body[k] for k in ("title", "brand", "categories", "description", "price")} == {
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


def test_items_written_since_training_are_described_as_served(api: Api) -> None:
    live = api.container.live
    live.upsert(CatalogItem("p-new", title="Beaker 50ml", brand="SEOH", categories=("Lab",), price=4.5))
    new = api.client.get("/v1/items/p-new").json()
    assert (new["title"], new["price"], new["available"]) == ("Beaker 50ml", 4.5, True)
    listed = api.client.get("/v1/items", params=[("ids", "p-new"), ("ids", "p2")]).json()["items"]
    assert [(i["item_id"], i["price"]) for i in listed] == [("p-new", 4.5), ("p2", None)]


def test_an_out_of_stock_item_is_described_but_not_popular_and_a_delisted_one_is_unknown(api: Api) -> None:
    top = api.client.get("/v1/popular", params={"k": 1}).json()["items"][0]["item_id"]
    row = api.client.get(f"/v1/items/{top}").json()
    api.container.live.upsert(CatalogItem(top, title=row["title"], brand=row["brand"], available=False))
    assert api.client.get(f"/v1/items/{top}").json()["available"] is False
    popular = api.client.get("/v1/popular", params={"k": 100}).json()["items"]
    assert top not in [i["item_id"] for i in popular]
    api.container.live.delist(top)
    assert_problem(api.client.get(f"/v1/items/{top}"), 404, "item_id")
    assert_problem(api.client.get("/v1/items", params={"ids": top}), 422, "ids")


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
