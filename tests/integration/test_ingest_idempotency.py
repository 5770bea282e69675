"""The ingest handler with its idempotency table (``SHOPREC_IDEMPOTENCY_TABLE``) on a moto server over HTTP:
each SQS message body is applied once, failures are never remembered, and without the setting nothing
touches DynamoDB.

The table is created here with the deploy stack's key schema (hash key ``id`` (S), TTL ``expiration``).
What reached the events service is read from the EMF metrics the handler prints: every applied message
records ``EventsApplied`` and ``EventsDuplicate`` (zero included), every message answered from the table
records ``MessagesDuplicate``.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError
from tests.integration.lambda_events import LambdaContext, load_handler, popular, sqs_event

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.idempotency import KEY_PREFIX, OncePerMessageBody
from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.artifacts import Bundle
from shoprec.settings import Settings, get_settings

EXPIRY_S = 900


def create_idempotency_table(name: str) -> None:
    """The stack's ``IdempotencyTable``: what Powertools' ``DynamoDBPersistenceLayer`` expects by default."""
    client = aws_client("dynamodb")
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": "expiration", "Enabled": True}
    )


def records_of(table: str) -> list[dict[str, Any]]:
    """Every item of the idempotency table, attribute values unwrapped."""
    items = aws_client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum per metric name of the EMF documents printed since the last call."""
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            values = doc[metric["Name"]]
            total = sum(values) if isinstance(values, list) else values
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + total
    return totals


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def event_body(event_id: str, user: str, item: str, kind: str = "view") -> str:
    return json.dumps({"event_id": event_id, "user_id": user, "item_id": item, "type": kind})


