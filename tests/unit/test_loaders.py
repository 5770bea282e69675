"""Unit tests of shoprec.data.loaders on tiny hand-made files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shoprec.data import DATA_FORMATS, Dataset, ItemMeta, load_dataset, resolve_dataset_path
from shoprec.data.loaders import detect_format, natural_sort_key, split_amazon_categories
from shoprec.errors import DataFormatError, DatasetNotFoundError


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def seqs_by_user(ds: Dataset) -> dict[str, list[str]]:
    """user id -> item ids, to compare with the source data independently of internal indices."""
    return {
        uid: [ds.item_ids[i] for i in seq.tolist()]
        for uid, seq in zip(ds.user_ids, ds.sequences, strict=True)
    }


def amazon_folder(tmp_path: Path, items: object, interactions: object) -> Path:
    folder = tmp_path / "shop"
    write(folder, "items.json", json.dumps(items, indent=2))
    write(folder, "interactions.json", json.dumps(interactions, indent=2))
    return folder


ITEMS = {
    "0": {
        "title": "Tape",
        "description": "",
        "brand": "3M",
        "categories": "Ind,Tapes, Adhesives & Sealants,Tapes",
    },
    "1": {"title": "Glue", "description": " Strong. ", "brand": "", "categories": "Ind,Glue"},
    "2": {"title": "Unsold", "description": "", "brand": "X", "categories": ""},
    "10": {"title": "Ten", "description": "", "brand": "", "categories": "Ind"},
}


# ---------------------------------------------------------------------------------------------- ordering


def test_formats_tuple_names_the_five_formats() -> None:
    assert DATA_FORMATS == ("amazon-json", "sequences", "sasrec", "generic", "eventlog")


def test_natural_sort_puts_numbers_first_in_numeric_order_then_text() -> None:
    ids = ["b", "10", "2", "a10", "a2", "007", "7", "1"]
    assert sorted(ids, key=natural_sort_key) == ["1", "2", "007", "7", "10", "a10", "a2", "b"]


def test_sequences_ids_are_sorted_naturally_and_sequences_follow(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "10 b 2 a\n2 10 1\nx 1 a\n")
    ds = load_dataset(path, "sequences")
    assert ds.user_ids == ["2", "10", "x"]
    assert ds.item_ids == ["1", "2", "10", "a", "b"]
    assert seqs_by_user(ds) == {"10": ["b", "2", "a"], "2": ["10", "1"], "x": ["1", "a"]}
    assert all(s.dtype == np.int64 for s in ds.sequences)


# ---------------------------------------------------------------------------------------------- sequences


def test_sequences_file_loads_users_in_chronological_order(tmp_path: Path) -> None:
    path = write(tmp_path, "beauty.txt", "1 1 2 3\n2 3 1\n")
    ds = load_dataset(path)
    assert ds.fmt == "sequences"
    assert ds.name == "beauty"
    assert ds.source == str(path.resolve())
    assert ds.catalog is None
    assert ds.n_users == 2
    assert ds.n_items == 3
    assert ds.n_interactions == 5
    assert [s.tolist() for s in ds.sequences] == [[0, 1, 2], [2, 0]]


def test_sequences_ignore_blank_lines_crlf_and_extra_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "\n1  5\t6 \r\n\r\n  2 6\r\n")
    ds = load_dataset(path, "sequences")
    assert seqs_by_user(ds) == {"1": ["5", "6"], "2": ["6"]}


def test_sequences_line_without_items_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "1 5 6\n\n2\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, "sequences")
    assert err.value.path == str(path.resolve())
    assert err.value.line == 3
    assert err.value.field == "item_id"
    assert "user '2' has no items" in str(err.value)
    assert str(path.resolve()) in str(err.value)


def test_sequences_repeated_user_names_both_lines_and_suggests_sasrec(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "1 5 6\n2 5\n1 7\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, "sequences")
    assert err.value.line == 3
    assert err.value.field == "user_id"
    assert "line 1" in err.value.reason
    assert "sasrec" in err.value.reason


def test_text_file_without_data_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "\n  \n")
    with pytest.raises(DataFormatError, match="no data"):
        load_dataset(path)


def test_non_utf8_text_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes(b"1 2 3\n2 \xff\xfe 3\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, "sequences")
    assert err.value.line == 2
    assert "UTF-8" in err.value.reason


# ---------------------------------------------------------------------------------------------- sasrec


def test_sasrec_pairs_are_grouped_per_user_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "sas.txt", "1 30\n2 10\n1 20\n1 30\n2 5\n")
    ds = load_dataset(path, "sasrec")
    assert ds.fmt == "sasrec"
    assert seqs_by_user(ds) == {"1": ["30", "20", "30"], "2": ["10", "5"]}
    assert ds.item_ids == ["5", "10", "20", "30"]


def test_sasrec_line_with_three_values_names_line_and_suggests_sequences(tmp_path: Path) -> None:
    path = write(tmp_path, "sas.txt", "1 30\n1 20 40\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, "sasrec")
    assert err.value.line == 2
    assert "found 3" in err.value.reason
    assert "sequences" in err.value.reason


def test_sasrec_line_with_only_a_user_names_line_and_item_field(tmp_path: Path) -> None:
    path = write(tmp_path, "sas.txt", "1 30\n1 20\n\n7\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path, "sasrec")
    assert (err.value.line, err.value.field) == (4, "item_id")


# ---------------------------------------------------------------------------------------------- detection


def test_auto_detects_sasrec_when_all_lines_are_pairs_and_users_repeat(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "1 5\n1 6\n2 5\n")
    assert detect_format(path) == "sasrec"
    assert load_dataset(path).fmt == "sasrec"


def test_auto_detects_sequences_when_a_line_has_more_than_two_tokens(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "1 5\n1 6 7\n")
    assert detect_format(path) == "sequences"


def test_auto_detects_sequences_for_pairs_with_distinct_users(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "1 5\n2 6\n")
    assert detect_format(path) == "sequences"


def test_auto_detects_amazon_json_folder_and_its_files(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0, 1]})
    assert detect_format(folder) == "amazon-json"
    ds = load_dataset(folder / "interactions.json")
    assert ds.fmt == "amazon-json"
    assert ds.name == "shop"
    assert ds.source == str(folder.resolve())


def test_auto_detects_generic_folder_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "a", "interactions.csv", "user_id,item_id\nu,i\n")
    jsonl_path = write(tmp_path / "b", "events.jsonl", '{"user_id": "u", "item_id": "i"}\n')
    assert detect_format(csv_path.parent) == "generic"
    assert detect_format(csv_path) == "generic"
    assert detect_format(jsonl_path) == "generic"
    assert load_dataset(jsonl_path).fmt == "generic"


def test_auto_refuses_a_stray_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, "dump.json", "{}")
    with pytest.raises(DataFormatError, match="cannot tell the format") as err:
        load_dataset(path)
    assert err.value.path == str(path.resolve())


def test_folder_with_sequences_txt_loads_that_file_and_is_named_after_the_folder(tmp_path: Path) -> None:
    write(tmp_path / "beauty", "sequences.txt", "1 1 2\n")
    write(tmp_path / "beauty", "notes.txt", "not data\n")
    ds = load_dataset(tmp_path / "beauty")
    assert (ds.fmt, ds.name, ds.n_interactions) == ("sequences", "beauty", 2)


def test_folder_without_dataset_files_raises_not_found_listing_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(tmp_path / "empty")
    message = str(err.value)
    for expected in ("items.json", "interactions.csv", "interactions.jsonl", "sequences.txt"):
        assert expected in message


def test_explicit_format_wins_over_detection(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0, 1]})
    write(folder, "interactions.csv", "user_id,item_id\nz,q\n")
    assert load_dataset(folder).fmt == "amazon-json"
    ds = load_dataset(folder, "generic")
    assert ds.fmt == "generic"
    assert seqs_by_user(ds) == {"z": ["q"]}


def test_unknown_format_raises_value_error_listing_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "1 2\n")
    with pytest.raises(ValueError, match="sasrec"):
        load_dataset(path, "parquet")


# ---------------------------------------------------------------------------------------------- paths


def test_resolve_returns_existing_path_as_absolute(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "1 2\n")
    assert resolve_dataset_path(path) == path.resolve()


def test_resolve_falls_back_to_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "root" / "beauty", "sequences.txt", "1 2\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset_path("beauty", tmp_path / "root") == (tmp_path / "root" / "beauty").resolve()
    assert load_dataset("beauty", data_root=tmp_path / "root").n_interactions == 1


def test_resolve_uses_env_var_then_default_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "env-root" / "ds", "sequences.txt", "1 2\n")
    write(tmp_path / "shared" / "data" / "ds2", "sequences.txt", "1 2\n")
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    monkeypatch.setenv("SHOPREC_DATA_ROOT", str(tmp_path / "env-root"))
    assert resolve_dataset_path("ds") == (tmp_path / "env-root" / "ds").resolve()
    monkeypatch.delenv("SHOPREC_DATA_ROOT")
    assert resolve_dataset_path("ds2") == (tmp_path / "shared" / "data" / "ds2").resolve()


def test_missing_dataset_names_every_place_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("nope", data_root=tmp_path / "root")
    message = str(err.value)
    assert str(tmp_path / "nope") in message
    assert str(tmp_path / "root" / "nope") in message
    assert "SHOPREC_DATA_ROOT" in message


# ---------------------------------------------------------------------------------------------- amazon-json


def test_amazon_json_loads_catalog_and_keeps_items_without_interactions(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"1": [10, "0"], "0": [1, 0, 1]})
    ds = load_dataset(folder, "amazon-json")
    assert ds.item_ids == ["0", "1", "2", "10"]
    assert ds.user_ids == ["0", "1"]
    assert seqs_by_user(ds) == {"0": ["1", "0", "1"], "1": ["10", "0"]}
    assert ds.catalog is not None
    assert set(ds.catalog) == {"0", "1", "2", "10"}
    assert ds.catalog["1"] == ItemMeta(
        title="Glue", brand="", categories=("Ind", "Glue"), description="Strong."
    )
    assert ds.catalog["2"].categories == ()


def test_amazon_categories_keep_commas_inside_names(tmp_path: Path) -> None:
    text = "Industrial & Scientific,Tapes, Adhesives & Sealants,Tapes,Masking Tape"
    assert split_amazon_categories(text) == (
        "Industrial & Scientific",
        "Tapes, Adhesives & Sealants",
        "Tapes",
        "Masking Tape",
    )
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0]})
    ds = load_dataset(folder)
    assert ds.catalog is not None
    assert ds.catalog["0"].categories == ("Ind", "Tapes, Adhesives & Sealants", "Tapes")


def test_amazon_categories_decode_html_entities_and_drop_empty_names() -> None:
    assert split_amazon_categories("A,80+ x NH &amp; Type 27,,") == ("A", "80+ x NH & Type 27")
    assert split_amazon_categories("") == ()


def test_amazon_unknown_item_names_file_user_and_position(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0, 1], "7": [0, 1, 99]})
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert err.value.path == str(folder.resolve() / "interactions.json")
    assert err.value.field == "7"
    assert "'99'" in err.value.reason
    assert "position 3" in err.value.reason
    assert err.value.line == 6  # where "7": starts in the indented file


def test_amazon_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    write(folder, "items.json", json.dumps(ITEMS))
    write(folder, "interactions.json", '{\n  "0": [0, 1],\n  "1": [0,, 1]\n}\n')
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert err.value.path.endswith("interactions.json")
    assert err.value.line == 3
    assert "invalid JSON" in err.value.reason


def test_amazon_user_mapped_to_non_list_names_user_field(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0], "5": "0 1"})
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert err.value.field == "5"
    assert "array" in err.value.reason
    assert "a string" in err.value.reason


def test_amazon_boolean_item_is_a_wrong_json_type(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0, True]})
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert err.value.field == "0"
    assert "position 2" in err.value.reason


def test_amazon_user_without_interactions_is_an_error(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {"0": [0], "1": []})
    with pytest.raises(DataFormatError, match="no interactions") as err:
        load_dataset(folder)
    assert err.value.field == "1"


def test_amazon_items_file_must_be_an_object_of_objects(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, [1, 2], {"0": [0]})
    with pytest.raises(DataFormatError, match="object keyed by item id") as err:
        load_dataset(folder)
    assert err.value.path.endswith("items.json")


def test_amazon_non_string_title_names_item_and_field(tmp_path: Path) -> None:
    items = {**ITEMS, "1": {"title": 5}}
    folder = amazon_folder(tmp_path, items, {"0": [0]})
    with pytest.raises(DataFormatError) as err:
        load_dataset(folder)
    assert err.value.path.endswith("items.json")
    assert err.value.field == "1.title"
    assert err.value.line is not None


def test_amazon_folder_missing_items_json_raises_not_found(tmp_path: Path) -> None:
    write(tmp_path / "shop", "interactions.json", "{}")
    with pytest.raises(DatasetNotFoundError, match=r"items\.json"):
        load_dataset(tmp_path / "shop", "amazon-json")


# ---------------------------------------------------------------------------------------------- generic


def test_generic_csv_without_timestamps_keeps_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id\nu2,b\nu1,a\nu2,a\nu2,b\n")
    ds = load_dataset(tmp_path)
    assert (ds.fmt, ds.catalog) == ("generic", None)
    assert ds.name == tmp_path.name
    assert seqs_by_user(ds) == {"u1": ["a"], "u2": ["b", "a", "b"]}
    assert load_dataset(path).name == "interactions"


def test_generic_csv_sorts_each_users_events_by_timestamp_stably(tmp_path: Path) -> None:
    write(
        tmp_path,
        "interactions.csv",
        "user_id,item_id,timestamp\n"
        "u,late,2024-01-03T00:00:00Z\n"
        "u,tie1,1704153600\n"  # 2024-01-02T00:00:00Z in epoch seconds
        "u,early,2024-01-01\n"
        "u,tie2,1704153600000\n"  # the same instant in epoch milliseconds
        "u,tie3,2024-01-02T01:00:00+01:00\n"  # the same instant with an offset
        "v,x,5\n",
    )
    ds = load_dataset(tmp_path)
    assert seqs_by_user(ds) == {"u": ["early", "tie1", "tie2", "tie3", "late"], "v": ["x"]}


def test_generic_jsonl_with_catalog_includes_items_never_interacted_with(tmp_path: Path) -> None:
    write(
        tmp_path,
        "catalog.jsonl",
        '{"item_id": "sku-1", "title": " Mug ", "brand": "Acme", "categories": ["Home", "Kitchen, Dining"],'
        ' "price": 9.5, "colour": "red"}\n'
        '{"item_id": "sku-2", "categories": "Home > Garden", "price": "12"}\n'
        '{"item_id": 3, "categories": "Home, Bath", "description": "d", "price": null}\n'
        "\n",
    )
    write(
        tmp_path,
        "interactions.jsonl",
        '{"user_id": 7, "item_id": "sku-2", "timestamp": 20, "event_type": "Purchase"}\n'
        '{"user_id": "7", "item_id": "sku-1", "timestamp": "1970-01-01T00:00:10Z", "event_type": "view"}\n',
    )
    ds = load_dataset(tmp_path)
    assert ds.item_ids == ["3", "sku-1", "sku-2"]
    assert seqs_by_user(ds) == {"7": ["sku-1", "sku-2"]}
    assert ds.catalog == {
        "sku-1": ItemMeta(title="Mug", brand="Acme", categories=("Home", "Kitchen, Dining"), price=9.5),
        "sku-2": ItemMeta(categories=("Home", "Garden"), price=12.0),
        "3": ItemMeta(categories=("Home", "Bath"), description="d"),
    }


def test_generic_interactions_file_path_uses_the_sibling_catalog(tmp_path: Path) -> None:
    write(tmp_path, "catalog.jsonl", '{"item_id": "a"}\n{"item_id": "b"}\n')
    path = write(tmp_path, "events.csv", "user_id,item_id\nu,a\n")
    ds = load_dataset(path)
    assert ds.item_ids == ["a", "b"]


def test_generic_csv_accepts_bom_extra_columns_any_order_and_strips_ids(tmp_path: Path) -> None:
    text = "\ufeffsession, Item_ID ,user_id\ns1, a ,u1\ns2,b,  u1\n"
    write(tmp_path, "interactions.csv", text)
    ds = load_dataset(tmp_path)
    assert seqs_by_user(ds) == {"u1": ["a", "b"]}


def test_generic_csv_missing_header_column_names_line_1_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user,item_id\nu,a\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path.resolve()), 1, "user_id")
    assert "header" in err.value.reason


def test_generic_csv_empty_item_value_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id\nu,a\n\nu, \n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path.resolve()), 4, "item_id")
    assert "empty" in err.value.reason


def test_generic_csv_short_row_names_the_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id,timestamp\nu,a,1\nu,b\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (3, "timestamp")
    assert "missing value" in err.value.reason


def test_generic_bad_timestamp_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,yesterday\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (3, "timestamp")
    assert "'yesterday'" in err.value.reason
    assert "ISO-8601" in err.value.reason


def test_generic_non_finite_timestamp_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id,timestamp\nu,a,nan\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (2, "timestamp")


def test_generic_bad_event_type_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.csv", "user_id,item_id,event_type\nu,a,VIEW\nu,b,like\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (3, "event_type")
    assert "'like'" in err.value.reason
    assert "purchase" in err.value.reason


def test_generic_event_types_all_count_as_interactions(tmp_path: Path) -> None:
    rows = "".join(f"u,{e},{e}\n" for e in ("view", "click", "Cart", " purchase "))
    write(tmp_path, "interactions.csv", "user_id,item_id,event_type\n" + rows)
    assert load_dataset(tmp_path).n_interactions == 4


def test_generic_jsonl_invalid_json_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.jsonl", '{"user_id": "u", "item_id": "a"}\n\n{"user_id": "u",\n')
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.path, err.value.line) == (str(path.resolve()), 3)
    assert "invalid JSON" in err.value.reason


def test_generic_jsonl_line_that_is_not_an_object_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.jsonl", '{"user_id": "u", "item_id": "a"}\n["u", "b"]\n')
    with pytest.raises(DataFormatError, match="got an array") as err:
        load_dataset(path)
    assert err.value.line == 2


def test_generic_jsonl_missing_key_and_wrong_id_type_name_field(tmp_path: Path) -> None:
    path = write(tmp_path, "interactions.jsonl", '{"user_id": "u"}\n')
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (1, "item_id")
    path.write_text('{"user_id": "u", "item_id": "a"}\n{"user_id": 1.5, "item_id": "a"}\n')
    with pytest.raises(DataFormatError, match="string or an integer") as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (2, "user_id")


def test_generic_jsonl_timestamps_on_some_records_only_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "interactions.jsonl",
        '{"user_id": "u", "item_id": "a", "timestamp": 1}\n{"user_id": "u", "item_id": "b"}\n',
    )
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert (err.value.line, err.value.field) == (2, "timestamp")
    assert "line 1" in err.value.reason


def test_generic_item_missing_from_catalog_names_interactions_line(tmp_path: Path) -> None:
    write(tmp_path, "catalog.jsonl", '{"item_id": "a"}\n')
    path = write(tmp_path, "interactions.csv", "user_id,item_id\nu,a\nu,zz\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(tmp_path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path.resolve()), 3, "item_id")
    assert "'zz'" in err.value.reason
    assert "catalog.jsonl" in err.value.reason


def test_generic_catalog_duplicate_item_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "catalog.jsonl", '{"item_id": "a"}\n{"item_id": "b"}\n{"item_id": " a"}\n')
    write(tmp_path, "interactions.csv", "user_id,item_id\nu,a\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(tmp_path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path.resolve()), 3, "item_id")
    assert "line 1" in err.value.reason


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ('{"item_id": "a", "price": "cheap"}', "price"),
        ('{"item_id": "a", "price": -1}', "price"),
        ('{"item_id": "a", "title": ["x"]}', "title"),
        ('{"item_id": "a", "categories": 5}', "categories"),
        ('{"item_id": "a", "categories": ["x", 5]}', "categories"),
        ('{"title": "no id"}', "item_id"),
        ('{"item_id": ""}', "item_id"),
    ],
)
def test_generic_catalog_bad_values_name_line_and_field(tmp_path: Path, record: str, field: str) -> None:
    path = write(tmp_path, "catalog.jsonl", '{"item_id": "z"}\n' + record + "\n")
    write(tmp_path, "interactions.csv", "user_id,item_id\nu,z\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(tmp_path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path.resolve()), 2, field)


def test_generic_folder_with_both_interaction_files_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id\nu,a\n")
    write(tmp_path, "interactions.jsonl", '{"user_id": "u", "item_id": "a"}\n')
    with pytest.raises(DataFormatError, match="both"):
        load_dataset(tmp_path)


def test_generic_file_with_header_only_has_no_interactions(tmp_path: Path) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id\n")
    with pytest.raises(DataFormatError, match="no interactions"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------------------------------------- progress


def test_progress_reports_every_1000_lines_and_once_at_the_end(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "".join(f"{u} {u % 7} {u % 5}\n" for u in range(2500)))
    calls: list[tuple[int, int]] = []
    ds = load_dataset(path, progress=lambda done, total: calls.append((done, total)))
    assert ds.n_users == 2500
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_progress_counts_users_for_amazon_json(tmp_path: Path) -> None:
    folder = amazon_folder(tmp_path, ITEMS, {str(u): [0] for u in range(1500)})
    calls: list[tuple[int, int]] = []
    load_dataset(folder, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1000, 1500), (1500, 1500)]
