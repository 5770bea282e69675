from __future__ import annotations

import pytest
from tests.unit.fakes import (
    DictCache,
    DictStateStore,
    FakeRanker,
    event,
    make_bundle,
    make_catalog,
    make_service,
)

from shoprec.errors import BackendUnavailableError, InvalidInputError
from shoprec.services.events import EventService, user_hash

BUNDLE = make_bundle()
CATALOG = make_catalog(BUNDLE)


@pytest.fixture
def state() -> DictStateStore:
    return DictStateStore()


@pytest.fixture
def cache() -> DictCache:
    return DictCache()


@pytest.fixture
def service(state: DictStateStore, cache: DictCache) -> EventService:
    return EventService(CATALOG, state, cache)


def test_ingest_stores_events_and_invalidates_each_users_cache(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    result = service.ingest([event("u1", "p1", 2), event("u1", "p0", 1), event("u2", "p5", 1)])
    assert (result.applied, result.duplicates) == (3, 0)
    assert state.recent == {"u1": ["p0", "p1"], "u2": ["p5"]}
    assert sorted(cache.invalidated) == ["u1", "u2"]


def test_ingest_is_idempotent_by_event_id(service: EventService, state: DictStateStore) -> None:
    service.ingest([event("u1", "p1", 1)])
    result = service.ingest([event("u1", "p1", 1), event("u1", "p2", 2)])
    assert (result.applied, result.duplicates) == (1, 1)
    assert state.recent["u1"] == ["p1", "p2"]


def test_unknown_item_ids_reject_the_whole_batch(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    batch = [event("u1", "p1", 1), event("u1", "x9", 2), event("u2", "x7", 3), event("u2", "x9", 4)]
    with pytest.raises(InvalidInputError) as info:
        service.ingest(batch)
    assert info.value.field == "events"
    assert info.value.values == ["x9", "x7"]
    assert state.apply_calls == 0
    assert state.recent == {}
    assert cache.invalidated == []


def test_malformed_ids_are_rejected(service: EventService, state: DictStateStore) -> None:
    with pytest.raises(InvalidInputError) as info:
        service.ingest([event("bad user", "p1", 1)])
    assert info.value.values == ["bad user"]
    assert state.apply_calls == 0


def test_an_empty_batch_changes_nothing(service: EventService, state: DictStateStore) -> None:
    result = service.ingest([])
    assert (result.applied, result.duplicates) == (0, 0)
    assert state.apply_calls == 0


def test_a_failed_invalidation_is_not_acknowledged_and_the_retry_completes_it(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    cache.fail = True
    with pytest.raises(BackendUnavailableError, match="events stored"):
        service.ingest([event("u1", "p1", 1)])
    assert state.recent["u1"] == ["p1"]  # stored: the retry must not apply it twice
    cache.fail = False
    result = service.ingest([event("u1", "p1", 1)])
    assert (result.applied, result.duplicates) == (0, 1)
    assert cache.invalidated == ["u1"]  # a batch of duplicates still invalidates its users


def test_a_deletion_whose_invalidation_fails_is_not_acknowledged_and_the_retry_completes_it(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    service.ingest([event("u1", "p1", 1)])
    cache.invalidated.clear()
    cache.fail = True
    with pytest.raises(BackendUnavailableError):
        service.delete_user("u1")
    assert "u1" not in state.recent
    cache.fail = False
    assert service.delete_user("u1") is False  # nothing left in the store ...
    assert cache.invalidated == ["u1"]  # ... and the cache is clean now


def test_state_store_failures_propagate(service: EventService, state: DictStateStore) -> None:
    state.fail = True
    with pytest.raises(BackendUnavailableError):
        service.ingest([event("u1", "p1", 1)])


def test_the_audit_hash_is_keyed_and_hides_the_id() -> None:
    assert user_hash("u1") == user_hash("u1")
    assert user_hash("u1") != user_hash("u2")
    assert user_hash("u1", b"another key") != user_hash("u1")
    assert len(user_hash("u1")) == 32


def test_delete_user_removes_state_and_cached_lists(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    service.ingest([event("u1", "p1", 1)])
    cache.invalidated.clear()
    assert service.delete_user("u1") is True
    assert "u1" not in state.recent
    assert cache.invalidated == ["u1"]
    assert service.delete_user("u1") is False


def test_new_events_show_up_in_the_next_recommendation(
    service: EventService, state: DictStateStore, cache: DictCache
) -> None:
    recs = make_service(BUNDLE, state, cache, FakeRanker())
    service.ingest([event("u1", "p0", 1)])
    first = recs.recommend("u1", 5)
    assert recs.recommend("u1", 5).cached
    service.ingest([event("u1", "p1", 2)])
    after = recs.recommend("u1", 5)
    assert not after.cached
    assert "p1" in [it.item_id for it in first.items]
    assert "p1" not in [it.item_id for it in after.items]
