from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from tests.unit.fakes import (
    MODEL_VERSION,
    DictCache,
    DictStateStore,
    FakeClock,
    FakeRanker,
    itemcf_of,
    make_bundle,
    make_catalog,
    make_service,
)

from shoprec.catalog import CatalogIndex
from shoprec.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shoprec.pipeline import build_pipeline
from shoprec.services.recommendation import RecommendationService, user_cache_tag
from shoprec.services.results import ListResult

BUNDLE = make_bundle()
CATALOG = make_catalog(BUNDLE)


@dataclass
class World:
    svc: RecommendationService
    state: DictStateStore
    cache: DictCache
    ranker: FakeRanker
    clock: FakeClock


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    state = DictStateStore({"u1": ["p0", "p2"], "ghost": ["gone", "p5", "also-gone"]})
    cache = DictCache()
    ranker = FakeRanker(clock)
    svc = make_service(BUNDLE, state, cache, ranker, clock, candidates=300, latency_budget_ms=150)
    return World(svc, state, cache, ranker, clock)


def ids(result: ListResult) -> list[str]:
    return [it.item_id for it in result.items]


# --- recommend --------------------------------------------------------------------------------------


def test_recommend_ranks_recalled_items_and_excludes_seen_ones(world: World) -> None:
    res = world.svc.recommend("u1", 5)
    assert len(res.items) == 5
    assert not {"p0", "p2"} & set(ids(res))
    assert res.model_version == MODEL_VERSION
    assert not res.degraded
    assert not res.cached
    assert set(res.candidates_per_channel) == {"itemcf", "embedding", "popularity"}
    history, candidates, timeout = world.ranker.calls[0]
    assert history == ["p0", "p2"]
    assert "p0" not in candidates
    assert "p1" in candidates
    assert timeout == pytest.approx(0.150)
    assert {"cache", "state", "recall", "rank", "rerank", "total"} <= set(res.timings_ms)


def test_recommend_orders_by_the_ranker_scores(world: World) -> None:
    world.ranker.score_fn = lambda history, item: {"p10": 9.0, "p8": 8.0}.get(item, 0.0)
    res = world.svc.recommend("u1", 3)
    assert ids(res)[:2] == ["p10", "p8"]
    assert [it.score for it in res.items][:2] == [9.0, 8.0]


def test_recommend_explains_item_cf_candidates_with_the_viewed_item(world: World) -> None:
    res = world.svc.recommend("u1", 10, exclude_seen=True)
    viewed = {"because you viewed Digital Caliper 6 inch", "because you viewed Glass Beaker 250ml"}
    assert any(it.channels[0] == "itemcf" for it in res.items)
    assert any(it.reason in viewed for it in res.items)
    assert all(it.reason for it in res.items)
    assert all(it.title for it in res.items if it.item_id != "p11")


def test_recommend_keeps_seen_items_when_asked(world: World) -> None:
    res = world.svc.recommend("u1", 12, exclude_seen=False)
    assert {"p0", "p2"} & set(ids(res))


def test_recommend_respects_category_and_brand_filters(world: World) -> None:
    res = world.svc.recommend("u1", 10, category="filament")
    assert ids(res)
    assert set(ids(res)) <= {"p5", "p6", "p7", "p8"}
    res = world.svc.recommend("u1", 10, brand="seoh")
    assert ids(res) == ["p4"]  # p2 is seen


def test_second_call_is_served_from_the_cache_without_ranking(world: World) -> None:
    first = world.svc.recommend("u1", 5)
    calls = len(world.ranker.calls)
    second = world.svc.recommend("u1", 5)
    assert second.cached
    assert second.items == first.items
    assert second.candidates_per_channel == first.candidates_per_channel
    assert len(world.ranker.calls) == calls
    (key,) = world.cache.data
    assert world.cache.tags[user_cache_tag("u1")] == {key}
    assert world.cache.ttls[key] == 300
    assert MODEL_VERSION.removeprefix("sha256:")[:12] in key
    assert ":u1:" in key


def test_cache_key_covers_every_parameter_and_normalises_filters(world: World) -> None:
    key = functools.partial(world.svc.cache_key, generation="0")
    base = key("u1", 10)
    variants = [
        key("u2", 10),
        key("u1", 11),
        key("u1", 10, category="Lab"),
        key("u1", 10, brand="SEOH"),
        key("u1", 10, exclude_seen=False),
        world.svc.cache_key("u1", 10, generation="1"),
    ]
    assert len({base, *variants}) == 7
    assert key("u1", 10, category=" lab  supplies") == key("u1", 10, category="Lab Supplies")
    assert key("u1", 10, category="") == base


