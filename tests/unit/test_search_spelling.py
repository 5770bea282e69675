from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprec.catalog import CatalogIndex
from shoprec.search.bm25 import Bm25Search
from shoprec.search.spelling import Correction, EnglishWords, SpellingCorrector

ROWS = {
    "g1": {"title": "Nitrile Gloves Blue", "description": "powder free nitrile gloves"},
    "g2": {"title": "Nitrile Gloves Black", "description": "nitrile exam gloves"},
    "t1": {"title": "Duct Tape Silver", "description": "strong duct tape, loaded on a core"},
    "t2": {"title": "Duct Tape Black", "description": "duct tape for repairs, loaded rolls"},
    "v1": {"title": "Wet Dry Vacuum", "description": "a vacuum for the shop, not a vaccum"},
    "v2": {"title": "Vacuum Filter", "description": "fits the vacuum"},
    "m1": {"title": "M3 Screws", "description": "m3 screws, 10 mm, loaded box"},
}


def _catalog(rows: dict[str, dict[str, str]] = ROWS) -> CatalogIndex:
    return CatalogIndex.build(list(rows), rows)


CATALOG = _catalog()
SPELLING = SpellingCorrector.build(CATALOG)


def titles(search: Bm25Search, query: str) -> list[str]:
    return [CATALOG.titles[i] for i in search.search(query, 10)[0]]


def test_a_misspelled_word_is_corrected_to_the_catalogues_word() -> None:
    assert SPELLING.suggest("nitrle") == "nitrile"  # one letter missing
    assert SPELLING.suggest("glvoes") == "gloves"  # two letters swapped
    correction = SPELLING.correct("Nitrle glvoes, size M")
    assert correction == Correction(
        "Nitrle glvoes, size M", "nitrile gloves, size M", (("nitrle", "nitrile"), ("glvoes", "gloves"))
    )
    assert correction.changed


def test_words_of_the_catalogue_short_words_and_numbers_are_left_alone() -> None:
    correction = SPELLING.correct("nitrile gloves")
    assert correction == Correction("nitrile gloves", "nitrile gloves")
    assert not correction.changed
    for word in ("gloves", "pla", "m3", "10mm", "the"):
        assert SPELLING.suggest(word) is None


def test_english_words_missing_from_the_catalogue_are_not_corrected() -> None:
    # "flooded" is one edit from the catalogue's "loaded" (3 times) but is an English word.
    assert SPELLING.suggest("flooded") is None
    no_dictionary = SpellingCorrector.build(CATALOG, valid=None)
    assert no_dictionary.suggest("flooded") == "loaded"


def test_a_rare_catalogue_word_next_to_a_much_more_frequent_one_is_corrected() -> None:
    # "vaccum" occurs once, "vacuum" five times: below the ratio of 10, so it is kept ...
    assert SPELLING.suggest("vaccum") is None
    # ... and with a catalogue where "vacuum" is ten times as frequent, corrected.
    rows = {f"v{n}": {"title": "Shop Vacuum"} for n in range(10)} | {"x": {"title": "vaccum bag"}}
    assert SpellingCorrector.build(_catalog(rows)).suggest("vaccum") == "vacuum"


def test_a_run_together_word_is_split_into_a_pair_of_the_titles() -> None:
    assert SPELLING.suggest("ducttape") == "duct tape"  # exactly the pair
    assert SPELLING.suggest("ductape") == "duct tape"  # the pair with one letter missing
    assert SPELLING.correct("ductape silver").corrected == "duct tape silver"


def test_words_seen_once_are_not_candidates() -> None:
    rows = {"a": {"title": "Refractometer"}, "b": {"title": "Hydrometer"}, "c": {"title": "Hydrometer"}}
    corrector = SpellingCorrector.build(_catalog(rows))
    assert corrector.suggest("refractomter") is None
    assert corrector.suggest("hydromter") == "hydrometer"


def test_bm25_searches_with_the_original_and_the_corrected_words() -> None:
    search = Bm25Search.build(CATALOG)
    assert search.spelling is not None
    assert set(titles(search, "nitrle glovs")) == {"Nitrile Gloves Blue", "Nitrile Gloves Black"}
    assert set(titles(search, "ductape")) == {"Duct Tape Silver", "Duct Tape Black"}
    assert search.correct("nitrle glovs").corrected == "nitrile gloves"
    # The corrected query is searched together with the original: the same list as the right spelling.
    assert titles(search, "nitrle gloves") == titles(search, "nitrile gloves")


def test_bm25_without_spelling_does_not_correct() -> None:
    search = Bm25Search.build(CATALOG, spelling=False)
    assert search.spelling is None
    assert search.search("nitrle", 10)[0].size == 0
    assert search.correct("nitrle") == Correction("nitrle", "nitrle")


def test_english_words_come_from_symspellpys_dictionary_and_are_empty_without_it(tmp_path: Path) -> None:
    english = EnglishWords()
    assert "flooded" in english
    assert "infrared" in english
    assert "infared" not in english
    assert "" not in english
    assert "3d" not in english
    words = tmp_path / "words.txt"
    words.write_text("apple 10\nbanana 5\n", encoding="utf-8")
    small = EnglishWords(words)
    assert "apple" in small
    assert "banana" in small
    assert "appl" not in small


@pytest.mark.parametrize("bad", ["", "the of", "1/4 3mm"])
def test_queries_without_correctable_words_are_unchanged(bad: str) -> None:
    assert not SPELLING.correct(bad).changed


def test_the_vocabulary_round_trips_through_json() -> None:
    loaded = SpellingCorrector.from_dict(json.loads(json.dumps(SPELLING.to_dict())))
    assert loaded.counts == SPELLING.counts
    assert loaded.joined == SPELLING.joined
    assert loaded.n_entries == SPELLING.n_entries
    for query in ("nitrle glovs", "ductape silver", "vaccum", "beaker"):
        assert loaded.correct(query) == SPELLING.correct(query)


def test_a_malformed_vocabulary_is_a_value_error() -> None:
    obj = SPELLING.to_dict()
    with pytest.raises(ValueError, match="lacks 'joined'"):
        SpellingCorrector.from_dict({k: v for k, v in obj.items() if k != "joined"})
    with pytest.raises(ValueError, match="malformed"):
        SpellingCorrector.from_dict({**obj, "counts": ["not", "a", "mapping"]})
