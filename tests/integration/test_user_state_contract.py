"""The UserStateStore specification, run against every implementation (sqlite file, DynamoDB on moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore, create_table
from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.domain import MAX_RECENT_ITEMS, Appended, ApplyResult, Event, EventType
from shoprec.ports import UserStateStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(event_id: str, user: str, item: str, seconds: float = 0.0) -> Event:
    return Event(event_id, user, item, EventType.VIEW, T0 + timedelta(seconds=seconds))


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStateStore]:
    if request.param == "sqlite":
        sqlite = SqliteUserStateStore(tmp_path / "state.db")
        yield sqlite
        sqlite.close()
    else:
        request.getfixturevalue("moto_server")
        table = f"state-{uuid.uuid4().hex[:12]}"
        create_table(aws_client("dynamodb"), table)
        yield DynamoDbUserStateStore(table)


def test_implements_the_port(store: UserStateStore) -> None:
    assert isinstance(store, UserStateStore)


def test_unknown_user_has_no_items(store: UserStateStore) -> None:
    assert store.recent_items("nobody") == []


def test_applied_events_become_recent_items_oldest_first(store: UserStateStore) -> None:
    result = store.apply_events([event("e1", "u1", "10", 1), event("e2", "u1", "11", 2)])
    assert result == ApplyResult(applied=2, duplicates=0, users=frozenset({"u1"}))
    store.apply_events([event("e3", "u1", "12", 3)])
    assert store.recent_items("u1") == ["10", "11", "12"]


def test_a_repeated_event_id_is_a_duplicate_in_a_later_call(store: UserStateStore) -> None:
    store.apply_events([event("e1", "u1", "10"), event("e2", "u1", "11", 1)])
    result = store.apply_events([event("e2", "u1", "11", 1), event("e3", "u1", "12", 2)])
    assert (result.applied, result.duplicates) == (1, 1)
    again = store.apply_events([event("e1", "u1", "10"), event("e3", "u1", "12", 2)])
    assert again == ApplyResult(applied=0, duplicates=2, users=frozenset())
    assert store.recent_items("u1") == ["10", "11", "12"]


def test_the_result_says_what_was_appended_after_which_items(store: UserStateStore) -> None:
    """What the online co-occurrence counts learn from: each user's items before and the new ones."""
    store.apply_events([event("e1", "u1", "10")])
    batch = [event("e1", "u1", "10"), event("e3", "u1", "12", 2), event("e2", "u1", "11", 1)]
    result = store.apply_events([*batch, event("f", "u2", "10")])
    assert result.appended == {
        "u1": Appended(before=("10",), items=("11", "12")),
        "u2": Appended(before=(), items=("10",)),
    }
    assert store.apply_events([event("e2", "u1", "11", 1)]).appended == {}


def test_a_repeated_event_id_within_one_batch_is_applied_once(store: UserStateStore) -> None:
    result = store.apply_events(
        [event("e1", "u1", "10"), event("e1", "u1", "10"), event("e2", "u1", "11", 1)]
    )
    assert (result.applied, result.duplicates) == (2, 1)
    assert store.recent_items("u1") == ["10", "11"]


def test_events_of_a_user_are_applied_in_timestamp_order(store: UserStateStore) -> None:
    store.apply_events([event("c", "u1", "30", 3), event("a", "u1", "10", 1), event("b", "u1", "20", 2)])
    assert store.recent_items("u1") == ["10", "20", "30"]


def test_equal_timestamps_keep_their_input_order(store: UserStateStore) -> None:
    store.apply_events([event("x", "u1", "7", 5), event("y", "u1", "3", 5), event("z", "u1", "5", 5)])
    assert store.recent_items("u1") == ["7", "3", "5"]


def test_only_the_most_recent_items_are_kept(store: UserStateStore) -> None:
    store.apply_events([event(f"a{i}", "u1", str(i), i) for i in range(30)])
    store.apply_events([event(f"b{i}", "u1", str(100 + i), 100 + i) for i in range(40)])
    items = store.recent_items("u1")
    assert len(items) == MAX_RECENT_ITEMS
    assert items == [str(i) for i in range(20, 30)] + [str(100 + i) for i in range(40)]


def test_a_large_batch_for_one_user_is_applied_completely(store: UserStateStore) -> None:
    result = store.apply_events([event(f"e{i}", "u1", str(i), i) for i in range(230)])
    assert (result.applied, result.duplicates) == (230, 0)
    assert store.recent_items("u1") == [str(i) for i in range(180, 230)]
    assert store.apply_events([event("e5", "u1", "5", 5), event("e229", "u1", "229", 229)]).duplicates == 2


def test_users_do_not_see_each_others_items(store: UserStateStore) -> None:
    result = store.apply_events(
        [event("e1", "alice", "1", 1), event("e2", "bob", "2", 2), event("e3", "alice", "3", 3)]
    )
    assert result.users == frozenset({"alice", "bob"})
    assert store.recent_items("alice") == ["1", "3"]
    assert store.recent_items("bob") == ["2"]


def test_event_ids_are_unique_per_user(store: UserStateStore) -> None:
    """The same id from two users is two events, in one batch and across calls alike."""
    first = store.apply_events([event("e1", "alice", "1", 1), event("e1", "bob", "2", 2)])
    assert (first.applied, first.duplicates) == (2, 0)
    later = store.apply_events([event("e1", "carol", "3", 3), event("e1", "alice", "4", 4)])
    assert (later.applied, later.duplicates) == (1, 1)
    assert [store.recent_items(u) for u in ("alice", "bob", "carol")] == [["1"], ["2"], ["3"]]


def test_delete_user_removes_state_and_stored_events(store: UserStateStore) -> None:
    store.apply_events([event("e1", "alice", "1"), event("e2", "bob", "2")])
    assert store.delete_user("alice") is True
    assert store.recent_items("alice") == []
    assert store.recent_items("bob") == ["2"]
    # The event ids went with the user: the same events are new again.
    assert store.apply_events([event("e1", "alice", "1")]).applied == 1
    assert store.delete_user("alice") is True
    assert store.delete_user("alice") is False
    assert store.delete_user("never-seen") is False


def test_an_empty_batch_changes_nothing(store: UserStateStore) -> None:
    assert store.apply_events([]) == ApplyResult(applied=0, duplicates=0, users=frozenset())


def test_describe_names_the_backend(store: UserStateStore) -> None:
    assert store.describe().split("://")[0] in ("sqlite", "dynamodb")
