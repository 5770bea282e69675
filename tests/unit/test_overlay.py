"""apply_overlay: the live catalogue's items over a dataset's catalogue, as ``shoprec train --overlay``
trains on them."""

from __future__ import annotations

import numpy as np

from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, ItemMeta, leave_one_out
from shoprec.data.overlay import apply_overlay
from shoprec.items import CatalogItem


def tiny(catalog: dict[str, ItemMeta] | None = None) -> Dataset:
    return Dataset(
        name="tiny",
        source="memory",
        item_ids=["a", "b", "c"],
        user_ids=["u1", "u2"],
        sequences=[np.array([0, 1, 2], dtype=np.int64), np.array([2, 1, 0, 1], dtype=np.int64)],
        catalog=catalog
        if catalog is not None
        else {
            "a": ItemMeta(title="Alpha", brand="Acme", categories=("Tools",), price=3.0),
            "b": ItemMeta(title="Beta", description="second"),
        },
        fmt="test",
    )


def test_no_overlay_is_the_dataset_itself() -> None:
    ds = tiny()
    assert apply_overlay(ds, []) is ds


def test_a_put_item_replaces_the_known_items_whole_row() -> None:
    out = apply_overlay(tiny(), [CatalogItem("b", title="Beta 2", categories=("Home", "Mugs"), price=9.0)])
    assert out.item_ids == ["a", "b", "c"]
    assert out.catalog is not None
    assert out.catalog["b"] == ItemMeta(title="Beta 2", categories=("Home", "Mugs"), price=9.0)
    assert out.catalog["a"] == tiny().catalog["a"]  # type: ignore[index]


def test_new_items_are_appended_without_interactions() -> None:
    ds = tiny()
    out = apply_overlay(ds, [CatalogItem("new-1", title="Gamma"), CatalogItem("new-2", title="Delta")])
    assert out.item_ids == ["a", "b", "c", "new-1", "new-2"]
    assert out.n_items == 5
    assert out.catalog is not None
    assert out.catalog["new-1"].title == "Gamma"
    assert out.user_ids == ds.user_ids
    assert [s.tolist() for s in out.sequences] == [s.tolist() for s in ds.sequences]
    assert out.fingerprint() != ds.fingerprint()


def test_a_delisted_or_unavailable_known_item_keeps_its_interactions_and_is_marked() -> None:
    out = apply_overlay(
        tiny(),
        [
            CatalogItem("a", title="Alpha", brand="Acme", delisted=True),
            CatalogItem("b", title="Beta", available=False),
        ],
    )
    assert out.item_ids == ["a", "b", "c"]
    assert out.n_interactions == 7
    assert out.catalog is not None
    assert out.catalog["a"] == ItemMeta(title="Alpha", brand="Acme", available=False)
    assert out.catalog["b"] == ItemMeta(title="Beta", available=False)


def test_a_bare_tombstone_keeps_the_datasets_row_and_marks_it() -> None:
    out = apply_overlay(tiny(), [CatalogItem("a", delisted=True), CatalogItem("c", delisted=True)])
    assert out.catalog is not None
    assert out.catalog["a"] == ItemMeta(
        title="Alpha", brand="Acme", categories=("Tools",), price=3.0, available=False
    )
    assert out.catalog["c"] == ItemMeta(available=False)  # no row before: a row that only says so


def test_an_unknown_delisted_item_is_left_out_and_an_unknown_unavailable_one_joins_marked() -> None:
    out = apply_overlay(
        tiny(),
        [
            CatalogItem("gone", title="Gone", delisted=True),
            CatalogItem("later", title="Later", available=False),
        ],
    )
    assert out.item_ids == ["a", "b", "c", "later"]
    assert out.catalog is not None
    assert "gone" not in out.catalog
    assert out.catalog["later"] == ItemMeta(title="Later", available=False)


def test_a_dataset_without_a_catalogue_gets_one_from_the_overlay() -> None:
    out = apply_overlay(tiny(catalog={}), [CatalogItem("x", title="Xylophone")])
    assert out.catalog == {"x": ItemMeta(title="Xylophone")}
    assert apply_overlay(
        Dataset("s", "s", ["1"], ["u"], [np.array([0], dtype=np.int64)]), [CatalogItem("1", delisted=True)]
    ).catalog == {"1": ItemMeta(available=False)}


def test_the_overlaid_dataset_splits_and_indexes_like_any_other() -> None:
    out = apply_overlay(tiny(), [CatalogItem("new", title="Gamma gadget", brand="Zeta")])
    split = leave_one_out(out)
    assert len(split.train) == 2
    assert out.catalog is not None
    rows = {i: {"item_id": i, "title": m.title, "brand": m.brand} for i, m in out.catalog.items()}
    index = CatalogIndex.build(out.item_ids, rows)
    assert index.index("new") == 3
    assert index.titles[3] == "Gamma gadget"