def test_the_generation_is_read_before_the_state(world: World) -> None:
    """The order that makes a stale list unreachable: a list is filed under the generation that was
    current before its state was read, so an invalidation in between retires it."""
    order: list[str] = []
    read_generation, read_state = world.cache.generation, world.state.recent_items

    def generation(tag: str) -> str:
        order.append("generation")
        return read_generation(tag)

    def recent_items(user: str) -> list[str]:
        order.append("state")
        return read_state(user)

    world.cache.generation = generation  # type: ignore[method-assign]
    world.state.recent_items = recent_items  # type: ignore[method-assign]
    world.svc.recommend("u1", 5)
    assert order == ["generation", "state"]


def test_a_list_computed_before_an_invalidation_is_filed_under_the_retired_generation(world: World) -> None:
    read_state = world.state.recent_items

    def state_then_event(user: str) -> list[str]:
        recent = read_state(user)
        world.cache.invalidate_tag(user_cache_tag(user))  # an event lands while the list is computed
        return recent

    world.state.recent_items = state_then_event  # type: ignore[method-assign]
    assert not world.svc.recommend("u1", 5).cached
    world.state.recent_items = read_state  # type: ignore[method-assign]
    assert not world.svc.recommend("u1", 5).cached
    assert world.svc.recommend("u1", 5).cached


def test_a_failing_generation_read_skips_the_cache_for_the_request(world: World) -> None:
    def unavailable(tag: str) -> str:
        raise BackendUnavailableError("cache down (fake)")

    world.cache.generation = unavailable  # type: ignore[method-assign]
    res = world.svc.recommend("u1", 5)
    assert not res.cached
    assert not res.degraded
    assert world.cache.gets == world.cache.sets == 0


def test_unknown_user_gets_popular_items_and_is_not_degraded(world: World) -> None:
    res = world.svc.recommend("stranger", 4)
    assert len(res.items) == 4
    assert not res.degraded
    assert res.candidates_per_channel == {"popularity": 12}
    assert world.ranker.calls == []
    assert all(it.reason.startswith("popular") for it in res.items)
    assert ids(res)[0] == "p5"  # the most frequent item of the training sequences


def test_recent_ids_unknown_to_the_bundle_are_skipped(world: World) -> None:
    res = world.svc.recommend("ghost", 5)
    assert world.ranker.calls[0][0] == ["p5"]
    assert "p5" not in ids(res)
    assert not res.degraded


def test_ranker_failure_falls_back_to_recall_scores_and_is_not_cached(world: World) -> None:
    world.ranker.fail = True
    res = world.svc.recommend("u1", 5)
    assert res.degraded
    assert res.ranker_fallback
    assert len(res.items) == 5
    scores = [it.score for it in res.items]
    assert scores == sorted(scores, reverse=True)
    assert world.cache.data == {}
    world.ranker.fail = False
    healthy = world.svc.recommend("u1", 5)
    assert not healthy.degraded
    assert not healthy.ranker_fallback


def test_slow_ranker_exceeding_the_latency_budget_degrades(world: World) -> None:
    world.ranker.delay_s = 0.2
    res = world.svc.recommend("u1", 5)
    assert res.degraded
    assert res.timings_ms["rank"] == pytest.approx(200.0)
    world.ranker.delay_s = 0.1
    assert not world.svc.recommend("u1", 6).degraded


def test_ranker_gets_only_the_budget_left_and_is_skipped_when_none_is(world: World) -> None:
    class SlowState(DictStateStore):
        def recent_items(self, user_id: str) -> list[str]:
            world.clock.advance(0.1)
            return super().recent_items(user_id)

    svc = make_service(BUNDLE, SlowState({"u1": ["p0"]}), world.cache, world.ranker, world.clock)
    assert not svc.recommend("u1", 3).degraded
    assert world.ranker.calls[-1][2] == pytest.approx(0.05)
    svc.pipeline.latency_budget_s = 0.05
    calls = len(world.ranker.calls)
    assert svc.recommend("u1", 4).degraded
    assert len(world.ranker.calls) == calls


def test_malformed_ranker_output_degrades(world: World) -> None:
    world.ranker.score_fn = lambda history, item: float("nan")
    assert world.svc.recommend("u1", 5).degraded


def test_cache_failures_are_ignored(world: World) -> None:
    world.cache.fail = True
    res = world.svc.recommend("u1", 5)
    assert len(res.items) == 5
    assert not res.cached
    assert not res.degraded
    assert not res.ranker_fallback


def test_rank_reports_a_ranker_fallback(world: World) -> None:
    world.ranker.fail = True
    assert world.svc.rank("u1", ["p1", "p2"]).ranker_fallback


