from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.unit.fakes import make_catalog

from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError
from shoprec.search.bm25 import ANALYZER, Bm25Search, analyze, tokenize, words

CATALOG = make_catalog()
SEARCH = Bm25Search.build(CATALOG)


def ids(idx: np.ndarray) -> list[str]:
    return [CATALOG.item_ids[i] for i in idx]


def test_tokenize_lowercases_drops_stopwords_and_folds_plurals() -> None:
    assert tokenize("The Glass Beakers of a LAB") == ["glass", "beaker", "lab"]
    assert tokenize("calipers gas bus axis x 6 1.75mm") == ["caliper", "gas", "bus", "axis", "1.75mm"]


def test_title_match_beats_description_match() -> None:
    idx, scores = SEARCH.search("beaker", 10)
    # p2, p3 have "beaker" in the title; p4 only in its description.
    assert set(ids(idx)[:2]) == {"p2", "p3"}
    assert ids(idx)[2:] == ["p4"]
    assert np.all(np.diff(scores) <= 0)


def test_more_query_words_matched_ranks_higher() -> None:
    idx, _ = SEARCH.search("glass beaker", 10)
    assert ids(idx)[0] == "p2"


def test_brand_and_category_fields_are_searched() -> None:
    assert ids(SEARCH.search("hatchbox", 10)[0]) == ["p5", "p6"]
    assert set(ids(SEARCH.search("duct", 10)[0])) == {"p9"}
    assert set(ids(SEARCH.search("adhesives", 10)[0])) == {"p9", "p10"}  # category path only


def test_mask_filters_the_results() -> None:
    idx, _ = SEARCH.search("filament", 10, mask=CATALOG.mask_for(brand="esun"))
    assert set(ids(idx)) == {"p7", "p8"}
    idx, _ = SEARCH.search("filament", 2)
    assert len(idx) == 2


def test_match_returns_every_matching_item_best_first_for_facets() -> None:
    idx, scores = SEARCH.match("glass beaker")
    assert set(ids(idx)) == {"p2", "p3", "p4"}
    assert np.all(np.diff(scores) <= 0)
    assert CATALOG.facet_counts(idx) == {
        "brand": {"SEOH": 2, "Karter Scientific": 1},
        "category": {"Beakers": 2, "Cylinders": 1},
    }


def test_queries_without_known_words_match_nothing() -> None:
    for q in ("", "the of and", "zeppelin"):
        idx, scores = SEARCH.search(q, 10)
        assert idx.size == 0
        assert scores.size == 0
        assert SEARCH.match(q)[0].size == 0


