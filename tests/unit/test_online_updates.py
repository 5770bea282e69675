"""Online updates between retrains on the tiny catalogue: what events add to the live counts, how serving
caches and blends them, and that a failing store never fails a request or an ingest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.unit.fakes import (
    DictCache,
    DictStateStore,
    FakeClock,
    FakeRanker,
    event,
    make_bundle,
    make_catalog,
)

from shoprec.adapters.interaction_stats import Decay
from shoprec.adapters.local.memory_stats import MemoryInteractionStats
from shoprec.domain import Appended
from shoprec.pipeline import RecommendationPipeline, Request, build_pipeline
from shoprec.recall.channels import RecallContext
from shoprec.recall.online import BlendWeights, OnlineStats, stream_counts
from shoprec.services.events import EventService

BUNDLE = make_bundle()
CATALOG = make_catalog(BUNDLE)
T0 = 1_800_000_000.0
A, B = "p5", "p2"  # a filament and a beaker: never seen together in the bundle
R2 = 2.0**-0.5


def test_an_event_pairs_its_item_with_the_items_before_it_as_item_cf_weighs_them() -> None:
    pairs, items = stream_counts({"u": Appended(before=("a", "b"), items=("c",))})
    assert pairs == {
        "b": {"c": 1.0},
        "c": {"b": 0.25, "a": pytest.approx(0.25 * R2)},
        "a": {"c": pytest.approx(R2)},
    }
    assert items == {"c": 1.0}


def test_an_event_pairs_with_at_most_context_items_and_never_with_itself() -> None:
    before = (*(f"i{n}" for n in range(8)), "x")
    pairs, _ = stream_counts({"u": Appended(before=before, items=("x",))}, context=3)
    assert set(pairs) == {"i6", "i7", "x"}
    assert set(pairs["x"]) == {"i6", "i7"}


def test_the_events_of_a_batch_pair_with_each_other_in_order() -> None:
    pairs, items = stream_counts(
        {"u": Appended(before=(), items=("a", "b")), "v": Appended(before=("a",), items=("b",))}
    )
    assert pairs["a"] == {"b": 2.0}
    assert pairs["b"] == {"a": 0.5}
    assert items == {"a": 1.0, "b": 2.0}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store() -> MemoryInteractionStats:
    return MemoryInteractionStats(decay=Decay(3600.0))


@pytest.fixture
def online(store: MemoryInteractionStats, clock: FakeClock) -> OnlineStats:
    return OnlineStats(store, refresh_s=5.0, weights=BlendWeights(min_count=3.0), clock=clock)


@pytest.fixture
def pipeline(online: OnlineStats) -> RecommendationPipeline:
    return build_pipeline(BUNDLE, CATALOG, FakeRanker(), online=online, clock=FakeClock())


@pytest.fixture
def events(store: MemoryInteractionStats, clock: FakeClock) -> EventService:
    return EventService(CATALOG, DictStateStore(), DictCache(), stats=store, clock=clock)


def co_view(events: EventService, users: int, first: str = A, then: str = B) -> None:
    events.ingest([e for u in range(users) for e in (event(f"u{u}", first, 1), event(f"u{u}", then, 2))])


def similar_ids(pipeline: RecommendationPipeline, item: str) -> list[str]:
    """The item-CF part of ``item``'s similar items (the tiny catalogue pads the rest with every item)."""
    found = pipeline.similar(CATALOG.index_of[item], 10)
    return [CATALOG.item_ids[c.item] for c in found if c.channels == ["itemcf"]]


def test_items_viewed_together_become_similar_after_the_refresh_interval(
    pipeline: RecommendationPipeline, events: EventService, clock: FakeClock
) -> None:
    assert B not in similar_ids(pipeline, A)  # the empty live list is cached now
    co_view(events, users=16)
    clock.advance(4.9)
    assert B not in similar_ids(pipeline, A)
    clock.advance(0.1)
    assert B in similar_ids(pipeline, A)
    assert A in similar_ids(pipeline, B)  # the backward pair (a quarter of the weight): B's list learnt A


def test_the_live_pair_adds_its_weight_times_the_items_best_bundle_similarity(
    pipeline: RecommendationPipeline, events: EventService
) -> None:
    a = CATALOG.index_of[A]
    best = float(BUNDLE.itemcf_scores[a, 0])
    co_view(events, users=5)
    idx, scores = pipeline.itemcf.similar(a)
    assert idx[0] == CATALOG.index_of[B]
    assert scores[0] == pytest.approx(best)  # w_cf = 1, the strongest live pair, no bundle similarity
    assert dict(zip(idx.tolist(), scores.tolist(), strict=True))[int(BUNDLE.itemcf_indices[a, 0])] == (
        pytest.approx(best)
    )


