"""The services on the real Amazon Scientific catalogue (4,344 items, 8,317 users).

The bundle is assembled in memory, without torch: popularity and item-CF fitted on the real training
sequences, the real catalogue (descriptions included, for search), and random item embeddings standing
in for the Transformer's item table.  The ports are the in-memory fakes; the ranker keeps recall order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tests.unit.fakes import TINY_PIPELINE, DictCache, DictStateStore, FakeRanker, event, make_service

from shoprec.artifacts import Bundle, Manifest
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, leave_one_out, load_dataset
from shoprec.recall import fit_itemcf, fit_popularity
from shoprec.services.events import EventService
from shoprec.services.recommendation import RecommendationService


@dataclass
class Real:
    ds: Dataset
    bundle: Bundle
    catalog: CatalogIndex
    state: DictStateStore
    svc: RecommendationService


def real_bundle(ds: Dataset, *, dim: int = 32, seed: int = 0) -> Bundle:
    history = leave_one_out(ds).train_with_valid()
    assert ds.catalog is not None
    catalog = {
        item_id: {
            "item_id": item_id,
            "title": m.title,
            "brand": m.brand,
            "categories": list(m.categories),
            "description": m.description,
            "price": m.price,
        }
        for item_id, m in ds.catalog.items()
    }
    manifest = Manifest(
        schema_version=2,
        model_version="sha256:" + "5c" * 32,
        created_at="2026-01-01T00:00:00Z",
        dataset={
            "name": ds.name,
            "fingerprint": ds.fingerprint(),
            "format": ds.fmt,
            "n_users": ds.n_users,
            "n_items": ds.n_items,
            "n_interactions": ds.n_interactions,
        },
        hyperparameters={},
        metrics={},
        files=(),
        pipeline=TINY_PIPELINE,
    )
    rng = np.random.default_rng(seed)
    itemcf = fit_itemcf(history, ds.n_items)
    return Bundle(
        path=Path(ds.source),
        manifest=manifest,
        item_ids=ds.item_ids,
        popularity=fit_popularity(history, ds.n_items),
        itemcf_indices=itemcf.indices,
        itemcf_scores=itemcf.scores,
        item_embeddings=rng.normal(size=(ds.n_items, dim)).astype(np.float32),
        catalog=catalog,
    )


@pytest.fixture(scope="module")
def real(scientific_dir: Path) -> Real:
    ds = load_dataset(scientific_dir)
    bundle = real_bundle(ds)
    catalog = CatalogIndex.from_bundle(bundle)
    state = DictStateStore(
        {f"user-{u}": [ds.item_ids[i] for i in seq[:-1]] for u, seq in enumerate(ds.sequences[:50])}
    )
    svc = make_service(bundle, state, DictCache(), FakeRanker())
    return Real(ds, bundle, catalog, state, svc)


def test_search_for_digital_caliper_finds_calipers(real: Real) -> None:
    res = real.svc.search("digital caliper", k=10)
    assert len(res.items) == 10
    assert all("caliper" in (it.title or "").lower() for it in res.items)
    assert res.facets is not None
    assert next(iter(res.facets["category"])) == "Digital Calipers"


def test_search_filters_by_brand_and_category(real: Real) -> None:
    res = real.svc.search("filament", k=20, brand="hatchbox")
    assert res.items
    assert all(real.catalog.brands[real.catalog.index_of[it.item_id]] == "HATCHBOX" for it in res.items)
    res = real.svc.search("tape", k=20, category="duct tape")
    assert res.items
    assert all(
        real.catalog.leaf_category(real.catalog.index_of[it.item_id]) == "Duct Tape" for it in res.items
    )


def test_recommendations_exclude_seen_items_and_credit_item_cf(real: Real) -> None:
    credited = 0
    for u in range(20):
        user = f"user-{u}"
        seen = set(real.state.recent[user])
        res = real.svc.recommend(user, 10)
        got = [it.item_id for it in res.items]
        assert len(got) == 10
        assert len(set(got)) == 10
        assert not seen & set(got)
        assert not res.degraded
        credited += sum(1 for it in res.items if "itemcf" in it.channels)
        for it in res.items:
            if it.reason.startswith("because you viewed "):
                title = it.reason.removeprefix("because you viewed ").rstrip("…")
                assert any(real.catalog.short_title(real.catalog.index_of[s]).startswith(title) for s in seen)
    assert credited > 0


def test_recommendations_are_diverse_across_leaf_categories(real: Real) -> None:
    for u in range(20):
        res = real.svc.recommend(f"user-{u}", 10)
        leaves = [real.catalog.leaf_category(real.catalog.index_of[it.item_id]) for it in res.items]
        counts = [leaves.count(leaf) for leaf in set(leaves) if leaf]
        assert max(counts, default=0) <= 5 or len(res.items) < 10


def test_similar_returns_k_items_for_a_real_item(real: Real) -> None:
    res = real.svc.similar(real.ds.item_ids[0], 10)
    assert len(res.items) == 10
    assert real.ds.item_ids[0] not in [it.item_id for it in res.items]
    assert res.items[0].reason.startswith("often viewed with ")


def test_events_change_the_next_recommendations(real: Real) -> None:
    events = EventService(real.catalog, real.state, real.svc.cache)
    before = real.svc.recommend("new-user", 10)
    assert before.candidates_per_channel == {"popularity": 300}
    caliper = real.svc.search("digital caliper", k=1).items[0].item_id
    events.ingest([event("new-user", caliper, 1)])
    after = real.svc.recommend("new-user", 10)
    assert not after.cached
    assert caliper not in [it.item_id for it in after.items]
    assert after.candidates_per_channel["itemcf"] > 0