def test_field_weights_are_configurable_and_validated() -> None:
    titles_only = Bm25Search.build(CATALOG, weights={"title": 1.0, "description": 0.0})
    assert set(ids(titles_only.search("beaker", 10)[0])) == {"p2", "p3"}
    with pytest.raises(ValueError, match="unknown search fields"):
        Bm25Search.build(CATALOG, weights={"colour": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        Bm25Search.build(CATALOG, weights={"title": -1.0})


def test_a_catalogue_without_text_builds_and_matches_nothing() -> None:
    empty = CatalogIndex.build(["a", "b"], {})
    search = Bm25Search.build(empty)
    assert search.search("anything", 5)[0].size == 0


def _catalog(titles: list[str]) -> CatalogIndex:
    return CatalogIndex.build(
        [f"i{n}" for n in range(len(titles))], {f"i{n}": {"title": t} for n, t in enumerate(titles)}
    )


def test_analyze_gives_an_exact_and_a_stem_token_per_word() -> None:
    assert analyze("The Measuring Calipers") == (["measuring", "caliper"], ["~measur", "~calip"])
    assert analyze("the of") == ([], [])


def test_stems_find_other_word_forms_and_exact_matches_rank_first() -> None:
    catalog = _catalog(["Measure Tape", "Measuring Cup", "Tape Dispenser"])
    search = Bm25Search.build(catalog)
    idx, scores = search.search("measuring", 10)
    assert [catalog.item_ids[i] for i in idx] == ["i1", "i0"]  # exact "measuring" first, then the stem
    assert scores[0] > scores[1] > 0
    assert [catalog.item_ids[i] for i in search.search("measure", 10)[0]] == ["i0", "i1"]


def test_stem_weight_zero_matches_exact_tokens_only() -> None:
    catalog = _catalog(["Measure Tape", "Measuring Cup"])
    exact_only = Bm25Search.build(catalog, stem_weight=0.0)
    assert [catalog.item_ids[i] for i in exact_only.search("measuring", 10)[0]] == ["i1"]
    with pytest.raises(ValueError, match="stem_weight"):
        Bm25Search.build(catalog, stem_weight=-0.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.75mm PLA", ["1.75mm", "pla"]),
        ("1.75 mm PLA", ["1.75mm", "pla"]),
        ("1.75 Millimeters", ["1.75mm"]),
        ('3/8" drill', ["3/8in", "drill"]),
        ("3/8 inch drill", ["3/8in", "drill"]),
        ("1/2-Inch Hose", ["1/2in", "hose"]),
        ("2-1/2-Inch key", ["2-1/2in", "key"]),
        ("1/4 NPT male", ["1/4", "npt", "male"]),
        ("500 mL flask", ["500ml", "flask"]),
        ("22 AWG wire, 12 Volt", ["22awg", "wire", "12v"]),
        ("M3 screws", ["m3", "screws"]),
        ("3M tape, 3 m", ["3m", "tape"]),  # "m" is not a unit: the brand stays itself
    ],
)
def test_quantities_become_one_word_with_one_spelling_of_the_unit(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_units_match_across_spellings_in_documents_and_queries() -> None:
    titles = ["PLA Filament 1.75 mm", "PLA Filament 3mm", "NPT Plug 1/4", "NPT Plug 1/2", 'Drill 3/8"']
    catalog = _catalog(titles)
    search = Bm25Search.build(catalog)

    def top(query: str) -> str:
        return catalog.item_ids[search.search(query, 5)[0][0]]

    assert top("1.75mm filament") == "i0"
    assert top("3 mm filament") == "i1"
    assert top("1/4 NPT") == "i2"
    assert top("1/2 NPT") == "i3"
    assert [catalog.item_ids[i] for i in search.search("3/8 inch", 5)[0]] == ["i4"]


QUERIES = ("beaker", "glass beaker", "hatchbox pla", "1.75 mm filament", "nitrle glovs", "ductape", "zzz")


def test_a_saved_index_loads_memory_mapped_and_scores_as_the_built_one(tmp_path: Path) -> None:
    spec = SEARCH.save(tmp_path / "search")
    assert set(spec.fields) == {"title", "brand", "categories", "description"}
    assert spec.analyzer == ANALYZER
    assert spec.n_items == CATALOG.n_items
    assert spec.spelling
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == {f"search/{name.split('/', 1)[1]}" for name in spec.files()}
    loaded = Bm25Search.load(tmp_path / "search", spec)
    data = loaded._fields["title"][0].scores["data"]
    assert isinstance(data, np.memmap)
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.scores(query), SEARCH.scores(query))
        assert loaded.correct(query) == SEARCH.correct(query)
    for got, want in zip(loaded.field_stats(), SEARCH.field_stats(), strict=True):
        assert (got.name, got.weight, got.k1, got.b, got.n_docs, got.mean_length) == (
            want.name,
            want.weight,
            want.k1,
            want.b,
            want.n_docs,
            want.mean_length,
        )
        assert dict(got.vocabulary) == dict(want.vocabulary)
        np.testing.assert_array_equal(got.doc_freq, want.doc_freq)


def test_an_index_without_spelling_or_stems_round_trips(tmp_path: Path) -> None:
    search = Bm25Search.build(CATALOG, spelling=False, stem_weight=0.0, weights={"title": 2.0})
    spec = search.save(tmp_path)
    assert not spec.spelling
    assert list(spec.fields) == ["title"]
    assert spec.stem_weight == 0.0
    loaded = Bm25Search.load(tmp_path, spec, mmap=False)
    assert loaded.spelling is None
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.scores(query), search.scores(query))


def test_loading_refuses_another_analyzer_and_unreadable_files(tmp_path: Path) -> None:
    spec = SEARCH.save(tmp_path)
    with pytest.raises(ArtifactError, match="analyzer"):
        Bm25Search.load(tmp_path, spec.model_copy(update={"analyzer": "other/0"}))
    with pytest.raises(ArtifactError, match="indexes 12 items"):
        Bm25Search.load(tmp_path, spec.model_copy(update={"n_items": 13}))
    (tmp_path / "spelling.json").write_text("{", encoding="utf-8")
    with pytest.raises(ArtifactError, match="cannot load the search index"):
        Bm25Search.load(tmp_path, spec)
    (tmp_path / "brand" / "indptr.csc.index.npy").unlink()
    with pytest.raises(ArtifactError, match="cannot load the search index"):
        Bm25Search.load(tmp_path, spec)


def test_a_catalogue_without_text_has_no_index_to_save(tmp_path: Path) -> None:
    empty = CatalogIndex.build(["a", "b"], {})
    with pytest.raises(ValueError, match="no text"):
        Bm25Search.build(empty).save(tmp_path)
