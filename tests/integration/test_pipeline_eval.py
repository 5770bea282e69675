"""Offline evaluation of the served pipeline on a small real subset of Amazon Scientific.

The bundle is the integration factory's (real popularity and item-CF, a tiny untrained ranker exported to
ONNX): what matters here is that the evaluation scores exactly the lists the pipeline serves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle
from shoprec.catalog import CatalogIndex
from shoprec.data import leave_one_out, load_dataset
from shoprec.evaluation.bundle_eval import remap_to_bundle
from shoprec.evaluation.pipeline_eval import evaluate_fusions, evaluate_pipeline
from shoprec.pipeline import RecommendationPipeline, Request, build_pipeline
from shoprec.ranking.fusion import RankerFusion, WeightedFusion

USERS = 200


@pytest.fixture(scope="module")
def pipeline(bundle: Bundle) -> RecommendationPipeline:
    """The factory bundle's pipeline fusing its (untrained) ranker with item-CF, so that lists hit targets."""
    ranker = LocalOnnxRanker.from_bundle(bundle)
    fusion = WeightedFusion({"ranker": 0.2, "itemcf": 1.0})
    return build_pipeline(bundle, CatalogIndex.from_bundle(bundle), ranker, fusion=fusion)


@pytest.fixture(scope="module")
def test_users(bundle: Bundle, scientific_dir: Path) -> tuple[list[np.ndarray], np.ndarray]:
    split = leave_one_out(remap_to_bundle(load_dataset(scientific_dir), bundle))
    return split.test_histories()[:USERS], split.test_targets[:USERS]


def test_the_evaluation_scores_the_lists_the_pipeline_serves_one_request_at_a_time(
    pipeline: RecommendationPipeline, test_users: tuple[list[np.ndarray], np.ndarray]
) -> None:
    histories, targets = test_users
    result = evaluate_pipeline(pipeline, histories, targets, "full", batch_size=64)
    ranks, found = [], 0
    for h, t in zip(histories, targets.tolist(), strict=True):
        (rec,) = pipeline.recommend([Request(history=np.asarray(h)[-50:], k=20)], deadline=False)
        items = [c.item for c in rec.items]
        ranks.append(items.index(t) if t in items else None)
        found += int(t in rec.candidates.tolist())
    hr10 = sum(r is not None and r < 10 for r in ranks) / USERS
    ndcg10 = sum(1 / np.log2(r + 2) for r in ranks if r is not None and r < 10) / USERS
    assert result.users == USERS
    assert result.metrics["HR@10"] == pytest.approx(hr10)
    assert result.metrics["NDCG@10"] == pytest.approx(ndcg10)
    assert result.metrics["Recall@300"] == pytest.approx(found / USERS)
    assert result.metrics["Degraded"] == 0.0
    assert 0 < result.metrics["HR@10"] <= result.metrics["HR@20"] <= result.metrics["Recall@300"]
    assert not result.inflated


def test_every_fusion_is_scored_on_the_same_prepared_candidates(
    pipeline: RecommendationPipeline, test_users: tuple[list[np.ndarray], np.ndarray]
) -> None:
    histories, targets = test_users
    cf = WeightedFusion({"itemcf": 1.0})
    results = evaluate_fusions(pipeline, {"served": pipeline.fusion, "itemcf": cf}, histories, targets)
    assert results["served"].metrics == evaluate_pipeline(pipeline, histories, targets).metrics
    assert (
        results["itemcf"].metrics == evaluate_pipeline(pipeline.with_fusion(cf), histories, targets).metrics
    )
    ranker = evaluate_fusions(pipeline, {"ranker": RankerFusion()}, histories, targets)["ranker"]
    # On real data item-CF beats the factory's untrained ranker by far.
    assert results["itemcf"].metrics["NDCG@10"] > 2 * ranker.metrics["NDCG@10"]


def test_the_sampled_protocol_ranks_the_target_among_the_same_negatives(
    pipeline: RecommendationPipeline, test_users: tuple[list[np.ndarray], np.ndarray]
) -> None:
    histories, targets = test_users
    result = evaluate_pipeline(pipeline, histories, targets, "sampled")
    assert result.inflated
    assert result.n_negatives == 99
    assert 0.0 < result.metrics["HR@10"] < 1.0
    assert 0.0 < result.metrics["AUC"] < 1.0