def test_corrupt_cache_entries_are_recomputed(world: World) -> None:
    world.cache.data[world.svc.cache_key("u1", 5, generation="0")] = b"not json"
    res = world.svc.recommend("u1", 5)
    assert not res.cached
    assert len(res.items) == 5


def test_state_store_failure_serves_popular_items_degraded(world: World) -> None:
    world.state.fail = True
    res = world.svc.recommend("u1", 5)
    assert res.degraded
    assert res.candidates_per_channel == {"popularity": 12}
    assert world.cache.data == {}


def test_k_must_be_positive(world: World) -> None:
    with pytest.raises(InvalidInputError) as info:
        world.svc.recommend("u1", 0)
    assert info.value.field == "k"


# --- similar ----------------------------------------------------------------------------------------


def test_similar_lists_item_cf_neighbours_then_embedding_padding(world: World) -> None:
    res = world.svc.similar("p0", 6)
    assert len(res.items) == 6
    assert "p0" not in ids(res)
    assert len(set(ids(res))) == 6
    neighbours = [CATALOG.item_ids[i] for i in itemcf_of(BUNDLE).similar(0)[0]]
    assert ids(res)[: len(neighbours)] == neighbours
    assert [it.channels for it in res.items] == [("itemcf",)] * len(neighbours) + [("embedding",)] * (
        6 - len(neighbours)
    )
    scores = [it.score for it in res.items]
    assert scores[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(scores))
    assert res.items[0].reason == "often viewed with Digital Caliper 6 inch"
    assert res.items[-1].reason == "similar to Digital Caliper 6 inch"


def test_similar_of_an_item_without_neighbours_uses_embeddings_only(world: World) -> None:
    res = world.svc.similar("p11", 3)
    assert len(res.items) == 3
    assert all(it.channels == ("embedding",) for it in res.items)


def test_similar_of_an_unknown_item_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError) as info:
        world.svc.similar("nope")
    assert info.value.field == "item_id"


# --- search -----------------------------------------------------------------------------------------


def test_search_returns_matches_with_reason_and_facets_over_all_matches(world: World) -> None:
    res = world.svc.search("glass beaker", k=10, brand="seoh")
    assert ids(res) == ["p2", "p4"]
    assert res.items[0].reason == "matches 'glass beaker'"
    assert res.items[0].channels == ("bm25",)
    assert res.facets == {
        "brand": {"SEOH": 2, "Karter Scientific": 1},
        "category": {"Beakers": 2, "Cylinders": 1},
    }
    assert world.ranker.calls == []


def test_search_personalises_with_the_ranker_blended_with_bm25(world: World) -> None:
    plain = world.svc.search("filament", k=4)
    bm25 = {it.item_id: it.score for it in plain.items}
    lo, hi = min(bm25.values()), max(bm25.values())
    world.ranker.score_fn = lambda history, item: 10.0 if item == "p8" else 0.0
    personal = world.svc.search("filament", user_id="u1", k=4)
    assert world.ranker.calls[-1][0] == ["p0", "p2"]
    expected = {i: 0.7 * (s - lo) / (hi - lo) + 0.3 * (i == "p8") for i, s in bm25.items()}
    assert {it.item_id: it.score for it in personal.items} == pytest.approx(expected)
    assert ids(personal).index("p8") < ids(plain).index("p8")


def test_search_for_a_user_without_history_is_plain_bm25(world: World) -> None:
    assert world.svc.search("filament", user_id="stranger").items == world.svc.search("filament").items
    assert world.ranker.calls == []


def test_search_falls_back_to_bm25_when_the_ranker_fails(world: World) -> None:
    world.ranker.fail = True
    res = world.svc.search("filament", user_id="u1")
    assert res.degraded
    assert res.items == world.svc.search("filament").items


def test_blank_search_is_invalid_and_nonsense_finds_nothing(world: World) -> None:
    with pytest.raises(InvalidInputError) as info:
        world.svc.search("   ")
    assert info.value.field == "q"
    res = world.svc.search("zeppelin")
    assert res.items == []
    assert res.facets == {"brand": {}, "category": {}}


# --- rank -------------------------------------------------------------------------------------------


def test_rank_orders_the_given_items_for_the_user(world: World) -> None:
    world.ranker.score_fn = lambda history, item: {"p5": 1.0, "p1": 3.0, "p3": 2.0}[item]
    res = world.svc.rank("u1", ["p5", "p1", "p3", "p1"])
    assert ids(res) == ["p1", "p3", "p5"]
    assert not res.degraded
    assert world.ranker.calls[-1][1] == ["p5", "p1", "p3"]
    assert res.items[0].reason == "because you viewed Digital Caliper 6 inch"
    assert res.items[2].reason == "popular in Filament"


