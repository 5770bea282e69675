"""LocalOnnxRanker: the Ranker port on the bundle's ONNX model, speaking dataset item ids."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import RANKER_ONNX, Bundle, FusionSpec, PipelineSpec
from shoprec.errors import ArtifactError
from shoprec.ports import Ranker
from shoprec.ranking.onnx_ranker import OnnxRanker


@pytest.fixture(scope="module")
def ranker(bundle: Bundle) -> LocalOnnxRanker:
    return LocalOnnxRanker.from_bundle(bundle)


def test_implements_the_port(ranker: LocalOnnxRanker) -> None:
    assert isinstance(ranker, Ranker)
    assert ranker.describe().endswith(RANKER_ONNX)


def test_scores_equal_the_onnx_model_on_internal_indices(ranker: LocalOnnxRanker, bundle: Bundle) -> None:
    ids = bundle.item_ids
    history, candidates = [5, 17, 256, 1024], [0, 3, 99, 4000, 17]
    got = ranker.score([ids[i] for i in history], [ids[i] for i in candidates], timeout_s=5)
    assert bundle.pipeline.ranker is not None
    max_len = bundle.pipeline.ranker.max_len
    direct = OnnxRanker(bundle.file(RANKER_ONNX), n_items=bundle.n_items, max_len=max_len)
    expected = direct.score([np.array(history, dtype=np.int64)], np.array([candidates], dtype=np.int64))[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_unknown_history_items_are_skipped(ranker: LocalOnnxRanker, bundle: Bundle) -> None:
    history, candidates = bundle.item_ids[10:14], bundle.item_ids[100:110]
    with_unknown = ["no-such-item", *history[:2], "another-new-one", *history[2:]]
    assert ranker.score(with_unknown, candidates, timeout_s=5) == ranker.score(
        history, candidates, timeout_s=5
    )


def test_only_the_last_max_len_history_items_matter(ranker: LocalOnnxRanker, bundle: Bundle) -> None:
    history, candidates = bundle.item_ids[:200], bundle.item_ids[500:520]
    tail = history[-ranker.max_len :]
    assert ranker.score(history, candidates, timeout_s=5) == ranker.score(tail, candidates, timeout_s=5)


def test_unknown_candidates_are_an_error(ranker: LocalOnnxRanker, bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="unknown candidate item ids: nope, nada"):
        ranker.score(bundle.item_ids[:3], ["nope", bundle.item_ids[4], "nada"], timeout_s=5)


def test_no_candidates_means_no_scores(ranker: LocalOnnxRanker) -> None:
    assert ranker.score(["1"], [], timeout_s=5) == []


def test_a_batch_scores_each_instance_as_if_alone(ranker: LocalOnnxRanker, bundle: Bundle) -> None:
    ids = bundle.item_ids
    instances = [(ids[0:5], ids[100:103]), ([], ids[200:260]), (ids[7:40], ids[9:10])]
    batched = ranker.score_many(instances)
    for (history, candidates), scores in zip(instances, batched, strict=True):
        assert len(scores) == len(candidates)
        np.testing.assert_allclose(scores, ranker.score(history, candidates, timeout_s=5), atol=1e-5)


def test_an_overrun_budget_is_logged_and_the_scores_still_returned(
    ranker: LocalOnnxRanker, bundle: Bundle, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shoprec.adapters.local.onnx_ranker"):
        scores = ranker.score(bundle.item_ids[:3], bundle.item_ids[3:9], timeout_s=0.0)
    assert len(scores) == 6
    assert "over its" in caplog.text


def test_a_bundle_without_a_ranker_is_refused(bundle: Bundle) -> None:
    recall_only = PipelineSpec(ranker=None, fusion=FusionSpec(kind="weighted", weights={"itemcf": 1.0}))
    broken = dataclasses.replace(bundle, manifest=dataclasses.replace(bundle.manifest, pipeline=recall_only))
    with pytest.raises(ArtifactError, match="has no ranker"):
        LocalOnnxRanker.from_bundle(broken)
    with pytest.raises(
        ArtifactError, match="SHOPREC_RANKER_VARIANT: no ranker variant 'int8'; this bundle has fp32"
    ):
        LocalOnnxRanker.from_bundle(bundle, variant="int8")
