"""The rule service (in-process cache, bounded staleness, store failures), the rule stores (sqlite and
in-memory), and the rules applied by the recommendation service: recommend (cached lists follow a rule
change), similar and search; the evaluation paths apply no rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.fakes import DictCache, DictStateStore, FakeClock, FakeRanker, make_bundle, make_pipeline

from shoprec.adapters.local.memory_rules import MemoryRuleStore
from shoprec.adapters.local.sqlite_rules import SqliteRuleStore
from shoprec.errors import BackendUnavailableError, NotFoundError
from shoprec.merchandising import MerchRule, Surface
from shoprec.rerank.merch import PROMOTED
from shoprec.services.merchandising import MerchandisingService
from shoprec.services.recommendation import RecommendationService
from shoprec.services.results import ListResult

BUNDLE = make_bundle()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class WallClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def block(rule_id: str = "r1", *items: str, **fields: object) -> MerchRule:
    return MerchRule(rule_id=rule_id, action="block", items=items or ("p1",), **fields)  # type: ignore[arg-type]


def ids(result: ListResult) -> list[str]:
    return [it.item_id for it in result.items]


# --- stores -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_store_creates_replaces_lists_and_deletes(kind: str, tmp_path: Path) -> None:
    store = SqliteRuleStore(tmp_path / "state.db") if kind == "sqlite" else MemoryRuleStore()
    assert store.get("r1") is None
    assert store.list() == []
    assert store.put(block("r2")) is True
    assert store.put(block("r1")) is True
    assert store.put(block("r1", "p3")) is False  # replaced
    assert store.get("r1") == block("r1", "p3")
    assert [r.rule_id for r in store.list()] == ["r1", "r2"]
    assert store.delete("r1") is True
    assert store.delete("r1") is False
    assert [r.rule_id for r in store.list()] == ["r2"]


def test_the_sqlite_store_shares_the_state_file_and_skips_rules_that_no_longer_validate(
    tmp_path: Path,
) -> None:
    from shoprec.adapters.local.sqlite_state import SqliteUserStateStore

    path = tmp_path / "state.db"
    state = SqliteUserStateStore(path)
    store = SqliteRuleStore(path)
    store.put(block("ok"))
    assert state.recent_items("u") == []
    conn = store._conn()
    conn.execute("INSERT INTO merch_rules VALUES ('bad', '{\"action\": \"explode\"}', 0)")
    assert [r.rule_id for r in SqliteRuleStore(path).list()] == ["ok"]
    assert store.get("bad") is None


def test_an_unopenable_sqlite_file_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(BackendUnavailableError):
        SqliteRuleStore(tmp_path / "dir.db")


# --- the service's cache --------------------------------------------------------------------------------


def test_a_change_elsewhere_shows_within_the_refresh_interval_and_at_once_here() -> None:
    store, clock = MemoryRuleStore(), FakeClock()
    svc = MerchandisingService(store, refresh_s=5.0, clock=clock, now=WallClock())
    other = MerchandisingService(store, refresh_s=5.0, clock=clock, now=WallClock())  # another process
    assert not svc.rules_for(Surface.SEARCH)
    assert store.reads == 1
    other.put(block())
    assert other.rules_for(Surface.SEARCH).rules == (block(),)  # the writer sees it at once
    clock.advance(4.9)
    assert not svc.rules_for(Surface.SEARCH)  # cached: bounded staleness
    assert store.reads == 2
    clock.advance(0.1)
    assert svc.rules_for(Surface.SEARCH).rules == (block(),)
    other.delete("r1")
    clock.advance(5.0)
    assert not svc.rules_for(Surface.SEARCH)
    with pytest.raises(NotFoundError) as info:
        svc.delete("r1")
    assert info.value.field == "rule_id"
    with pytest.raises(NotFoundError):
        svc.get("r1")


def test_a_failing_store_keeps_the_last_rules_and_is_retried_after_the_interval() -> None:
    store, clock = MemoryRuleStore(), FakeClock()
    svc = MerchandisingService(store, refresh_s=5.0, clock=clock, now=WallClock())
    store.put(block())
    assert svc.rules_for(Surface.SEARCH).rules == (block(),)
    store.fail = True
    clock.advance(6)
    assert svc.rules_for(Surface.SEARCH).rules == (block(),)
    reads = store.reads
    assert svc.rules_for(Surface.SEARCH).rules == (block(),)
    assert store.reads == reads
    fresh = MerchandisingService(store, refresh_s=5.0, clock=clock, now=WallClock())
    assert fresh.rules_for(Surface.SEARCH).digest == "unavailable"


def test_time_windows_are_checked_per_request_not_per_refresh() -> None:
    store, wall = MemoryRuleStore(), WallClock()
    svc = MerchandisingService(store, refresh_s=3600, clock=FakeClock(), now=wall)
    svc.put(block(starts_at=NOW + timedelta(minutes=1), ends_at=NOW + timedelta(minutes=2)))
    assert not svc.rules_for(Surface.SIMILAR)
    wall.now = NOW + timedelta(minutes=1)
    assert svc.rules_for(Surface.SIMILAR)
    wall.now = NOW + timedelta(minutes=2)
    assert not svc.rules_for(Surface.SIMILAR)


# --- applied by the recommendation service -------------------------------------------------------------


class World:
    def __init__(self, *, rules: bool = True) -> None:
        self.clock = FakeClock()
        self.store = MemoryRuleStore()
        self.merch = MerchandisingService(self.store, refresh_s=5.0, clock=self.clock, now=WallClock())
        self.cache = DictCache()
        self.svc = RecommendationService(
            make_pipeline(BUNDLE, FakeRanker(self.clock), self.clock, candidates=300),
            DictStateStore({"u1": ["p0", "p2"]}),
            self.cache,
            model_version=BUNDLE.model_version,
            version_tag=BUNDLE.manifest.short_version,
            merchandising=self.merch if rules else None,
        )


def test_a_rule_change_reaches_cached_lists_within_the_refresh_interval() -> None:
    w = World()
    first = w.svc.recommend("u1", 5)
    assert w.svc.recommend("u1", 5).cached
    top = first.items[0].item_id
    # written through another process: this one sees it after its refresh interval
    w.store.put(block("r1", top))
    assert w.svc.recommend("u1", 5).cached
    w.clock.advance(5.0)
    after = w.svc.recommend("u1", 5)
    assert not after.cached
    assert top not in ids(after)
    assert len(after.items) == 5
    assert w.svc.recommend("u1", 5).cached  # cached again, under the new rules' key
    w.merch.delete("r1")  # through this process: at once
    back = w.svc.recommend("u1", 5)
    assert ids(back) == ids(first)
    assert back.cached


def test_recommend_pins_and_boosts_with_filters_and_seen_items() -> None:
    w = World()
    base = w.svc.recommend("u1", 4, category="lab")
    w.merch.put(MerchRule(rule_id="pin", action="pin", items=("p2", "p4", "p9"), position=1))
    w.merch.put(MerchRule(rule_id="boost", action="boost", items=(base.items[-1].item_id,), weight=2.0))
    out = w.svc.recommend("u1", 4, category="lab")
    # p2 is seen, p9 not in "lab": only p4 is pinned; the boosted item comes right after it
    assert ids(out)[:2] == ["p4", base.items[-1].item_id]
    assert [it.reason for it in out.items[:2]] == [PROMOTED, PROMOTED]
    assert not {"p0", "p2"} & set(ids(out))


def test_rules_scoped_to_a_category_apply_on_that_category_page_only() -> None:
    w = World()
    w.merch.put(
        MerchRule(rule_id="c", action="pin", items=("p10",), position=1, scope="category", scope_value="Glue")
    )
    assert ids(w.svc.recommend("u1", 3, category="glue"))[0] == "p10"
    assert ids(w.svc.recommend("u1", 3))[0] != "p10"


def test_similar_and_search_apply_their_surfaces_rules() -> None:
    w = World()
    before = w.svc.similar("p5", 3)
    w.merch.put(
        MerchRule(rule_id="s", action="block", items=(before.items[0].item_id,), surfaces=("similar",))
    )
    w.merch.put(
        MerchRule(rule_id="seed", action="pin", items=("p5", "p9"), position=1, surfaces=("similar",))
    )
    after = w.svc.similar("p5", 3)
    assert ids(after)[0] == "p9"
    assert before.items[0].item_id not in ids(after)
    assert "p5" not in ids(after)
    q = w.svc.search("caliper", k=3)
    w.merch.put(
        MerchRule(rule_id="q", action="pin", items=("p9",), position=1, scope="query", scope_value="CALIPER")
    )
    pinned = w.svc.search("  caliper ", k=3)
    assert ids(pinned) == ["p9", *ids(q)[:2]]
    assert pinned.items[0].reason == PROMOTED
    assert "p9" not in ids(w.svc.search("beaker", k=3))


def test_a_service_without_merchandising_applies_no_rules() -> None:
    w = World(rules=False)
    before = w.svc.recommend("u1", 3)
    w.merch.put(block("r1", before.items[0].item_id))
    assert ids(w.svc.recommend("u1", 3, exclude_seen=True)) == ids(before)
