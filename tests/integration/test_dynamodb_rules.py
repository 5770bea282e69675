"""DynamoDbRuleStore against moto over HTTP (AWS_ENDPOINT_URL): the rules share the state table under
their own partition and never touch a user's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_rules import RULES_PK, DynamoDbRuleStore
from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore, create_table
from shoprec.domain import Event, EventType
from shoprec.errors import BackendUnavailableError
from shoprec.merchandising import MerchRule


@pytest.fixture
def table(moto_server: str) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    create_table(aws_client("dynamodb"), name)
    return name


def block(rule_id: str, *items: str) -> MerchRule:
    return MerchRule(rule_id=rule_id, action="block", items=items or ("p1",))  # type: ignore[arg-type]


def test_put_get_list_delete(table: str) -> None:
    store = DynamoDbRuleStore(table)
    assert store.get("r1") is None
    assert store.list() == []
    assert store.put(block("r2")) is True
    assert store.put(block("r1")) is True
    assert store.put(block("r1", "p3")) is False
    assert store.get("r1") == block("r1", "p3")
    assert [r.rule_id for r in store.list()] == ["r1", "r2"]
    assert store.delete("r1") is True
    assert store.delete("r1") is False
    assert [r.rule_id for r in store.list()] == ["r2"]


def test_rules_live_beside_users_and_list_pages_through_many(table: str) -> None:
    state = DynamoDbUserStateStore(table)
    store = DynamoDbRuleStore(table)
    state.apply_events([Event("e1", "u1", "p1", EventType.VIEW, datetime(2026, 1, 1, tzinfo=UTC))])
    big = "x" * 120
    for n in range(40):
        store.put(MerchRule(rule_id=f"r{n:02d}", action="block", item_brand=big[: 100 + n % 20]))
    assert [r.rule_id for r in store.list()] == [f"r{n:02d}" for n in range(40)]
    assert state.recent_items("u1") == ["p1"]
    assert state.delete_user("u1") is True
    assert len(store.list()) == 40
    # a corrupt item is skipped, not fatal
    aws_client("dynamodb").put_item(
        TableName=table, Item={"pk": {"S": RULES_PK}, "sk": {"S": "RULE#bad"}, "body": {"S": "{}"}}
    )
    assert len(store.list()) == 40
    assert store.get("bad") is None


def test_a_missing_table_is_a_backend_error(moto_server: str) -> None:
    store = DynamoDbRuleStore("no-such-table")
    with pytest.raises(BackendUnavailableError):
        store.list()
    with pytest.raises(BackendUnavailableError):
        store.put(block("r1"))
