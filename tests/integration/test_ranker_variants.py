"""Serving a chosen ranker variant: the bundle's default one, or the one SHOPREC_RANKER_VARIANT names, in the
API's in-process ranker and in the ranking endpoint alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tests.integration.bundle_factory import HIDDEN, MAX_LEN, build_bundle

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle, load_bundle
from shoprec.artifacts.variants import write_with_ranker_variants
from shoprec.container import ranker_for
from shoprec.endpoint import create_endpoint_app
from shoprec.errors import ArtifactError
from shoprec.ranking.onnx_ranker import OnnxRanker
from shoprec.settings import Settings
from shoprec.training.export import export_onnx
from shoprec.training.sasrec import SASRec, SASRecConfig


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> Path:
    """A small real bundle plus a ``small`` variant (another, differently initialised graph, so its scores
    tell which file is served), which is its default."""
    root = tmp_path_factory.mktemp("variants")
    build_bundle(root / "base", dataset_dir=scientific_dir, with_catalog=False)
    base = load_bundle(root / "base")
    torch.manual_seed(1)
    cfg = SASRecConfig(n_items=base.n_items, hidden=HIDDEN, blocks=1, heads=1, max_len=MAX_LEN, dropout=0.0)
    small = export_onnx(SASRec(cfg).eval(), root / "small.onnx")
    write_with_ranker_variants(
        base, root / "bundle", {"small": (small, "distilled")}, default_variant="small"
    )
    return root / "bundle"


@pytest.fixture(scope="module")
def variant_bundle(variant_dir: Path) -> Bundle:
    return load_bundle(variant_dir)


def direct_scores(bundle: Bundle, file: str, history: list[int], candidates: list[int]) -> list[float]:
    assert bundle.pipeline.ranker is not None
    model = OnnxRanker(bundle.file(file), n_items=bundle.n_items, max_len=bundle.pipeline.ranker.max_len)
    seq = [np.array(history, dtype=np.int64)]
    return [float(x) for x in model.score(seq, np.array([candidates], dtype=np.int64))[0]]


HISTORY, CANDIDATES = [5, 17, 256, 1024], [0, 3, 99, 4000, 17]


def test_the_manifest_lists_the_variant_and_its_kind(variant_bundle: Bundle) -> None:
    spec = variant_bundle.pipeline.ranker
    assert spec is not None
    assert spec.variant_files() == {"fp32": "ranker.onnx", "small": "ranker.small.onnx"}
    assert spec.variants["small"].kind == "distilled"
    assert spec.default_variant == "small"


def test_the_api_ranker_serves_the_default_variant_unless_the_setting_names_another(
    variant_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = variant_bundle.item_ids
    history, candidates = [ids[i] for i in HISTORY], [ids[i] for i in CANDIDATES]
    small = direct_scores(variant_bundle, "ranker.small.onnx", HISTORY, CANDIDATES)
    fp32 = direct_scores(variant_bundle, "ranker.onnx", HISTORY, CANDIDATES)
    assert not np.allclose(small, fp32, atol=1e-4)

    by_default = ranker_for("onnx", variant_bundle, variant=Settings().ranker_variant)
    np.testing.assert_allclose(by_default.score(history, candidates, timeout_s=5), small, atol=1e-6)

    monkeypatch.setenv("SHOPREC_RANKER_VARIANT", "fp32")
    chosen = ranker_for("onnx", variant_bundle, variant=Settings().ranker_variant)
    assert chosen.describe().endswith("ranker.onnx")
    np.testing.assert_allclose(chosen.score(history, candidates, timeout_s=5), fp32, atol=1e-6)


def test_the_endpoint_serves_the_variant_it_is_given(variant_dir: Path, variant_bundle: Bundle) -> None:
    ids = variant_bundle.item_ids
    body = {"instances": [{"history": [ids[i] for i in HISTORY], "candidates": [ids[i] for i in CANDIDATES]}]}
    for variant, file in ((None, "ranker.small.onnx"), ("fp32", "ranker.onnx")):
        client = TestClient(create_endpoint_app(variant_dir, ranker_variant=variant))
        response = client.post("/invocations", content=json.dumps(body))
        assert response.status_code == 200
        expected = direct_scores(variant_bundle, file, HISTORY, CANDIDATES)
        np.testing.assert_allclose(response.json()["predictions"][0]["scores"], expected, atol=1e-5)


def test_an_unknown_variant_names_the_setting_and_the_bundles_variants(
    variant_dir: Path, variant_bundle: Bundle
) -> None:
    message = r"SHOPREC_RANKER_VARIANT: no ranker variant 'fp16'; this bundle has fp32, small"
    with pytest.raises(ArtifactError, match=message):
        LocalOnnxRanker.from_bundle(variant_bundle, variant="fp16")
    with pytest.raises(ArtifactError, match=message):
        create_endpoint_app(variant_dir, ranker_variant="fp16")


def test_a_taken_variant_name_is_refused(variant_bundle: Bundle, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="small already exist"):
        write_with_ranker_variants(
            variant_bundle, tmp_path / "again", {"small": (variant_bundle.file("ranker.onnx"), "fp16")}
        )
    assert not (tmp_path / "again").exists()
