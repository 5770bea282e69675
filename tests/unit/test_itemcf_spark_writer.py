"""The parts of sagemaker/processing/itemcf_spark.py that need no Spark: the neighbour-table writer (the
bundle's ``itemcf.npz``, byte for byte), the item order (``load_dataset``'s natural order) and the option
checks (``fit_itemcf``'s)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from shoprec.artifacts import ITEMCF, BundleWriter
from shoprec.data.loaders import natural_sort_key
from shoprec.deploy.processing_jobs import ITEMCF_SPARK_SCRIPT
from shoprec.errors import ArtifactError
from shoprec.recall.itemcf import fit_itemcf
from shoprec.recall.itemcf_files import read_neighbour_table


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("itemcf_spark", ITEMCF_SPARK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


job = _script()


def test_the_table_is_written_as_the_bundle_writes_it(tmp_path: Path) -> None:
    seqs = [np.array(s) for s in ([0, 1, 2, 3], [1, 2, 4], [4, 0, 1], [3, 3, 2])]
    cf = fit_itemcf(seqs, 6, k=3)
    written = job.write_neighbour_table(tmp_path / "spark", cf.indices, cf.scores, list("abcdef"), {"k": 3})
    assert [p.name for p in written] == ["itemcf.npz", "item_ids.json", "itemcf.json"]

    with BundleWriter(tmp_path / "bundle") as w:
        expected = w.add_npz(ITEMCF, {"indices": cf.indices, "scores": cf.scores}).read_bytes()
        w.abort()
    assert (tmp_path / "spark" / "itemcf.npz").read_bytes() == expected
    table = read_neighbour_table(tmp_path / "spark", list("abcdef"))
    np.testing.assert_array_equal(table.indices, cf.indices)
    np.testing.assert_array_equal(table.scores, cf.scores)
    assert json.loads((tmp_path / "spark" / "item_ids.json").read_text()) == list("abcdef")
    assert json.loads((tmp_path / "spark" / "itemcf.json").read_text()) == {"k": 3}


def test_a_table_of_other_items_or_a_broken_folder_is_refused(tmp_path: Path) -> None:
    cf = fit_itemcf([np.array([0, 1, 2]), np.array([2, 1])], 3, k=2)
    job.write_neighbour_table(tmp_path, cf.indices, cf.scores, ["1", "2", "3"])
    with pytest.raises(ArtifactError, match="row 1 is item '2' in the table, 'x' in the dataset"):
        read_neighbour_table(tmp_path, ["1", "x", "3"])
    with pytest.raises(ArtifactError, match="the dataset has 4 items, the table 3"):
        read_neighbour_table(tmp_path, ["1", "2", "3", "4"])
    (tmp_path / "item_ids.json").write_text('["1", "2"]')
    with pytest.raises(ArtifactError, match="has 3 rows for 2 items"):
        read_neighbour_table(tmp_path)
    (tmp_path / "item_ids.json").write_text('{"1": 0}')
    with pytest.raises(ArtifactError, match="must be a JSON list of item id strings"):
        read_neighbour_table(tmp_path)
    (tmp_path / "itemcf.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match=r"is not a readable \.npz archive"):
        read_neighbour_table(tmp_path)
    (tmp_path / "itemcf.npz").unlink()
    with pytest.raises(ArtifactError, match=r"no 'itemcf\.npz'"):
        read_neighbour_table(tmp_path)


def test_the_writer_refuses_arrays_that_are_not_a_table(tmp_path: Path) -> None:
    good_i, good_s = np.full((3, 2), -1, dtype=np.int32), np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="int32 and scores float32"):
        job.write_neighbour_table(tmp_path, good_i.astype(np.int64), good_s, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"must both be \(2, k\)"):
        job.write_neighbour_table(tmp_path, good_i, good_s, ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_items_are_ordered_as_load_dataset_orders_them() -> None:
    ids = ["10", "2", "007", "7", "b", "A", "a10", "a2", "٣", "0"]
    assert sorted(ids, key=job.natural_sort_key) == sorted(ids, key=natural_sort_key)
    assert sorted(ids, key=job.natural_sort_key)[:5] == ["0", "2", "007", "7", "10"]
    assert job.MIN_EVAL_LENGTH == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0"], "--k must be >= 1"),
        (["--window", "-1"], "--window must be >= 1"),
        (["--alpha", "-0.1"], r"--alpha must lie in \[0, 1\]"),
        (["--backward-weight", "-2"], "--backward-weight must be >= 0"),
        (["--distance-power", "nan"], "--distance-power must be a finite number"),
    ],
)
def test_options_are_checked_as_fit_itemcf_checks_them(args: list[str], message: str) -> None:
    with pytest.raises(job.InputError, match=message):
        job.parse_args(["--input", "x", *args])


def test_the_defaults_are_fit_itemcfs() -> None:
    import inspect

    args = job.parse_args(["--input", "x"])
    fit = inspect.signature(fit_itemcf).parameters
    assert args.k == fit["k"].default
    assert args.alpha == fit["alpha"].default
    assert args.backward_weight == fit["backward_weight"].default
    assert args.distance_power == fit["distance_power"].default
    assert args.window == 0
    assert fit["window"].default is None
    assert args.holdout == 1
