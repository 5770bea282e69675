"""The recommendation pipeline on the tiny catalogue: batches, stages, fusion, fallbacks and reasons."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.fakes import FakeClock, FakeRanker, make_bundle, make_pipeline

from shoprec.pipeline import Recommendation, Request
from shoprec.pipeline.core import RANKER_REASON, RecommendationPipeline
from shoprec.ranking.fusion import WeightedFusion

BUNDLE = make_bundle()
IDX = {item_id: i for i, item_id in enumerate(BUNDLE.item_ids)}


def hist(*ids: str) -> np.ndarray:
    return np.asarray([IDX[i] for i in ids], dtype=np.int64)


def by_item(history: list[str], item: str) -> float:
    """A deterministic fake ranker: prefers items far (in index) from the last history item."""
    return float(abs(IDX[item] - IDX[history[-1]]))


def listed(rec: Recommendation) -> list[tuple[str, float, str, tuple[str, ...]]]:
    return [(BUNDLE.item_ids[c.item], round(c.score, 9), c.reason, tuple(c.channels)) for c in rec.items]


REQUESTS = [
    Request(history=hist("p0", "p2"), k=5),
    Request(history=hist("p5"), k=3, category="Filament"),
    Request(k=4),  # cold start
    Request(history=hist("p9", "p10"), k=6, exclude_seen=False),
]


@pytest.mark.parametrize("fusion", [None, WeightedFusion({"ranker": 1.0, "itemcf": 1.0, "popularity": 0.3})])
def test_a_batch_returns_exactly_what_each_request_gets_alone(fusion: WeightedFusion | None) -> None:
    ranker = FakeRanker(score_fn=by_item)
    pipeline = make_pipeline(BUNDLE, ranker, fusion=fusion)
    batched = pipeline.recommend(REQUESTS)
    assert len(ranker.calls) == 3  # one instance per user with history, in one call
    alone = [pipeline.recommend([r])[0] for r in REQUESTS]
    assert [listed(r) for r in batched] == [listed(r) for r in alone]
    assert [len(r.items) for r in batched] == [5, 3, 4, 6]


def test_prepare_then_finish_is_recommend_and_a_prepared_batch_can_be_finished_by_another_fusion() -> None:
    pipeline = make_pipeline(BUNDLE, FakeRanker(score_fn=by_item))
    prepared = pipeline.prepare(REQUESTS)
    assert [listed(r) for r in pipeline.finish(prepared)] == [listed(r) for r in pipeline.recommend(REQUESTS)]
    cf_only = pipeline.with_fusion(WeightedFusion({"itemcf": 1.0}))
    assert [listed(r) for r in cf_only.finish(prepared)] == [listed(r) for r in cf_only.recommend(REQUESTS)]
    unexplained = pipeline.finish(prepared, explain=False)
    assert [[(c.item, c.score) for c in r.items] for r in unexplained] == [
        [(c.item, c.score) for c in r.items] for r in pipeline.finish(prepared)
    ]
    assert all(c.reason == "" for r in unexplained for c in r.items)
    signals = prepared.signals()
    assert signals[0].ranker is not None
    assert signals[2].ranker is None  # cold start: the ranker is not asked


def test_finish_each_k_fuses_once_and_gives_each_k_the_list_a_request_for_k_items_gets() -> None:
    ranker = FakeRanker(score_fn=by_item)
    pipeline = make_pipeline(BUNDLE, ranker)
    prepared = pipeline.prepare(REQUESTS)
    lists = pipeline.finish_each_k(prepared, (2, 5, 8))
    assert sorted(lists) == [2, 5, 8]
    for k, listed_k in lists.items():
        expected = pipeline.finish(prepared.with_k(k), explain=False)
        assert [r.items.tolist() for r in listed_k] == [[c.item for c in r.items] for r in expected]
        assert [r.candidates.tolist() for r in listed_k] == [r.candidates.tolist() for r in expected]
        assert [r.degraded for r in listed_k] == [r.degraded for r in expected]
        assert all(r.items.size <= k for r in listed_k)
    assert lists[8][0].items.size > lists[2][0].items.size


def test_a_fusion_without_the_ranker_never_calls_it() -> None:
    ranker = FakeRanker(score_fn=by_item)
    pipeline = make_pipeline(BUNDLE, ranker, fusion=WeightedFusion({"itemcf": 1.0, "embedding": 0.5}))
    recs = pipeline.recommend(REQUESTS)
    assert ranker.calls == []
    assert not any(r.degraded for r in recs)


def test_when_the_ranker_fails_the_batch_fuses_the_recall_channels_and_is_degraded() -> None:
    ranker = FakeRanker(score_fn=by_item)
    ranker.fail = True
    pipeline = make_pipeline(BUNDLE, ranker)
    recs = pipeline.recommend(REQUESTS)
    assert [r.degraded for r in recs] == [True, True, False, True]  # the cold-start list needs no ranker
    assert all(r.ranker_fallback == r.degraded for r in recs)
    fallback = pipeline.with_fusion(pipeline.fallback).recommend(REQUESTS)
    assert [listed(r) for r in recs] == [listed(r) for r in fallback]


def test_a_slow_ranker_past_the_budget_is_a_fallback_and_a_spent_budget_skips_it() -> None:
    clock = FakeClock()
    ranker = FakeRanker(clock, score_fn=by_item)
    pipeline = make_pipeline(BUNDLE, ranker, clock, latency_budget_ms=100)
    ranker.delay_s = 0.2
    assert pipeline.recommend(REQUESTS[:1])[0].degraded
    ranker.delay_s = 0.0
    assert not pipeline.recommend(REQUESTS[:1])[0].degraded
    assert ranker.calls[-1][2] == pytest.approx(0.1)
    calls = len(ranker.calls)
    assert pipeline.recommend(REQUESTS[:1], start=clock() - 0.2)[0].degraded
    assert len(ranker.calls) == calls
    assert not pipeline.recommend(REQUESTS[:1], start=clock() - 0.2, deadline=False)[0].degraded


@pytest.mark.parametrize("answer", [[[1.0]], [[float("nan")] * 300]])
def test_malformed_ranker_answers_are_a_fallback(answer: list[list[float]]) -> None:
    class Malformed(FakeRanker):
        def score_many(self, instances: object, *, timeout_s: float) -> list[list[float]]:
            return answer

    assert make_pipeline(BUNDLE, Malformed()).recommend(REQUESTS[:1])[0].degraded


def test_reasons_name_the_source_contributing_most_to_the_fused_score() -> None:
    ranker = FakeRanker(score_fn=by_item)
    cf = make_pipeline(BUNDLE, ranker, fusion=WeightedFusion({"itemcf": 1.0, "ranker": 0.01}))
    first = cf.recommend([Request(history=hist("p0"), k=1)])[0].items[0]
    assert first.reason == "because you viewed Digital Caliper 6 inch"
    tf = make_pipeline(BUNDLE, ranker, fusion=WeightedFusion({"itemcf": 0.01, "ranker": 1.0}))
    assert tf.recommend([Request(history=hist("p0"), k=1)])[0].items[0].reason == RANKER_REASON
    cold = tf.recommend([Request(k=2)])[0].items
    assert all(c.reason.startswith("popular") for c in cold)


def test_rank_items_scores_given_items_with_the_same_fusion() -> None:
    ranker = FakeRanker(score_fn=by_item)
    pipeline = make_pipeline(BUNDLE, ranker, fusion=WeightedFusion({"ranker": 1.0}))
    items = hist("p3", "p11", "p1")
    ((ranked, degraded),) = pipeline.rank_items([(Request(history=hist("p0")), items)])
    assert [BUNDLE.item_ids[c.item] for c in ranked] == ["p11", "p3", "p1"]  # farthest from p0 first
    assert not degraded
    assert all(c.reason == RANKER_REASON for c in ranked[:1])
    ranker.fail = True
    ((_, degraded),) = pipeline.rank_items([(Request(history=hist("p0")), items)])
    assert degraded
    ((cold, degraded),) = pipeline.rank_items([(Request(), hist("p11", "p6", "p5"))])
    assert [BUNDLE.item_ids[c.item] for c in cold] == ["p5", "p6", "p11"]  # popularity order
    assert not degraded


def test_a_filter_nothing_matches_gives_an_empty_list() -> None:
    pipeline = make_pipeline(BUNDLE, FakeRanker(score_fn=by_item))
    (rec,) = pipeline.recommend([Request(history=hist("p0"), category="Garden")])
    assert rec.items == []
    assert rec.candidates.size == 0


def test_the_pipeline_needs_every_channel_and_a_ranker_for_a_fusion_that_uses_one() -> None:
    full = make_pipeline(BUNDLE, FakeRanker())
    with pytest.raises(ValueError, match="needs the channels"):
        RecommendationPipeline(full.catalog, full.channels[:2], full.merge_policy, None, full.fallback)
    with pytest.raises(ValueError, match="uses the ranker"):
        RecommendationPipeline(full.catalog, full.channels, full.merge_policy, None, full.fusion)
