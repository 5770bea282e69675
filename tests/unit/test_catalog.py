from __future__ import annotations

import numpy as np
from tests.unit.fakes import ITEM_IDS, make_bundle, make_catalog

from shoprec.catalog import CatalogIndex, shorten


def _items(mask: np.ndarray) -> list[str]:
    return [ITEM_IDS[i] for i in np.flatnonzero(mask)]


def test_ids_and_indices_map_both_ways() -> None:
    cat = make_catalog()
    assert cat.n_items == len(cat) == 12
    assert cat.index("p3") == 3
    assert cat.item_ids[3] == "p3"
    assert cat.index("nope") is None
    np.testing.assert_array_equal(cat.indices(["p2", "nope", "p0"]), [2, 0])
    assert cat.unknown(["p1", "x", "y", "x"]) == ["x", "y"]


def test_category_filter_matches_any_level_of_the_path_case_insensitively() -> None:
    cat = make_catalog()
    assert _items(cat.mask_for(category="lab supplies")) == ["p2", "p3", "p4"]
    assert _items(cat.mask_for(category="LAB")) == ["p2", "p3", "p4"]
    assert _items(cat.mask_for(category="Beakers")) == ["p2", "p3"]
    assert _items(cat.mask_for(category="tapes, adhesives & sealants")) == ["p9", "p10"]


def test_brand_filter_is_case_insensitive_and_combines_with_category() -> None:
    cat = make_catalog()
    assert _items(cat.mask_for(brand="seoh")) == ["p2", "p4"]
    assert _items(cat.mask_for(category="beakers", brand="SEOH")) == ["p2"]


def test_no_filter_matches_everything_and_unknown_names_match_nothing() -> None:
    cat = make_catalog()
    assert cat.mask_for().all()
    assert cat.mask_for(category=" ", brand=None).all()
    assert not cat.mask_for(category="Garden").any()
    assert not cat.mask_for(brand="Acme").any()


def test_titles_and_leaf_categories() -> None:
    cat = make_catalog()
    assert cat.title(0) == "Digital Caliper 6 inch"
    assert cat.leaf_category(0) == "Calipers"
    assert cat.leaf_category(9) == "Duct Tape"
    assert cat.leaf_category(11) == ""  # p11 has no metadata
    assert cat.title(11) == ""
    assert cat.short_title(11) == "item p11"


def test_long_titles_are_shortened_at_a_word_boundary_with_an_ellipsis() -> None:
    title = "Neiko 01409A Electronic Digital Caliper with Extra Large LCD Screen | 0 - 12 Inches | Inch"
    short = shorten(title)
    assert len(short) <= 60
    assert short.endswith("…")
    assert title.startswith(short[:-1])
    assert shorten("KR Tools 6-Inch Digital Caliper.") == "KR Tools 6-Inch Digital Caliper"


def test_facet_counts_brand_and_leaf_category_by_count_then_name() -> None:
    cat = make_catalog()
    facets = cat.facet_counts([2, 3, 4, 5, 6, 11])
    assert facets == {
        "brand": {"HATCHBOX": 2, "SEOH": 2, "Karter Scientific": 1},
        "category": {"Beakers": 2, "Filament": 2, "Cylinders": 1},
    }
    assert cat.facet_counts([2, 3, 4], limit=1)["category"] == {"Beakers": 2}
    assert cat.facet_counts([]) == {"brand": {}, "category": {}}


def test_bundle_without_catalogue_gives_blank_metadata() -> None:
    cat = CatalogIndex.from_bundle(make_bundle(with_catalog=False))
    assert cat.n_items == 12
    assert cat.title(0) == ""
    assert cat.leaf_category(0) == ""
    assert not cat.mask_for(category="Lab").any()
    assert cat.mask_for().all()


def test_brand_and_category_spellings_differing_in_case_share_one_code() -> None:
    cat = CatalogIndex.build(
        ["a", "b", "c"],
        {
            "a": {"brand": "eSUN", "categories": ["X", "Filament"]},
            "b": {"brand": "ESUN", "categories": ["X", "filament"]},
            "c": {"brand": "", "categories": "Solo"},
        },
    )
    assert cat.brand_codes.tolist() == [0, 0, -1]
    assert cat.facet_counts([0, 1, 2]) == {"brand": {"eSUN": 2}, "category": {"Filament": 2, "Solo": 1}}