def test_rank_rejects_unknown_item_ids_listing_them(world: World) -> None:
    with pytest.raises(InvalidInputError) as info:
        world.svc.rank("u1", ["p1", "x1", "x2", "x1"])
    assert info.value.field == "item_ids"
    assert info.value.values == ["x1", "x2"]


def test_rank_falls_back_to_item_cf_then_popularity_when_the_ranker_fails(world: World) -> None:
    world.ranker.fail = True
    res = world.svc.rank("u1", ["p5", "p3", "p1", "p6"])
    assert res.degraded
    # p1 and p3 are item-CF neighbours of the history; p5 is more popular than p6.
    assert set(ids(res)[:2]) == {"p1", "p3"}
    assert ids(res)[2:] == ["p5", "p6"]


def test_rank_for_a_user_without_history_uses_popularity(world: World) -> None:
    res = world.svc.rank("stranger", ["p11", "p6", "p5"])
    assert ids(res) == ["p5", "p6", "p11"]
    assert not res.degraded
    assert world.ranker.calls == []
    assert world.svc.rank("u1", []).items == []


def test_pipeline_rejects_a_catalogue_of_another_bundle() -> None:
    with pytest.raises(ValueError, match="items"):
        build_pipeline(BUNDLE, CatalogIndex.build(["a"], {}), FakeRanker())


def test_state_errors_other_than_unavailability_propagate(world: World) -> None:
    class Broken(DictStateStore):
        def recent_items(self, user_id: str) -> list[str]:
            raise RuntimeError("bug")

    svc = make_service(BUNDLE, Broken(), DictCache(), FakeRanker())
    with pytest.raises(RuntimeError):
        svc.recommend("u1")


def test_hybrid_search_names_the_channels_and_explains_semantic_only_matches(world: World) -> None:
    from tests.unit.test_search_hybrid import FakeEncoder

    from shoprec.search.bm25 import Bm25Search
    from shoprec.search.dense import DenseSearch
    from shoprec.search.hybrid import HybridSearch

    # The tiny catalogue is smaller than the semantic channel's depth, so it finds every item.
    vectors = np.eye(CATALOG.n_items, dtype=np.float32)
    leaves = [path[-1] if path else "" for path in CATALOG.categories]
    dense = DenseSearch(FakeEncoder({"beaker": vectors[0].tolist()}), vectors, leaves, category_weight=0.0)
    assert CATALOG.n_items < dense.depth
    hybrid = HybridSearch(Bm25Search.build(CATALOG), dense, semantic_weight=0.5)
    svc = RecommendationService(
        world.svc.pipeline,
        world.state,
        world.cache,
        model_version="v",
        version_tag="v",
        search_factory=lambda: hybrid,
    )
    res = svc.search("beaker", k=CATALOG.n_items)
    lexical = {CATALOG.item_ids[i] for i in Bm25Search.build(CATALOG).match("beaker")[0]}
    assert lexical
    assert len(res.items) == CATALOG.n_items
    for item in res.items:
        if item.item_id in lexical:
            assert (item.channels, item.reason) == (("bm25", "semantic"), "matches 'beaker'")
        else:
            assert (item.channels, item.reason) == (("semantic",), "related to 'beaker'")
    assert res.candidates_per_channel == {"bm25": len(lexical), "semantic": CATALOG.n_items}


def test_similar_pads_with_the_content_channel_when_the_bundle_has_text(world: World) -> None:
    from dataclasses import replace

    from tests.unit.test_channels import _text_vectors

    vectors = _text_vectors()
    vectors[11] = [0.0, 0.0, 1.0]  # p11 (no item-CF neighbours) gets a text
    bundle = replace(BUNDLE, text_embeddings=vectors)
    svc = make_service(bundle, world.state, world.cache, world.ranker, world.clock)
    assert svc.pipeline.sources == ("ranker", "itemcf", "embedding", "popularity", "content")
    assert world.svc.pipeline.sources == ("ranker", "itemcf", "embedding", "popularity")
    res = svc.similar("p11", 3)  # no item-CF neighbours: the text neighbours alone
    expected = [CATALOG.item_ids[i] for i in svc.pipeline.content.similar(11, 3)[0].tolist()]
    assert ids(res) == expected
    assert all(it.channels == ("content",) for it in res.items)
    assert res.candidates_per_channel == {"itemcf": 0, "content": 3}
    full = svc.similar("p0", 6)
    assert [it.channels[0] for it in full.items].count("content") == 6 - len(itemcf_of(BUNDLE).similar(0)[0])
