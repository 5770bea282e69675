"""DynamoDbItemStore against moto over HTTP (AWS_ENDPOINT_URL): the ItemStore specification of
tests/unit/test_item_store.py, plus what is DynamoDB's own: the items share the state table under their own
partition, listings page, damaged rows, and two writers of one item."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit import test_item_store as contract
from tests.unit.fakes import FakeClock

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_items import ITEMS_PK, DynamoDbItemStore
from shoprec.adapters.aws.dynamodb_rules import DynamoDbRuleStore
from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore, create_table
from shoprec.adapters.item_stores import item_store_for
from shoprec.domain import Event, EventType
from shoprec.errors import BackendUnavailableError
from shoprec.items import CatalogItem
from shoprec.merchandising import MerchRule

caliper = contract.caliper


@pytest.fixture
def table(moto_server: str) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    create_table(aws_client("dynamodb"), name)
    return name


class TestDynamoDb(contract.ItemStoreContract):
    # Four threads on one item and the one version item exhaust the transaction's six attempts on moto now
    # and then (a PUT then answers 503, to be retried); two still race on every write.
    WRITERS = 2

    @pytest.fixture
    def store(self, table: str, clock: FakeClock) -> DynamoDbItemStore:
        return DynamoDbItemStore(table, clock=clock)


class Recording:
    """A boto3 client that records calls by operation and can run a hook after a ``get_item``."""

    def __init__(self, client: Any, *, page_size: int | None = None) -> None:
        self._client = client
        self._page_size = page_size
        self.calls: list[str] = []
        self.after_get: list[Any] = []

    def get_item(self, **kwargs: Any) -> Any:
        self.calls.append("GetItem")
        resp = self._client.get_item(**kwargs)
        if self.after_get:
            self.after_get.pop(0)()
        return resp

    def query(self, **kwargs: Any) -> Any:
        self.calls.append("Query")
        if self._page_size:
            kwargs["Limit"] = self._page_size
        return self._client.query(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls.append("TransactWriteItems")
        return self._client.transact_write_items(**kwargs)


def test_items_live_beside_users_and_rules(table: str) -> None:
    state = DynamoDbUserStateStore(table)
    rules = DynamoDbRuleStore(table)
    store = item_store_for(f"dynamodb://{table}")
    state.apply_events([Event("e1", "u1", "p1", EventType.VIEW, datetime(2026, 1, 1, tzinfo=UTC))])
    rules.put(MerchRule(rule_id="r1", action="block", items=("p1",)))  # type: ignore[arg-type]
    store.put(caliper())
    store.delist("p2")
    assert [i.item_id for i in store.list()] == ["p1", "p2"]  # not the version item, rules or users
    assert state.delete_user("u1") is True
    assert [r.rule_id for r in rules.list()] == ["r1"]
    assert len(store.list()) == 2
    assert store.describe() == f"dynamodb://{table}#{ITEMS_PK}"


def test_list_pages_through_the_partition(table: str) -> None:
    client = Recording(aws_client("dynamodb"), page_size=7)
    store = DynamoDbItemStore(table, client)
    for n in range(30):
        store.put(caliper(f"p{n:02d}"))
    client.calls.clear()
    assert [i.item_id for i in store.list()] == [f"p{n:02d}" for n in range(30)]
    assert client.calls.count("Query") >= 5


def test_version_is_one_read_on_the_read_client_and_a_same_write_is_one_read(table: str) -> None:
    writes, reads = Recording(aws_client("dynamodb")), Recording(aws_client("dynamodb"))
    store = DynamoDbItemStore(table, writes, read_client=reads)
    assert store.version() == "0"
    assert store.put(caliper()) is True
    assert writes.calls == ["GetItem", "TransactWriteItems"]
    writes.calls.clear()
    assert store.put(caliper()) is False
    assert writes.calls == ["GetItem"]
    reads.calls.clear()
    store.version()
    assert reads.calls == ["GetItem"]


def test_a_writer_that_read_a_stale_item_reads_again_and_loses_nothing(table: str) -> None:
    client = Recording(aws_client("dynamodb"))
    first, other = DynamoDbItemStore(table, client), DynamoDbItemStore(table)
    first.put(caliper())
    version = first.version()
    # Between first's read and its transaction, another writer changes the item.
    client.after_get.append(lambda: other.put(caliper(price=1.0)))
    client.calls.clear()
    assert first.put(caliper(price=2.0)) is False
    assert client.calls == ["GetItem", "TransactWriteItems", "GetItem", "TransactWriteItems"]
    assert first.get("p1") == caliper(price=2.0, updated_at=first.get("p1").updated_at)  # type: ignore[union-attr]
    assert first.version().split(".")[-1] == str(int(version.split(".")[-1]) + 2)


def test_a_stored_row_that_does_not_read_is_a_tombstone(table: str) -> None:
    store = DynamoDbItemStore(table)
    raw = aws_client("dynamodb")
    raw.put_item(TableName=table, Item={"pk": {"S": ITEMS_PK}, "sk": {"S": "ITEM#p1"}, "body": {"S": "{"}})
    raw.put_item(TableName=table, Item={"pk": {"S": ITEMS_PK}, "sk": {"S": "ITEM#a b"}, "body": {"S": "{}"}})
    raw.put_item(TableName=table, Item={"pk": {"S": ITEMS_PK}, "sk": {"S": "ITEM#p2"}})
    assert store.get("p1") == CatalogItem("p1", delisted=True)
    assert store.list() == [CatalogItem("p1", delisted=True), CatalogItem("p2", delisted=True)]
    assert store.put(caliper()) is False  # a put repairs it
    assert store.put(caliper("p2")) is False
    assert [i.visible for i in store.list()] == [True, True]


def test_a_missing_table_is_a_backend_error(moto_server: str) -> None:
    store = DynamoDbItemStore("no-such-table")
    for call in (store.list, store.version, lambda: store.put(caliper()), lambda: store.delist("p1")):
        with pytest.raises(BackendUnavailableError, match="no-such-table"):
            call()
