"""The live catalogue on the tiny catalogue: items put, edited, made unavailable and delisted, served by
every use case at once; price filters; refresh across processes; a failing store.

The sentence encoder is a hand-made bag of words (each word a fixed random unit vector, the text the
normalised sum), so that "close in text" is predictable here; the real encoder's paraphrases are tested
on the real catalogue (tests/integration/test_live_catalog_real.py).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

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
    make_pipeline,
)

from shoprec.adapters.local.memory_items import MemoryItemStore
from shoprec.artifacts import Bundle
from shoprec.catalog import CatalogIndex
from shoprec.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from shoprec.items import CatalogItem
from shoprec.search.bm25 import Bm25Search, words
from shoprec.search.dense import DenseSearch
from shoprec.search.hybrid import HybridSearch
from shoprec.services.events import EventService
from shoprec.services.live_catalog import LiveCatalog
from shoprec.services.recommendation import RecommendationService
from shoprec.text.items import item_text

DIM = 64


class BagOfWords:
    """A deterministic stand-in for the sentence encoder: unit-normalised sums of per-word vectors."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @staticmethod
    def word(w: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(w.encode())).normal(size=DIM)

    def encode(self, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for r, text in enumerate(texts):
            vec = sum((self.word(w) for w in words(text)), np.zeros(DIM))
            norm = np.linalg.norm(vec)
            out[r] = vec / norm if norm else vec
        return out


ENCODER = BagOfWords()


def text_bundle() -> Bundle:
    bundle = make_bundle()
    catalog = CatalogIndex.from_bundle(bundle)
    texts = [
        item_text(catalog.titles[i], catalog.brands[i], catalog.categories[i]) for i in range(len(catalog))
    ]
    return dataclasses.replace(bundle, text_embeddings=ENCODER.encode(texts))


BUNDLE = text_bundle()
IDX = {item_id: i for i, item_id in enumerate(BUNDLE.item_ids)}
NEW_CALIPER = CatalogItem(
    "new-caliper",
    title="Digital Caliper 8 inch Vernier",
    brand="Mitutoyo",
    categories=("Tools", "Measuring", "Calipers"),
    price=42.0,
)


class Shop:
    """A service, an events service and a live catalogue over one item store, as the container wires
    them; ``other()`` is a second process on the same store."""

    def __init__(self, store: MemoryItemStore | None = None, clock: FakeClock | None = None) -> None:
        self.store = store or MemoryItemStore()
        self.clock = clock or FakeClock()
        self.ranker = FakeRanker()
        self.state = DictStateStore()
        self.cache = DictCache()
        pipeline = make_pipeline(BUNDLE, self.ranker)
        base = pipeline.catalog
        self.live = LiveCatalog(
            base,
            self.store,
            pipeline=pipeline,
            search=lambda: HybridSearch(
                Bm25Search.build(base), DenseSearch(ENCODER, BUNDLE.text_embeddings, [""] * len(base))
            ),
            clock=self.clock,
        )
        self.service = RecommendationService(
            pipeline,
            self.state,
            self.cache,
            model_version=BUNDLE.model_version,
            version_tag=BUNDLE.manifest.short_version,
            live=self.live,
        )
        self.events = EventService(lambda: self.live.catalog, self.state, self.cache)

    def other(self) -> Shop:
        return Shop(self.store, self.clock)


def ids(result: object) -> list[str]:
    return [item.item_id for item in result.items]  # type: ignore[attr-defined]


# --- the catalogue index ---------------------------------------------------------------------------------


def test_with_overlay_appends_new_items_edits_known_ones_and_hides_the_delisted() -> None:
    base = make_catalog(BUNDLE)
    live = base.with_overlay(
        [
            NEW_CALIPER,
            CatalogItem("p2", title="Glass Beaker 250 ml, heavy wall", brand="SEOH", price=7.5),
            CatalogItem("p5", title="PLA Filament Black", available=False),
            CatalogItem("p9", delisted=True),  # a bare tombstone of a bundle item
        ]
    )
    assert live.n_base == base.n_items
    assert live.n_items == base.n_items + 1
    assert live.item_ids[-1] == "new-caliper"
    assert live.item_ids[: base.n_items] == base.item_ids
    new = live.index("new-caliper")
    assert live.titles[new] == NEW_CALIPER.title
    assert live.prices[new] == 42.0
    assert live.titles[IDX["p2"]] == "Glass Beaker 250 ml, heavy wall"
    assert live.prices[IDX["p2"]] == 7.5
    assert live.titles[IDX["p9"]] == base.titles[IDX["p9"]]  # the tombstone keeps the bundle's text
    assert not live.available[IDX["p5"]]
    assert live.listed[IDX["p5"]]
    assert not live.available[IDX["p9"]]
    assert not live.listed[IDX["p9"]]
    assert live.filtered()
    assert not base.filtered()
    mask = live.mask_for()
    assert not mask[IDX["p5"]]
    assert not mask[IDX["p9"]]
    assert mask[new]
    assert np.flatnonzero(live.mask_for(min_price=10)).tolist() == [new]  # unknown prices are left out
    assert np.flatnonzero(live.mask_for(max_price=10)).tolist() == [IDX["p2"]]
    assert not live.mask_for(category="Duct Tape").any()  # the only duct tape is delisted


# --- the live catalogue, served ----------------------------------------------------------------------------


def test_a_new_item_is_searchable_similar_and_usable_in_events_as_soon_as_it_is_put() -> None:
    shop = Shop()
    with pytest.raises(InvalidInputError):
        shop.events.ingest([event("u1", "new-caliper", 0)])
    assert shop.live.upsert(NEW_CALIPER) is True

    found = shop.service.search("vernier caliper", k=5)
    assert ids(found)[0] == "new-caliper"  # "vernier" is a word no bundle item has
    assert set(found.items[0].channels) == {"bm25", "semantic"}
    assert "new-caliper" in ids(shop.service.similar("p0", k=5))  # the content channel places it
    similar_of_new = shop.service.similar("new-caliper", k=3)  # no interactions: by its text alone
    assert set(ids(similar_of_new)[:2]) == {"p0", "p1"}
    assert all(item.channels == ("content",) for item in similar_of_new.items)

    assert shop.events.ingest([event("u1", "new-caliper", 0)]).applied == 1
    rec = shop.service.recommend("u1", k=5)  # a history of the new item alone
    assert rec.items
    assert not rec.degraded
    assert "new-caliper" not in ids(rec)  # seen
    history, candidates, _ = shop.ranker.calls[-1]
    assert history == ["p0"]  # the ranker is asked about the new item's stand-in, the closest caliper
    assert "new-caliper" not in candidates


def test_a_user_who_viewed_a_related_item_gets_the_new_item_among_the_candidates() -> None:
    shop = Shop()
    shop.live.upsert(NEW_CALIPER)
    shop.events.ingest([event("u2", "p0", 0)])
    view = shop.live.view()
    assert view.pipeline is not None
    new = view.catalog.index("new-caliper")
    from shoprec.pipeline import Request

    rec = view.pipeline.recommend([Request(history=np.asarray([IDX["p0"]]), k=5)])[0]
    assert new in rec.candidates.tolist()
    # the ranker scores the new item as it scores its stand-in
    _, candidates, _ = shop.ranker.calls[-1]
    assert candidates.count("p0") == 1  # the stand-in's id, once, in the new item's place


def test_delisted_and_unavailable_items_are_never_served_and_put_lists_them_again() -> None:
    shop = Shop()
    shop.state.recent["u1"] = ["p0", "p2"]
    everything = set(ids(shop.service.recommend("u1", k=12, exclude_seen=False)))
    assert {"p1", "p3"} <= everything
    shop.live.delist("p1")
    shop.live.upsert(CatalogItem("p3", title="Beaker Set", brand="Karter Scientific", available=False))

    lists = [
        shop.service.recommend("u1", k=12, exclude_seen=False),
        shop.service.recommend("cold-user", k=12),
        shop.service.similar("p0", k=12),
        shop.service.similar("p2", k=12),
        shop.service.search("caliper beaker", k=12),
        shop.service.rank("u1", ["p1", "p3", "p4"]),
    ]
    for result in lists:
        assert not {"p1", "p3"} & set(ids(result))
    assert ids(lists[-1]) == ["p4"]
    assert shop.service.search("dial caliper").facets["brand"].get("Anytime Tools") is None
    with pytest.raises(NotFoundError):
        shop.service.similar("p1")  # delisted: gone
    assert ids(shop.service.similar("p3", k=3))  # only out of stock: its page still has similar items

    shop.live.upsert(CatalogItem("p1", title="Dial Caliper 6 inch", brand="Anytime Tools"))
    assert "p1" in ids(shop.service.similar("p0", k=12))


def test_a_cached_list_is_not_served_after_the_catalogue_changed() -> None:
    shop = Shop()
    shop.state.recent["u1"] = ["p0"]
    first = shop.service.recommend("u1", k=3)
    assert shop.service.recommend("u1", k=3).cached
    victim = ids(first)[0]
    shop.live.delist(victim)
    after = shop.service.recommend("u1", k=3)
    assert not after.cached
    assert victim not in ids(after)


def test_price_filters_on_recommendations_and_search() -> None:
    shop = Shop()
    shop.live.upsert(NEW_CALIPER)  # 42.0
    shop.live.upsert(CatalogItem("p1", title="Dial Caliper 6 inch", brand="Anytime Tools", price=12.0))
    shop.state.recent["u1"] = ["p0"]
    assert set(ids(shop.service.recommend("u1", k=10, min_price=10))) <= {"new-caliper", "p1"}
    assert ids(shop.service.recommend("u1", k=10, min_price=10, max_price=20)) == ["p1"]
    assert ids(shop.service.search("caliper", k=10, max_price=50, min_price=20)) == ["new-caliper"]
    assert ids(shop.service.recommend("cold", k=10, min_price=100)) == []
    with pytest.raises(InvalidInputError) as err:
        shop.service.recommend("u1", min_price=30, max_price=20)
    assert err.value.field == "min_price"


def test_another_process_serves_a_change_after_its_refresh_interval() -> None:
    writer = Shop()
    reader = writer.other()
    assert "new-caliper" not in ids(reader.service.search("vernier", k=3))
    writer.live.upsert(NEW_CALIPER)
    assert "new-caliper" not in ids(reader.service.search("vernier", k=3))  # looked 0 s ago
    writer.clock.advance(reader.live.refresh_s)
    assert ids(reader.service.search("vernier", k=3))[0] == "new-caliper"


def test_a_failing_store_keeps_the_last_view_and_a_write_reports_the_failure() -> None:
    shop = Shop()
    shop.live.upsert(NEW_CALIPER)
    shop.clock.advance(1)

    def down() -> str:
        raise BackendUnavailableError("item store down (fake)")

    shop.store.version = down  # type: ignore[method-assign]
    assert ids(shop.service.search("vernier", k=1)) == ["new-caliper"]
    with pytest.raises(BackendUnavailableError):
        shop.live.delist("new-caliper")


def test_new_texts_are_encoded_once_per_process() -> None:
    shop = Shop()
    shop.live.upsert(NEW_CALIPER)
    before = len(ENCODER.calls)
    p1 = CatalogItem(
        "p1",
        title="Dial Caliper 6 inch",
        brand="Anytime Tools",
        categories=("Tools", "Measuring", "Calipers"),
        description="a new description",  # searched, not embedded
        price=12.0,
    )
    shop.live.upsert(p1)
    # p1's embedded text is the bundle's, and the caliper's was encoded before
    assert ENCODER.calls[before:] == []
    assert ids(shop.service.search("new description", k=1)) == ["p1"]
    before = len(ENCODER.calls)  # the search encoded its query
    shop.live.upsert(dataclasses.replace(p1, title="Dial Caliper 6 inch, metric"))
    assert ENCODER.calls[before:] == [["Dial Caliper 6 inch, metric. Anytime Tools. Measuring > Calipers"]]
