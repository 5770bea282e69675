"""DynamoDbUserStateStore beyond the shared contract, against moto over HTTP (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_state import (
    DEFAULT_EVENT_TTL_S,
    DEFAULT_STATE_TTL_S,
    MAX_BATCH_WRITE_ITEMS,
    DynamoDbUserStateStore,
    create_table,
)
from shoprec.domain import Event, EventType
from shoprec.errors import BackendUnavailableError

NOW = 1_700_000_000.0


def event(event_id: str, user: str, item: str, second: int = 0) -> Event:
    return Event(event_id, user, item, EventType.CART, datetime.fromtimestamp(NOW + second, UTC))


class SpyClient:
    """A real DynamoDB client that can run ``before_transact`` once and records BatchWriteItem sizes."""

    def __init__(
        self, client: Any, before_transact: Callable[[], None] | None = None, *, every_time: bool = False
    ) -> None:
        self._client = client
        self._before_transact = before_transact
        self._every_time = every_time
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self._before_transact is not None:
            hook = self._before_transact
            if not self._every_time:
                self._before_transact = None
            hook()
        return self._client.transact_write_items(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        self.batch_sizes.extend(len(reqs) for reqs in kwargs["RequestItems"].values())
        return self._client.batch_write_item(**kwargs)


@pytest.fixture
def table(moto_server: str) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    create_table(aws_client("dynamodb"), name)
    return name


def test_items_follow_the_single_table_layout_with_ttls(table: str) -> None:
    store = DynamoDbUserStateStore(table, clock=lambda: NOW)
    store.apply_events([event("e1", "u1", "10"), event("e2", "u1", "11", 1)])
    raw = aws_client("dynamodb")
    state = raw.get_item(TableName=table, Key={"pk": {"S": "USER#u1"}, "sk": {"S": "STATE"}})["Item"]
    assert [v["S"] for v in state["items"]["L"]] == ["10", "11"]
    assert state["version"] == {"N": "1"}
    assert int(state["ttl"]["N"]) == int(NOW) + DEFAULT_STATE_TTL_S
    ev = raw.get_item(TableName=table, Key={"pk": {"S": "USER#u1"}, "sk": {"S": "EVENT#e2"}})["Item"]
    assert ev["item_id"] == {"S": "11"}
    assert int(ev["ttl"]["N"]) == int(NOW) + DEFAULT_EVENT_TTL_S


def test_create_table_is_idempotent_and_enables_ttl(table: str) -> None:
    raw = aws_client("dynamodb")
    create_table(raw, table)
    ttl = raw.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert (
        raw.describe_table(TableName=table)["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    )


def test_a_concurrent_writer_between_read_and_write_loses_no_items(table: str) -> None:
    other = DynamoDbUserStateStore(table)
    spy = SpyClient(aws_client("dynamodb"), lambda: other.apply_events([event("theirs", "u1", "b", 5)]))
    store = DynamoDbUserStateStore(table, client=spy)
    result = store.apply_events([event("mine", "u1", "a", 1)])
    assert (result.applied, result.duplicates) == (1, 0)
    assert store.recent_items("u1") == ["b", "a"]


def test_the_same_event_written_concurrently_is_applied_exactly_once(table: str) -> None:
    other = DynamoDbUserStateStore(table)
    spy = SpyClient(aws_client("dynamodb"), lambda: other.apply_events([event("e1", "u1", "a")]))
    store = DynamoDbUserStateStore(table, client=spy)
    result = store.apply_events([event("e1", "u1", "a"), event("e2", "u1", "b", 1)])
    assert (result.applied, result.duplicates) == (1, 1)
    assert store.recent_items("u1") == ["a", "b"]


def test_a_writer_that_always_loses_the_race_gives_up_as_unavailable(table: str) -> None:
    other = DynamoDbUserStateStore(table)
    counter = iter(range(1_000))
    spy = SpyClient(
        aws_client("dynamodb"),
        lambda: other.apply_events([event(f"theirs-{next(counter)}", "u1", "b")]),
        every_time=True,
    )
    with pytest.raises(BackendUnavailableError, match="still conflicts"):
        DynamoDbUserStateStore(table, client=spy).apply_events([event("mine", "u1", "a")])
    assert "a" not in DynamoDbUserStateStore(table).recent_items("u1")


def test_delete_user_batches_deletes_in_chunks_of_25(table: str) -> None:
    spy = SpyClient(aws_client("dynamodb"))
    store = DynamoDbUserStateStore(table, client=spy)
    store.apply_events([event(f"e{i}", "u1", str(i), i) for i in range(60)])
    store.apply_events([event("other", "u2", "x")])
    assert store.delete_user("u1") is True
    assert spy.batch_sizes == [25, 25, 11]  # 60 event items + the state item
    assert all(size <= MAX_BATCH_WRITE_ITEMS for size in spy.batch_sizes)
    left = aws_client("dynamodb").scan(TableName=table)["Items"]
    assert {item["pk"]["S"] for item in left} == {"USER#u2"}


def test_a_missing_table_is_reported_as_backend_unavailable(moto_server: str) -> None:
    store = DynamoDbUserStateStore("no-such-table")
    with pytest.raises(BackendUnavailableError, match="dynamodb://no-such-table"):
        store.recent_items("u1")
    with pytest.raises(BackendUnavailableError, match="dynamodb://no-such-table"):
        store.apply_events([event("e1", "u1", "1")])


def test_an_unreachable_endpoint_is_reported_as_backend_unavailable(
    aws_env: None, nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", nowhere)
    store = DynamoDbUserStateStore("t", client=aws_client("dynamodb", timeout_s=0.5, max_attempts=1))
    with pytest.raises(BackendUnavailableError, match="GetItem failed"):
        store.recent_items("u1")
    with pytest.raises(BackendUnavailableError):
        store.delete_user("u1")


def test_describe_names_the_table(table: str) -> None:
    assert DynamoDbUserStateStore(table).describe() == f"dynamodb://{table}"