@pytest.fixture
def table(moto_server: str, function_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An idempotency table on the moto server, named in the function's settings."""
    name = f"shoprec-test-IdempotencyTable-{uuid.uuid4().hex[:8]}"
    create_idempotency_table(name)
    monkeypatch.setenv("SHOPREC_IDEMPOTENCY_TABLE", name)
    monkeypatch.setenv("SHOPREC_IDEMPOTENCY_EXPIRY_S", str(EXPIRY_S))
    get_settings.cache_clear()
    return name


def test_a_redelivered_batch_is_answered_from_the_table_without_reaching_the_events_service(
    table: str, function_env: Path, bundle: Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest = load_handler("ingest")
    a, b, c = popular(bundle, 3)
    batch = sqs_event(
        json.dumps(
            {
                "events": [
                    {"event_id": "r-1", "user_id": "buyer", "item_id": a, "type": "view"},
                    {"event_id": "r-2", "user_id": "buyer", "item_id": b, "type": "cart"},
                ]
            }
        ),
        event_body("r-3", "buyer", c, "purchase"),
    )
    store = SqliteUserStateStore(function_env)
    before_ms = time.time() * 1000

    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert store.recent_items("buyer") == [a, b, c]
    first = emitted(capsys)
    assert first["EventsApplied"] == 3
    assert first["EventsDuplicate"] == 0
    assert "MessagesDuplicate" not in first

    records = records_of(table)
    assert len(records) == 2
    for record in records:
        assert record["status"] == "COMPLETED"
        assert record["id"].startswith(f"{KEY_PREFIX}#")
        assert before_ms / 1000 + EXPIRY_S - 5 <= int(record["expiration"]) <= time.time() + EXPIRY_S
        # The Lambda context was registered: a crashed invocation's record expires with the invocation.
        in_progress_until = int(record["in_progress_expiration"])
        assert before_ms + 29_000 <= in_progress_until <= time.time() * 1000 + 30_000
    assert sorted(json.loads(r["data"])["applied"] for r in records) == [1, 2]

    # SQS redelivers the batch to the same (warm) environment, then to a new one: the bodies are known.
    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert load_handler("ingest").handler(batch, LambdaContext()) == {"batchItemFailures": []}
    again = emitted(capsys)
    assert again["MessagesDuplicate"] == 4
    assert "EventsApplied" not in again
    assert "EventsDuplicate" not in again
    assert store.recent_items("buyer") == [a, b, c]
    assert len(records_of(table)) == 2


def test_a_failing_message_is_not_remembered_and_fails_again_on_redelivery(
    table: str, function_env: Path, bundle: Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest = load_handler("ingest")
    a, b = popular(bundle, 2)
    batch = sqs_event(
        event_body("p-1", "shopper", a),
        '{"events": [{"event_id": "p-2", "user_id": "shopper", "item_id": ',  # truncated JSON
        event_body("p-3", "shopper", "no-such-item"),
    )
    poison = {batch["Records"][1]["messageId"], batch["Records"][2]["messageId"]}

    assert failed_ids(ingest.handler(batch, LambdaContext())) == poison
    assert failed_ids(ingest.handler(batch, LambdaContext())) == poison
    metrics = emitted(capsys)
    # The good message ran once; the unknown-items one reached the events service both times.
    assert metrics["MessagesDuplicate"] == 1
    assert SqliteUserStateStore(function_env).recent_items("shopper") == [a]
    records = records_of(table)
    assert [r["status"] for r in records] == ["COMPLETED"]  # no record, not even INPROGRESS, of a poison

    # Once the catalogue problem is fixed upstream a corrected body is a new key and is applied.
    fixed = sqs_event(event_body("p-3", "shopper", b))
    assert ingest.handler(fixed, LambdaContext()) == {"batchItemFailures": []}
    assert SqliteUserStateStore(function_env).recent_items("shopper") == [a, b]


def test_the_same_body_under_two_message_ids_in_one_batch_is_applied_once(
    table: str, function_env: Path, bundle: Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest = load_handler("ingest")
    (a,) = popular(bundle, 1)
    body = event_body("twice-1", "retrier", a, "click")
    batch = sqs_event(body, body)  # a producer retried SendMessage: a new messageId, the same body
    assert batch["Records"][0]["messageId"] != batch["Records"][1]["messageId"]

    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    metrics = emitted(capsys)
    assert metrics["EventsApplied"] == 1
    assert metrics["EventsDuplicate"] == 0  # the second copy never reached the state store's event ids
    assert metrics["MessagesDuplicate"] == 1
    assert SqliteUserStateStore(function_env).recent_items("retrier") == [a]
    assert len(records_of(table)) == 1


def test_a_body_in_progress_in_another_environment_fails_there_and_is_then_answered_from_the_table(
    table: str, function_env: Path, bundle: Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    (a,) = popular(bundle, 1)
    body = event_body("race-1", "racer", a)
    bystander = event_body("race-2", "bystander", a)
    holder, other = load_handler("ingest"), load_handler("ingest")
    seen_by_other: list[dict[str, Any]] = []

    # While one environment holds the body INPROGRESS, another one receives the same body.
    def apply_while_other_receives(record: SQSRecord) -> dict[str, int]:
        seen_by_other.append(other.handler(sqs_event(record.body, bystander), LambdaContext()))
        applied: dict[str, int] = holder.apply_message(record)
        return applied

    guard = OncePerMessageBody(apply_while_other_receives, table, expiry_s=EXPIRY_S)
    guard.register_lambda_context(LambdaContext())  # type: ignore[arg-type]
    assert guard(SQSRecord(sqs_event(body)["Records"][0])) == {"applied": 1, "duplicates": 0}

    # The other environment failed that message alone (SQS retries it later) and applied the rest.
    assert failed_ids(seen_by_other[0]) == {sqs_event(body)["Records"][0]["messageId"]}
    assert SqliteUserStateStore(function_env).recent_items("bystander") == [a]
    # SQS makes the failed message visible again later: the body is now COMPLETED and not applied again.
    assert other.handler(sqs_event(body), LambdaContext()) == {"batchItemFailures": []}
    metrics = emitted(capsys)
    assert metrics["EventsApplied"] == 2  # the bystander's and the holder's: each applied once
    assert metrics["EventsDuplicate"] == 0
    assert metrics["MessagesDuplicate"] == 1
    assert SqliteUserStateStore(function_env).recent_items("racer") == [a]


@pytest.mark.parametrize("where", ["missing table", "unreachable endpoint"])
def test_without_a_working_table_every_message_fails_and_nothing_is_applied(
    where: str,
    table: str,
    function_env: Path,
    bundle: Bundle,
    nowhere: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if where == "missing table":
        monkeypatch.setenv("SHOPREC_IDEMPOTENCY_TABLE", f"{table}-deleted")
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    get_settings.cache_clear()
    ingest = load_handler("ingest")
    a, b = popular(bundle, 2)
    batch = sqs_event(event_body("u-1", "unguarded", a), event_body("u-2", "unguarded", b))

    # Every message is reported failed, so SQS retries each; the invocation itself does not fail.
    response = ingest.handler(batch, LambdaContext())

    assert failed_ids(response) == {record["messageId"] for record in batch["Records"]}
    errors = [exc_info[1] for exc_info in ingest.processor.exceptions]
    assert [type(e).__name__ for e in errors] == ["BackendUnavailableError"] * 2
    assert all(str(e).startswith(f"idempotency table {table}") for e in errors)
    assert SqliteUserStateStore(function_env).recent_items("unguarded") == []
    assert "EventsApplied" not in emitted(capsys)


def test_without_the_setting_nothing_touches_dynamodb_and_event_ids_alone_catch_duplicates(
    function_env: Path,
    bundle: Bundle,
    nowhere: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Any AWS call would now fail (connection refused) and fail its message.
    monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    ingest = load_handler("ingest")
    (a,) = popular(bundle, 1)
    body = event_body("local-1", "local", a)
    batch = sqs_event(body, body)

    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": []}
    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": []}

    assert ingest.message_guard() is None
    metrics = emitted(capsys)
    assert metrics["EventsApplied"] == 1
    assert metrics["EventsDuplicate"] == 3  # every copy reached the events service
    assert "MessagesDuplicate" not in metrics
    assert SqliteUserStateStore(function_env).recent_items("local") == [a]


@pytest.mark.parametrize(
    "name",
    ["ab", "x" * 256, "shoprec prod", "shoprec/idempotency", "tâble"],
)
def test_an_invalid_table_name_fails_the_settings_naming_the_field(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPREC_IDEMPOTENCY_TABLE", name)
    with pytest.raises(ValidationError, match="idempotency_table") as raised:
        Settings()
    assert "DynamoDB table name" in str(raised.value)


def test_valid_table_names_and_expiry_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "shoprec-prod-IdempotencyTable-1A2B3C4D5E6F.v2_x"
    monkeypatch.setenv("SHOPREC_IDEMPOTENCY_TABLE", f"  {name} ")
    assert Settings().idempotency_table == name
    assert Settings(idempotency_table="abc").idempotency_table == "abc"
    assert Settings(idempotency_table="x" * 255).idempotency_table == "x" * 255
    monkeypatch.setenv("SHOPREC_IDEMPOTENCY_TABLE", " ")
    assert Settings().idempotency_table is None
    monkeypatch.delenv("SHOPREC_IDEMPOTENCY_TABLE")
    assert Settings().idempotency_table is None
    assert Settings().idempotency_expiry_s == 3_600
    with pytest.raises(ValidationError, match="idempotency_expiry_s"):
        Settings(idempotency_expiry_s=10)
