"""In-memory fakes of the ports and a tiny hand-made catalogue for service and pipeline tests.

The fakes implement the Protocols of ``shoprec.ports`` with dicts; failures and slowness are switched on
per test (``fail = True``, ``delay_s``) and time only moves on a :class:`FakeClock`, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.artifacts import Bundle, FusionSpec, Manifest, PipelineSpec, RankerSpec
from shoprec.catalog import CatalogIndex
from shoprec.domain import MAX_RECENT_ITEMS, Appended, ApplyResult, Event, EventType
from shoprec.errors import BackendUnavailableError, RankerUnavailableError
from shoprec.pipeline import RecommendationPipeline, build_pipeline
from shoprec.ports import Cache, Instance, Ranker, UserStateStore
from shoprec.ranking.fusion import Fusion
from shoprec.recall.itemcf import ItemCFNeighbours, fit_itemcf
from shoprec.recall.popularity import fit_popularity
from shoprec.services.recommendation import RecommendationService

MODEL_VERSION = "sha256:" + "ab" * 32

# Twelve items in five leaf categories; "p11" has no metadata at all.
ITEMS: list[tuple[str, str, str, list[str], str]] = [
    # (item id, title, brand, category path, description)
    ("p0", "Digital Caliper 6 inch", "Neiko", ["Tools", "Measuring", "Calipers"], "stainless steel"),
    ("p1", "Dial Caliper 6 inch", "Anytime Tools", ["Tools", "Measuring", "Calipers"], "shockproof dial"),
    ("p2", "Glass Beaker 250ml", "SEOH", ["Lab", "Lab Supplies", "Beakers"], "borosilicate glass"),
    ("p3", "Beaker Set", "Karter Scientific", ["Lab", "Lab Supplies", "Beakers"], "five glass beakers"),
    ("p4", "Graduated Cylinder 100ml", "SEOH", ["Lab", "Lab Supplies", "Cylinders"], "for a glass beaker"),
    ("p5", "PLA Filament Black", "HATCHBOX", ["3D Printing", "Filament"], "1.75mm spool"),
    ("p6", "PLA Filament White", "HATCHBOX", ["3D Printing", "Filament"], "1.75mm spool"),
    ("p7", "PETG Filament", "eSUN", ["3D Printing", "Filament"], "strong and glossy"),
    ("p8", "PLA Filament Red", "eSUN", ["3D Printing", "Filament"], "1.75mm spool"),
    ("p9", "Duct Tape Silver", "3M", ["Tapes, Adhesives & Sealants", "Duct Tape"], "waterproof tape"),
    ("p10", "Super Glue Gel", "Gorilla", ["Tapes, Adhesives & Sealants", "Glue"], "bonds in seconds"),
]
ITEM_IDS = [row[0] for row in ITEMS] + ["p11"]
N_ITEMS = len(ITEM_IDS)

# Training sequences (item indices): calipers go together, lab items together, filaments together.
SEQUENCES = [
    [0, 1, 2],
    [0, 1],
    [1, 0, 9],
    [2, 3, 4],
    [3, 2, 4, 10],
    [2, 4],
    [5, 6, 7, 8],
    [5, 6],
    [6, 5, 8],
    [7, 8, 5],
    [9, 10],
    [10, 9, 0],
    [5, 6, 9],
]


def catalog_rows() -> dict[str, dict[str, Any]]:
    return {
        item_id: {
            "item_id": item_id,
            "title": t,
            "brand": b,
            "categories": c,
            "description": d,
            "price": None,
        }
        for item_id, t, b, c, d in ITEMS
    }


TINY_PIPELINE = PipelineSpec(ranker=RankerSpec(max_len=8), fusion=FusionSpec(kind="ranker"))
"""The tiny bundle's pipeline: the ranker's score orders the candidates (the tests' fake ranker decides)."""


def make_bundle(
    *, dim: int = 8, seed: int = 0, with_catalog: bool = True, pipeline: PipelineSpec = TINY_PIPELINE
) -> Bundle:
    """The tiny catalogue as a loaded bundle: fitted popularity and item-CF, embeddings clustered by
    top-level category (so embedding neighbours are sensible) plus a little noise."""
    seqs = [np.asarray(s, dtype=np.int64) for s in SEQUENCES]
    rng = np.random.default_rng(seed)
    tops = sorted({row[3][0] for row in ITEMS})
    centres = rng.normal(size=(len(tops) + 1, dim))
    cluster = [tops.index(row[3][0]) for row in ITEMS] + [len(tops)]
    emb = (centres[cluster] + 0.1 * rng.normal(size=(N_ITEMS, dim))).astype(np.float32)
    manifest = Manifest(
        schema_version=1,
        model_version=MODEL_VERSION,
        created_at="2026-01-01T00:00:00Z",
        dataset={
            "name": "tiny",
            "fingerprint": "sha256:" + "0" * 64,
            "format": "generic",
            "n_users": len(SEQUENCES),
            "n_items": N_ITEMS,
            "n_interactions": sum(len(s) for s in SEQUENCES),
        },
        hyperparameters={},
        metrics={},
        files=(),
        pipeline=pipeline,
    )
    itemcf = fit_itemcf(seqs, N_ITEMS, k=5)
    return Bundle(
        path=Path("tiny-bundle"),
        manifest=manifest,
        item_ids=list(ITEM_IDS),
        popularity=fit_popularity(seqs, N_ITEMS),
        itemcf_indices=itemcf.indices,
        itemcf_scores=itemcf.scores,
        item_embeddings=emb,
        catalog=catalog_rows() if with_catalog else None,
    )


def itemcf_of(bundle: Bundle) -> ItemCFNeighbours:
    """The bundle's item-CF table as the recall model."""
    return ItemCFNeighbours(indices=bundle.itemcf_indices, scores=bundle.itemcf_scores)


def make_pipeline(
    bundle: Bundle,
    ranker: Ranker | None,
    clock: FakeClock | None = None,
    *,
    fusion: Fusion | None = None,
    candidates: int | None = None,
    latency_budget_ms: float = 150.0,
) -> RecommendationPipeline:
    """The pipeline the composition root would build for ``bundle``, on the fake clock when given."""
    return build_pipeline(
        bundle,
        make_catalog(bundle),
        ranker,
        candidates=candidates,
        latency_budget_ms=latency_budget_ms,
        fusion=fusion,
        clock=clock or FakeClock(),
    )


def make_service(
    bundle: Bundle,
    state: UserStateStore,
    cache: Cache,
    ranker: Ranker | None,
    clock: FakeClock | None = None,
    **pipeline: Any,
) -> RecommendationService:
    """The recommendation service over :func:`make_pipeline`, as the composition root wires it."""
    return RecommendationService(
        make_pipeline(bundle, ranker, clock, **pipeline),
        state,
        cache,
        model_version=bundle.model_version,
        version_tag=bundle.manifest.short_version,
    )


def make_catalog(bundle: Bundle | None = None) -> CatalogIndex:
    return CatalogIndex.from_bundle(bundle or make_bundle())


class FakeClock:
    """Seconds that only move when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DictStateStore:
    """``UserStateStore`` over dicts; set ``fail`` to make every call raise ``BackendUnavailableError``."""

    def __init__(self, recent: dict[str, list[str]] | None = None) -> None:
        self.recent: dict[str, list[str]] = {u: list(v) for u, v in (recent or {}).items()}
        self.event_ids: set[str] = set()
        self.fail = False
        self.apply_calls = 0

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailableError("state store down (fake)")

    def recent_items(self, user_id: str) -> list[str]:
        self._check()
        return list(self.recent.get(user_id, []))

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        self._check()
        self.apply_calls += 1
        applied = duplicates = 0
        users: set[str] = set()
        fresh: list[Event] = []
        for e in events:
            if e.event_id in self.event_ids:
                duplicates += 1
                continue
            self.event_ids.add(e.event_id)
            fresh.append(e)
        appended: dict[str, Appended] = {}
        for e in sorted(fresh, key=lambda e: e.timestamp):
            seq = self.recent.setdefault(e.user_id, [])
            before = appended.get(e.user_id, Appended(tuple(seq), ()))
            appended[e.user_id] = Appended(before.before, (*before.items, e.item_id))
            seq.append(e.item_id)
            del seq[:-MAX_RECENT_ITEMS]
            users.add(e.user_id)
            applied += 1
        return ApplyResult(applied=applied, duplicates=duplicates, users=frozenset(users), appended=appended)

    def delete_user(self, user_id: str) -> bool:
        self._check()
        return self.recent.pop(user_id, None) is not None

    def describe(self) -> str:
        return "memory://fake-state"


class DictCache:
    """``Cache`` over a dict (TTLs recorded, not enforced); ``fail`` makes every call raise. A tag's
    generation is the number of times it was invalidated."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, float] = {}
        self.tags: dict[str, set[str]] = {}
        self.generations: dict[str, int] = {}
        self.fail = False
        self.gets = 0
        self.sets = 0
        self.invalidated: list[str] = []

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailableError("cache down (fake)")

    def get(self, key: str) -> bytes | None:
        self._check()
        self.gets += 1
        return self.data.get(key)

    def set(self, key: str, value: bytes, ttl_seconds: float, *, tags: Sequence[str] = ()) -> None:
        self._check()
        self.sets += 1
        self.data[key] = value
        self.ttls[key] = ttl_seconds
        for tag in tags:
            self.tags.setdefault(tag, set()).add(key)

    def generation(self, tag: str) -> str:
        self._check()
        return str(self.generations.get(tag, 0))

    def invalidate_tag(self, tag: str) -> int:
        self._check()
        self.invalidated.append(tag)
        self.generations[tag] = self.generations.get(tag, 0) + 1
        keys = self.tags.pop(tag, set())
        for key in keys:
            self.data.pop(key, None)
        return len(keys)

    def describe(self) -> str:
        return "memory://fake-cache"


class FakeRanker:
    """``Ranker`` scoring with ``score_fn(history, candidate)`` (default: the candidate's position
    reversed, i.e. it keeps the given order).  ``fail`` raises ``RankerUnavailableError``; ``delay_s``
    advances ``clock`` by that much per call, simulating a slow backend."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        score_fn: Callable[[Sequence[str], str], float] | None = None,
    ) -> None:
        self.clock = clock
        self.score_fn = score_fn
        self.fail = False
        self.delay_s = 0.0
        self.calls: list[tuple[list[str], list[str], float]] = []
        """One entry per scored instance: (history, candidates, timeout_s)."""

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        """One backend call: the clock advances by ``delay_s`` once, whatever the number of instances."""
        self.calls.extend((list(h), list(c), timeout_s) for h, c in instances)
        if self.clock is not None:
            self.clock.advance(self.delay_s)
        if self.fail:
            raise RankerUnavailableError("ranker down (fake)")
        return [self._scores(h, c) for h, c in instances]

    def _scores(self, history: Sequence[str], candidates: Sequence[str]) -> list[float]:
        if self.score_fn is None:
            return [float(len(candidates) - i) for i in range(len(candidates))]
        return [self.score_fn(history, c) for c in candidates]

    def describe(self) -> str:
        return "fake://ranker"


def event(user_id: str, item_id: str, n: int, event_id: str | None = None) -> Event:
    """A view event ``n`` seconds after a fixed epoch."""
    return Event(
        event_id=event_id or f"{user_id}-{item_id}-{n}",
        user_id=user_id,
        item_id=item_id,
        type=EventType.VIEW,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
    )
