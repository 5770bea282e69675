"""CatalogItem (the overlay's item, shoprec.items) and the API bodies of the live catalogue
(shoprec.api.item_schemas)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from shoprec.api.item_schemas import ItemResponse, ItemUpsertRequest
from shoprec.items import CatalogItem

ROW: dict[str, Any] = {
    "item_id": "p-1",
    "title": "Digital caliper",
    "description": "150 mm",
    "brand": "Mitutoyo",
    "categories": ["Industrial", "Measuring"],
    "price": 49.5,
    "available": True,
    "delisted": False,
    "updated_at": 1_700_000_000.25,
}


def test_a_row_reads_back_as_the_item_it_was_written_from() -> None:
    item = CatalogItem.from_row(ROW)
    assert item.categories == ("Industrial", "Measuring")
    assert item.to_row() == ROW
    assert CatalogItem.from_row(json.loads(json.dumps(item.to_row()))) == item


def test_absent_fields_take_their_defaults_and_unknown_keys_are_ignored() -> None:
    item = CatalogItem.from_row({"item_id": "p1", "colour": "red"})
    assert item == CatalogItem("p1")
    assert item.visible
    assert CatalogItem.from_row({"item_id": "p1", "price": 3, "updated_at": 7}).price == 3.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"item_id": "a b"}, "item_id"),
        ({"item_id": 7}, "item_id"),
        ({"title": None}, "title"),
        ({"brand": 3}, "brand"),
        ({"categories": "Industrial"}, "categories"),
        ({"categories": ["ok", 1]}, "categories"),
        ({"price": -0.01}, "price"),
        ({"price": math.inf}, "price"),
        ({"price": "12"}, "price"),
        ({"price": True}, "price"),
        ({"available": "yes"}, "available"),
        ({"delisted": 1}, "delisted"),
        ({"updated_at": math.nan}, "updated_at"),
    ],
)
def test_a_bad_row_raises_a_value_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        CatalogItem.from_row({**ROW, **changes})


def test_a_row_without_an_id_names_the_id() -> None:
    with pytest.raises(ValueError, match=r"^item_id: missing"):
        CatalogItem.from_row({"title": "x"})


@pytest.mark.parametrize(
    ("available", "delisted", "visible"), [(True, False, True), (False, False, False), (True, True, False)]
)
def test_only_an_available_listed_item_is_visible(available: bool, delisted: bool, visible: bool) -> None:
    assert CatalogItem("p1", available=available, delisted=delisted).visible is visible


def test_content_leaves_out_the_write_time() -> None:
    assert CatalogItem("p1", updated_at=1.0).content() == CatalogItem("p1", updated_at=2.0).content()
    assert CatalogItem("p1").content() != CatalogItem("p1", available=False).content()


def test_the_upsert_body_becomes_the_domain_item() -> None:
    body = ItemUpsertRequest.model_validate(
        {"title": "  Digital caliper ", "categories": ["Industrial", " Measuring"], "price": 10}
    )
    assert body.to_domain("p1") == CatalogItem(
        "p1", title="Digital caliper", categories=("Industrial", "Measuring"), price=10.0
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 501}, "title"),
        ({"title": "t", "description": "x" * 10_001}, "description"),
        ({"title": "t", "brand": "x" * 201}, "brand"),
        ({"title": "t", "categories": ["c"] * 11}, "categories"),
        ({"title": "t", "categories": ["x" * 201]}, "categories.0"),
        ({"title": "t", "categories": [""]}, "categories.0"),
        ({"title": "t", "price": -1}, "price"),
        ({"title": "t", "price": "inf"}, "price"),
        ({"title": "t", "available": "maybe"}, "available"),
        ({"title": "t", "item_id": "p1"}, "item_id"),
    ],
)
def test_a_bad_upsert_body_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ItemUpsertRequest.model_validate(body)
    assert [".".join(map(str, e["loc"])) for e in info.value.errors()] == [field]


def test_the_response_carries_the_stored_item_and_the_envelope() -> None:
    item = CatalogItem.from_row(ROW)
    response = ItemResponse.of(item, model_version="sha256:abc", request_id="r-1")
    assert response.model_dump() == {
        **ROW,
        "model_version": "sha256:abc",
        "request_id": "r-1",
        "degraded": False,
    }
