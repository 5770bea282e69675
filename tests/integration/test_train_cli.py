"""`shoprec train` then `shoprec evaluate` on the real Amazon Scientific catalogue (briefly trained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from shoprec.artifacts import CATALOG, ITEM_IDS, RANKER_ONNX, load_bundle
from shoprec.cli import app

pytestmark = [pytest.mark.train, pytest.mark.slow]

TINY = ["--hidden", "16", "--max-epochs", "2", "--patience", "1", "--threads", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("train") / "bundle"
    result = CliRunner().invoke(app, ["train", "--dataset", str(scientific_dir), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_verified_bundle_with_reports(trained: tuple[Path, str]) -> None:
    out, output = trained
    bundle = load_bundle(out)
    names = {f.name for f in bundle.manifest.files}
    expected = {ITEM_IDS, RANKER_ONNX, "ranker.int8.onnx", CATALOG, "report.md", "training_curves.png"}
    assert expected <= names
    assert bundle.pipeline.search is not None  # the prebuilt BM25 index, loaded at serving
    assert set(bundle.pipeline.search.files()) <= names
    assert bundle.n_items == 4344
    assert bundle.catalog is not None
    assert bundle.catalog["0"]["title"]
    assert bundle.manifest.dataset["n_users"] == 8317
    assert bundle.manifest.hyperparameters["transformer"]["hidden"] == 16
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    export = bundle.manifest.extra["export"]
    assert export["parity_max_abs_diff"] <= 1e-4
    report = (out / "report.md").read_text()
    for model in ("popularity", "item-cf", "transformer", "pipeline", "pipeline:stacking"):
        assert f"| {model} |" in report
    fusion = bundle.manifest.metrics["fusion"]
    assert bundle.pipeline.fusion.kind == {"ranker": "ranker", "stacking": "stacking"}.get(
        fusion["chosen"], "weighted"
    )
    assert set(fusion["holdout_ndcg10"]) == {"ranker", "equal", "weighted", "stacking"}
    assert fusion["stacking_parity_max_abs_diff"] < 1e-9
    assert {"accuracy", "MSE", "MAE", "RMSE"} <= set(fusion["stacking_pointwise_test"])
    assert "served pipeline" in output
    assert "test, full ranking" in report
    assert "sampled ranking (inflated" in report
    assert "item-cf" in output
    assert "NDCG@10" in output


def test_item_cf_beats_popularity_on_real_data(trained: tuple[Path, str]) -> None:
    metrics = load_bundle(trained[0]).manifest.metrics["test"]["full"]
    assert metrics["item-cf"]["NDCG@10"] > 2 * metrics["popularity"]["NDCG@10"]


@pytest.mark.parametrize(("protocol", "model"), [("full", None), ("sampled", None), ("full", "transformer")])
def test_evaluate_json_reproduces_the_training_metrics(
    trained: tuple[Path, str], scientific_dir: Path, protocol: str, model: str | None
) -> None:
    out, _ = trained
    args = ["evaluate", str(out), "--dataset", str(scientific_dir), "--protocol", protocol, "--json"]
    result = CliRunner().invoke(app, args + (["--model", model] if model else []))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["protocol"] == protocol
    assert payload["users"] == 8317
    # The default is the served pipeline, rebuilt from the bundle as the API builds it; it scores what the
    # training run's pipeline scored. The transformer's ONNX graph scores what torch scored in training.
    expected = load_bundle(out).manifest.metrics["test"][protocol][model or "pipeline"]
    assert payload["metrics"]["NDCG@10"] == pytest.approx(expected["NDCG@10"], abs=1e-3)
    assert payload["metrics"]["HR@10"] == pytest.approx(expected["HR@10"], abs=2e-3)


def test_evaluate_refuses_a_corrupted_bundle(
    trained: tuple[Path, str], scientific_dir: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained[0], copy)
    with (copy / "popularity.npy").open("r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    result = CliRunner().invoke(app, ["evaluate", str(copy), "--dataset", str(scientific_dir)])
    assert result.exit_code == 2
    assert "popularity.npy" in result.output


def test_train_reports_a_bad_dataset_path_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert "nope" in result.output
    assert not (tmp_path / "b").exists()
