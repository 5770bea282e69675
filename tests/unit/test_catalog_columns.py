"""The columnar catalogue: what the bundle writer stores under ``catalog/`` and serving maps at load must
answer every question exactly as the catalogue indexed from ``catalog.jsonl`` does; a bundle without it
(written before) still loads; a damaged one is refused naming the column."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprec.artifacts import (
    CATALOG,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    BundleWriter,
    FusionSpec,
    PipelineSpec,
    load_bundle,
    verify_bundle,
)
from shoprec.artifacts.specs import CATALOG_COLUMNS, CATALOG_TABLES
from shoprec.catalog import CatalogIndex, ColumnsError
from shoprec.errors import ArtifactError

IDS = ["b-2", "a-1", "é-3", "c", "zz", "10", "9", "unseen"]
ROWS: dict[str, dict[str, Any]] = {
    "b-2": {"title": "  Digital Caliper 6 inch ", "brand": "Mitutoyo", "categories": ["Tools", "Calipers"]},
    "a-1": {
        "title": "Caliper, stainless — a very long title that the reasons have to cut somewhere sensible",
        "brand": "mitutoyo ",
        "categories": ["Tools", "Calipers"],
        "price": "$12.50",
        "description": "Reads to 0.01 mm. Ünïcode ✓",
    },
    "é-3": {"title": "Beaker 250 ml", "brand": "Pyrex", "categories": "Lab", "price": 4, "available": False},
    "c": {"title": "Hygrometer", "categories": ["Tools", "Measuring", "Humidity"], "delisted": True},
    "zz": {"brand": "Zeta", "price": -3, "categories": []},
    "10": {"title": "Flask", "brand": "PYREX", "categories": ["Lab", "Glass"], "price": "1e999"},
    "9": {"title": "Timer", "categories": ["tools"], "price": 0},
}
NO_RANKER = PipelineSpec(ranker=None, fusion=FusionSpec(kind="weighted", weights={"itemcf": 1.0}))
DATASET = {
    "name": "tiny",
    "fingerprint": "sha256:" + "0" * 64,
    "format": "test",
    "n_users": 1,
    "n_items": len(IDS),
    "n_interactions": 1,
}


def assert_same(a: CatalogIndex, b: CatalogIndex) -> None:
    """Every public answer of the two catalogues is the same."""
    n = a.n_items
    assert b.n_items == n
    assert b.n_base == a.n_base
    assert list(b.item_ids) == list(a.item_ids)
    for field in ("titles", "short_titles", "brands", "descriptions", "categories"):
        assert list(getattr(b, field)) == list(getattr(a, field)), field
        assert [getattr(b, field)[i] for i in range(n)] == [getattr(a, field)[i] for i in range(n)], field
    assert b.brand_names == a.brand_names
    assert b.leaf_names == a.leaf_names
    for arr in ("brand_codes", "leaf_codes", "id_rank", "available", "listed"):
        assert np.array_equal(getattr(b, arr), getattr(a, arr)), arr
    assert np.array_equal(b.prices, a.prices, equal_nan=True)
    assert b.all_available == a.all_available
    for item_id in [*a.item_ids, "nope", "a-1\0", "", "A-1"]:
        assert b.index(item_id) == a.index(item_id)
        assert (item_id in b.index_of) == (item_id in a.index_of)
    assert b.indices(["zz", "nope", "b-2"]).tolist() == a.indices(["zz", "nope", "b-2"]).tolist()
    for i in range(n):
        assert b.row(i) == a.row(i)
        assert b.short_title(i) == a.short_title(i)
        assert b.leaf_category(i) == a.leaf_category(i)
    for category in (None, "tools", "Calipers", " LAB ", "glass", "Nothing"):
        for brand in (None, "MITUTOYO", "pyrex", "zeta", "none"):
            for lo, hi in ((None, None), (1.0, None), (None, 5.0), (0.0, 12.5)):
                assert np.array_equal(
                    b.mask_for(category, brand, lo, hi), a.mask_for(category, brand, lo, hi)
                )
    assert b.facet_counts(np.arange(n)) == a.facet_counts(np.arange(n))


def test_columns_answer_as_the_rows_do() -> None:
    built = CatalogIndex.build(IDS, ROWS)
    columns = built.to_columns()
    assert columns is not None
    arrays, tables = columns
    assert set(arrays) == set(CATALOG_COLUMNS)
    json.dumps(tables)  # the tables are plain JSON
    assert_same(built, CatalogIndex.from_columns(arrays, tables))
    # and the same again over a catalogue that is itself columnar
    again = CatalogIndex.from_columns(arrays, tables).to_columns()
    assert again is not None
    assert_same(built, CatalogIndex.from_columns(*again))


def test_an_empty_catalogue_has_columns_too() -> None:
    built = CatalogIndex.build([], {})
    columns = built.to_columns()
    assert columns is not None
    assert CatalogIndex.from_columns(*columns).n_items == 0


def test_ids_that_a_fixed_width_string_cannot_hold_keep_the_rows() -> None:
    assert CatalogIndex.build(["a", "b\0"], {}).to_columns() is None


def write_bundle(out: Path, *, columnar: bool = True, ids: list[str] = IDS) -> None:
    n = len(ids)
    with BundleWriter(out, columnar_catalog=columnar) as w:
        w.add_json(ITEM_IDS, ids)
        w.add_npy(POPULARITY, np.arange(n, dtype=np.float32))
        w.add_npz(
            ITEMCF, {"indices": np.full((n, 2), -1, dtype=np.int32), "scores": np.zeros((n, 2), np.float32)}
        )
        w.add_npy(ITEM_EMBEDDINGS, np.ones((n, 3), dtype=np.float32))
        w.add_jsonl(CATALOG, [{"item_id": i, **ROWS[i]} for i in ids if i in ROWS])
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)


def test_the_writer_stores_columns_and_serving_maps_them(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b")
    names = {e.name for e in verify_bundle(tmp_path / "b").files}
    assert CATALOG_TABLES in names
    assert {f"catalog/{c}.npy" for c in CATALOG_COLUMNS} <= names
    bundle = load_bundle(tmp_path / "b")
    assert bundle.catalog_columns is not None
    titles = bundle.catalog_columns.arrays["titles.data"]
    assert isinstance(titles.base, np.memmap) or isinstance(getattr(titles.base, "base", None), np.memmap)
    assert bundle.item_ids == IDS
    catalog = CatalogIndex.from_bundle(bundle)
    assert_same(CatalogIndex.build(IDS, ROWS), catalog)
    # the rows stay readable (parsed when first asked for)
    assert bundle.catalog is not None
    assert bundle.catalog["b-2"]["brand"] == "Mitutoyo"
    assert len(bundle.catalog) == len(ROWS)


def test_a_bundle_with_the_rows_alone_still_loads(tmp_path: Path) -> None:
    write_bundle(tmp_path / "old", columnar=False)
    names = {e.name for e in verify_bundle(tmp_path / "old").files}
    assert not any(name.startswith("catalog/") for name in names)
    bundle = load_bundle(tmp_path / "old")
    assert bundle.catalog_columns is None
    write_bundle(tmp_path / "new")
    assert_same(CatalogIndex.from_bundle(bundle), CatalogIndex.from_bundle(load_bundle(tmp_path / "new")))


def test_a_bundle_whose_ids_do_not_fit_keeps_the_rows(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", ids=["a", "b\0"])
    bundle = load_bundle(tmp_path / "b")
    assert bundle.catalog_columns is None
    assert bundle.item_ids == ["a", "b\0"]


def rewrite_column(src: Path, out: Path, column: str, array: Any) -> None:
    """A copy of ``src`` with one column replaced (checksums match: only the content is bad)."""
    with BundleWriter(out) as w:
        manifest = verify_bundle(src)
        for entry in manifest.files:
            if entry.name == f"catalog/{column}.npy":
                w.add_npy(entry.name, array)
            else:
                w.add_file(entry.name, src / entry.name)
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)


@pytest.mark.parametrize(
    ("column", "array", "message"),
    [
        ("id_order", np.arange(len(IDS), dtype=np.int64), "'id_order' does not sort"),
        ("id_order", np.full(len(IDS), 99, dtype=np.int64), "'id_order' must hold"),
        ("brand_codes", np.full(len(IDS), 50, dtype=np.int32), "'brand_codes' codes"),
        ("titles.offsets", np.zeros(len(IDS) + 1, dtype=np.int64), "'titles.offsets' must rise"),
        ("available", np.ones(3, dtype=np.bool_), "'available' has"),
        ("category_items", np.full(4, 1000, dtype=np.int64), "'category_offsets'"),
    ],
)
def test_a_damaged_column_is_refused_naming_it(tmp_path: Path, column: str, array: Any, message: str) -> None:
    write_bundle(tmp_path / "b")
    rewrite_column(tmp_path / "b", tmp_path / "c", column, array)
    bundle = load_bundle(tmp_path / "c")
    with pytest.raises(ArtifactError, match=message):
        CatalogIndex.from_bundle(bundle)


def test_from_columns_checks_the_tables() -> None:
    columns = CatalogIndex.build(IDS, ROWS).to_columns()
    assert columns is not None
    arrays, tables = columns
    with pytest.raises(ColumnsError, match="format"):
        CatalogIndex.from_columns(arrays, {**tables, "format": 99})
    with pytest.raises(ColumnsError, match="'paths'"):
        CatalogIndex.from_columns(arrays, {**tables, "paths": [1, 2]})
    with pytest.raises(ColumnsError, match="missing column"):
        CatalogIndex.from_columns({k: v for k, v in arrays.items() if k != "prices"}, tables)
    assert math.isnan(CatalogIndex.from_columns(arrays, tables).prices[IDS.index("zz")])


def test_a_text_column_reads_as_the_list_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    import shoprec.catalog as catalog_mod

    monkeypatch.setattr(catalog_mod, "_ITER_CHUNK", 3)  # iteration goes a chunk at a time
    texts = ["a", "", "héllo", "x" * 5, "✓", "b", "", "c"]
    column = catalog_mod.TextColumn.of(texts)
    assert list(column) == texts
    assert [column[i] for i in range(len(texts))] == texts
    assert column[-1] == "c"
    assert column[2:5] == texts[2:5]
    assert len(column) == len(texts)
    with pytest.raises(IndexError):
        column[len(texts)]
