"""sagemaker/processing/itemcf_spark.py, the Spark job of ``shoprec sagemaker itemcf``, run with a local
Spark master on Amazon Scientific: the same neighbour table as ``fit_itemcf`` (indices and float32 scores
equal), in the bundle's format and item order. Needs pyspark (the ``spark`` extra) and a Java runtime;
skipped without them."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from shoprec.data import leave_one_out, load_dataset
from shoprec.deploy.processing_jobs import ITEMCF_SPARK_SCRIPT
from shoprec.recall.itemcf import fit_itemcf
from shoprec.recall.itemcf_files import read_neighbour_table

pytest.importorskip("pyspark", reason="pyspark is the spark extra: pip install 'shoprec[spark]'")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (java not on PATH)", allow_module_level=True)

pytestmark = pytest.mark.slow


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("itemcf_spark", ITEMCF_SPARK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


job = _script()


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("test-itemcf")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def scientific_sequences(scientific_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Amazon Scientific's interactions in the sequences format (the job's input)."""
    users = json.loads((scientific_dir / "interactions.json").read_text())
    path = tmp_path_factory.mktemp("scientific") / "sequences.txt"
    path.write_text("".join(f"{u} " + " ".join(map(str, items)) + "\n" for u, items in users.items()))
    return path


def fit_with_spark(spark: Any, data: Path, out: Path, *args: str) -> dict[str, Any]:
    parsed = job.parse_args(
        ["--input", str(data), "--output-dir", str(out), "--collect-items", "1000", *args]
    )
    meta: dict[str, Any] = job.run(parsed, spark)
    return meta


def test_the_spark_job_writes_fit_itemcfs_table_for_the_bundle(
    spark: Any, scientific_sequences: Path, tmp_path: Path
) -> None:
    meta = fit_with_spark(spark, scientific_sequences, tmp_path)
    ds = load_dataset(scientific_sequences, "sequences")
    expected = fit_itemcf(leave_one_out(ds).train_with_valid(), ds.n_items)  # what shoprec train bundles

    table = read_neighbour_table(tmp_path, ds.item_ids)  # rows in the dataset's (the bundle's) item order
    assert table.indices.shape == (ds.n_items, 100)
    np.testing.assert_array_equal(table.indices, expected.indices)
    np.testing.assert_array_equal(table.scores, expected.scores)
    assert meta["n_items"] == ds.n_items == 4344
    assert meta["users"] == ds.n_users
    assert meta["interactions"] == ds.n_interactions
    assert meta["train_interactions"] == sum(len(s) for s in leave_one_out(ds).train_with_valid())
    assert meta["neighbours"] == int((expected.indices >= 0).sum())
    assert json.loads((tmp_path / "itemcf.json").read_text())["fit"]["alpha"] == 0.8


def test_every_parameter_reaches_the_similarity(
    spark: Any, scientific_sequences: Path, tmp_path: Path
) -> None:
    """Window, symmetric cosine, no backward pairs, another distance power, the validation fit and a small k
    on the first 2,000 users, with ids that are not all numbers (natural order)."""
    lines = scientific_sequences.read_text().splitlines()[:2000]
    data = tmp_path / "subset.txt"
    data.write_text("\n".join(f"{u} " + " ".join(f"i{x}" if int(x) % 7 == 0 else x for x in rest)
                              for u, *rest in (line.split() for line in lines)) + "\n")  # fmt: skip
    meta = fit_with_spark(
        spark, data, tmp_path / "out", "--k", "20", "--window", "3", "--alpha", "0.5",
        "--backward-weight", "0", "--distance-power", "1.0", "--holdout", "2",
    )  # fmt: skip
    ds = load_dataset(data, "sequences")
    expected = fit_itemcf(
        leave_one_out(ds).train,
        ds.n_items,
        k=20,
        window=3,
        alpha=0.5,
        backward_weight=0.0,
        distance_power=1.0,
    )
    assert json.loads((tmp_path / "out" / "item_ids.json").read_text()) == ds.item_ids
    with np.load(tmp_path / "out" / "itemcf.npz") as z:
        np.testing.assert_array_equal(z["indices"], expected.indices)
        np.testing.assert_array_equal(z["scores"], expected.scores)
    assert meta["fit"]["window"] == 3


def test_a_driver_without_pandas_collects_rows(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "toy.txt"
    data.write_text("u1 a b c d\nu2 b c e\nu3 a c a\n")
    args = job.parse_args(["--input", str(data), "--output-dir", str(tmp_path), "--holdout", "0", "--k", "3"])
    item_ids, top, _ = job.fit_top_k(spark, job.read_sequences(spark, str(data)), args)
    with_pandas = job.collect_table(top, len(item_ids), 3, 2)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    without = job.collect_table(top, len(item_ids), 3, 2)
    ds = load_dataset(data, "sequences")
    expected = fit_itemcf(ds.sequences, ds.n_items, k=3)
    for indices, scores in (with_pandas, without):
        np.testing.assert_array_equal(indices, expected.indices)
        np.testing.assert_array_equal(scores, expected.scores)


def test_bad_lines_are_named(spark: Any, tmp_path: Path) -> None:
    data = tmp_path / "bad.txt"
    data.write_text("1 10 11\n2\n3 12\n")
    with pytest.raises(job.InputError, match="user '2' has no items"):
        fit_with_spark(spark, data, tmp_path / "out")
    data.write_text("1 10 11\n2 12\n1 13 14\n")
    with pytest.raises(job.InputError, match=r"repeated: '1' \(2 lines\)"):
        fit_with_spark(spark, data, tmp_path / "out")
    with pytest.raises(job.InputError, match="cannot be read"):
        fit_with_spark(spark, tmp_path / "absent.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_entry_point_prints_the_shape_and_fails_with_a_message(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` as smspark-submit runs it, on a toy file: exit 0, the table written, the shape on stdout; a
    bad option exits 2 with its message before Spark starts. (Last in this file: ``main`` stops the
    session it was given by ``getOrCreate``, the module's.)"""
    data = tmp_path / "toy.txt"
    data.write_text("u1 a b c d\nu2 b c e\nu3 a c\n")
    argv = ["--input", str(data), "--output-dir", str(tmp_path / "o")]
    bad = subprocess.run(
        [sys.executable, str(ITEMCF_SPARK_SCRIPT), *argv, "--alpha", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "error: --alpha must lie in [0, 1], got 2.0" in bad.stderr

    assert job.main([*argv, "--master", "local[1]", "--holdout", "0"]) == 0
    meta = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (meta["n_items"], meta["users"], meta["interactions"]) == (5, 3, 9)
    ds = load_dataset(data, "sequences")
    expected = fit_itemcf(ds.sequences, ds.n_items)
    with np.load(tmp_path / "o" / "itemcf.npz") as z:
        np.testing.assert_array_equal(z["indices"], expected.indices)
        np.testing.assert_array_equal(z["scores"], expected.scores)
