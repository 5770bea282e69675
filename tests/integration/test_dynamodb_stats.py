"""DynamoDbInteractionStats against moto over HTTP (AWS_ENDPOINT_URL): the InteractionStatsStore
specification of tests/unit/test_interaction_stats.py, plus what is DynamoDB's own: the counts share the
state table under their own partitions, every write is an ``UpdateItem`` (no read first), a request's
lists come in one ``BatchGetItem``, and a failing table is reported as unavailable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit import test_interaction_stats as contract

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore, create_table
from shoprec.adapters.aws.dynamodb_stats import DynamoDbInteractionStats
from shoprec.adapters.interaction_stats import Decay, interaction_stats_for
from shoprec.domain import Event, EventType
from shoprec.errors import BackendUnavailableError

T0 = contract.T0


@pytest.fixture
def table(moto_server: str) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    create_table(aws_client("dynamodb"), name)
    return name


class TestDynamoDb(contract.InteractionStatsContract):
    @pytest.fixture
    def store(self, table: str) -> DynamoDbInteractionStats:
        return DynamoDbInteractionStats(
            table,
            decay=Decay(contract.HALF_LIFE),
            max_neighbours=contract.MAX_NEIGHBOURS,
            read_timeout_s=5.0,  # the request path's 100 ms is too short for moto on a busy machine
        )


class Recording:
    """A boto3 client that records the operations called."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def update_item(self, **kwargs: Any) -> Any:
        self.calls.append("UpdateItem")
        return self._client.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls.append("BatchGetItem")
        return self._client.batch_get_item(**kwargs)

    def query(self, **kwargs: Any) -> Any:
        self.calls.append("Query")
        return self._client.query(**kwargs)


def test_writes_are_one_update_per_list_and_item_and_a_request_reads_once(table: str) -> None:
    client = Recording(aws_client("dynamodb"))
    store = DynamoDbInteractionStats(table, client, decay=Decay(100.0))  # reads with ``client`` too
    store.record({"a": {"b": 1.0, "c": 1.0}, "b": {"a": 0.25}}, {"b": 1.0}, at=T0)
    assert client.calls == ["UpdateItem"] * 3
    client.calls.clear()
    assert store.neighbours([f"i{n}" for n in range(60)] + ["a"], at=T0).keys() == {"a"}
    assert client.calls == ["BatchGetItem", "BatchGetItem"]  # 122 keys: two calls of at most 100


def test_the_counts_share_the_state_table_without_touching_users(table: str) -> None:
    state = DynamoDbUserStateStore(table)
    event = Event("e1", "u1", "a", EventType.VIEW, datetime(2026, 1, 1, tzinfo=UTC))
    state.apply_events([event])
    store = interaction_stats_for(f"dynamodb://{table}", half_life_s=100.0, read_timeout_s=5.0)
    store.record({"a": {"b": 1.0}}, {"a": 1.0}, at=T0)
    assert state.recent_items("u1") == ["a"]
    assert store.describe() == f"dynamodb://{table}#cooccurrence"
    assert state.delete_user("u1") is True
    assert store.neighbours(["a"], at=T0) == {"a": {"b": contract.close(1.0)}}


def test_a_missing_table_is_reported_as_unavailable(moto_server: str) -> None:
    store = DynamoDbInteractionStats("no-such-table", read_timeout_s=5.0)
    with pytest.raises(BackendUnavailableError, match="no-such-table"):
        store.neighbours(["a"], at=T0)
    with pytest.raises(BackendUnavailableError, match="UpdateItem"):
        store.record({"a": {"b": 1.0}}, {}, at=T0)