def test_a_pair_seen_by_too_few_users_changes_nothing(
    pipeline: RecommendationPipeline, events: EventService
) -> None:
    co_view(events, users=2)  # 2 < min_count
    assert B not in similar_ids(pipeline, A)


def test_a_user_who_viewed_one_item_is_recommended_the_other(
    pipeline: RecommendationPipeline, events: EventService, clock: FakeClock
) -> None:
    history = np.asarray([CATALOG.index_of[A]], dtype=np.int64)
    before = pipeline.itemcf.recall(RecallContext(recent=history), 20)
    assert CATALOG.index_of[B] not in before.items
    co_view(events, users=5)
    clock.advance(5.0)
    after = pipeline.itemcf.recall(RecallContext(recent=history), 20)
    assert CATALOG.index_of[B] in after.items
    reasons = pipeline.itemcf.reasons(RecallContext(recent=history), after.items)
    assert reasons[after.items.tolist().index(CATALOG.index_of[B])] == "because you viewed PLA Filament Black"


def test_trending_items_rise_in_the_cold_start_list(
    pipeline: RecommendationPipeline, events: EventService, clock: FakeClock
) -> None:
    quiet = CATALOG.index_of["p4"]  # a graduated cylinder, seen in two training sequences
    cold = pipeline.recommend([Request(k=3)])[0]
    assert quiet not in [c.item for c in cold.items]
    events.ingest([event(f"fan{u}", "p4", 1) for u in range(10)])
    clock.advance(5.0)
    warm = pipeline.recommend([Request(k=3)])[0]
    assert warm.items[0].item == quiet
    assert pipeline.popularity.percentile[quiet] == 1.0


def test_live_lists_are_read_once_per_refresh_interval_in_one_call(
    online: OnlineStats, store: MemoryInteractionStats, clock: FakeClock
) -> None:
    store.record({"a": {"b": 4.0}}, {}, at=T0)
    assert online.neighbours(["a", "c"]) == {"a": {"b": pytest.approx(4.0)}}
    assert online.neighbours(["a", "c"]) == {"a": {"b": pytest.approx(4.0)}}
    assert store.reads == 1
    store.record({"c": {"a": 4.0}}, {}, at=T0)
    clock.advance(4.9)
    assert "c" not in online.neighbours(["c"])
    clock.advance(0.1)
    assert online.neighbours(["c"]) == {"c": {"a": pytest.approx(4.0 * 2 ** (-5 / 3600))}}
    assert store.reads == 2


def test_a_failing_store_serves_the_last_counts_and_is_left_alone_for_a_while(
    online: OnlineStats, store: MemoryInteractionStats, clock: FakeClock, pipeline: RecommendationPipeline
) -> None:
    store.record({"a": {"b": 4.0}}, {"p4": 10.0}, at=T0)
    assert online.neighbours(["a"]) == {"a": {"b": pytest.approx(4.0)}}
    clock.advance(5.0)
    store.fail = True
    reads = store.reads
    assert online.neighbours(["a", "x"]) == {"a": {"b": pytest.approx(4.0)}}
    assert online.trending() == (0, {})
    assert store.reads == reads  # failed calls are not counted: nothing was asked a second time
    history = np.asarray([CATALOG.index_of[A]], dtype=np.int64)
    assert pipeline.recommend([Request(history=history, k=5)])[0].items  # the bundle's counts serve
    clock.advance(5.0)
    store.fail = False
    assert online.trending()[1] == {"p4": pytest.approx(10.0 * 2 ** (-10 / 3600))}


def test_ingest_counts_applied_events_once_and_survives_a_failing_store(
    events: EventService, store: MemoryInteractionStats
) -> None:
    batch = [event("u", A, 1), event("u", B, 2)]
    events.ingest(batch)
    events.ingest(batch)  # a retried batch: duplicates, nothing counted twice
    assert store.trending(at=T0) == {A: pytest.approx(1.0), B: pytest.approx(1.0)}
    assert store.neighbours([A], at=T0) == {A: {B: pytest.approx(1.0)}}
    store.fail = True
    result = events.ingest([event("u", "p0", 3)])
    assert result.applied == 1
    store.fail = False
    assert "p0" not in store.trending(at=T0)


def test_blend_weights_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        BlendWeights(itemcf=-1.0)
    assert math.isclose(BlendWeights().min_count, 3.0)
