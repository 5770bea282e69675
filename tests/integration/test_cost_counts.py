"""The cost model's per-request operations (``shoprec.cost.inputs.OPS``) are what the code does: requests
go through ``create_app`` over the real AWS adapters, against moto (DynamoDB, Firehose) and a private
redis-server, and every DynamoDB and Firehose call, every Redis command (the server's own statistics) and
every Redis round trip is counted. A code change that adds a read, a write or a cache command to a request
fails here until the model counts it too."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from fastapi.testclient import TestClient
from tests.integration.lambda_events import LambdaContext, sqs_event
from tests.unit.api_fakes import write_tiny_bundle
from tests.unit.fakes import FakeRanker

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.dynamodb_items import DynamoDbItemStore
from shoprec.adapters.aws.dynamodb_rules import DynamoDbRuleStore
from shoprec.adapters.aws.dynamodb_state import DynamoDbUserStateStore, create_table
from shoprec.adapters.aws.firehose_event_log import FirehoseEventLog
from shoprec.adapters.aws.idempotency import OncePerMessageBody
from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.cost.inputs import OPS, Ops
from shoprec.settings import Settings

USER = "u-cost"
NOT_PER_REQUEST = frozenset({"config|resetstat", "info", "client|setinfo", "hello", "auth", "select"})
"""The meter's own commands and a new connection's handshake: not what a request costs."""


class CountingRedis(redis.Redis):
    """A redis client that counts round trips: single commands and pipeline executions."""

    round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return execute(*args, **kwargs)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


@dataclass
class Counted:
    """Counts of one request."""

    aws: Counter[str]  # "<service>.<operation>"
    transact_items: int
    log_records: int
    commands: Counter[str]  # Redis commands by name, from the server's commandstats
    round_trips: int


class Meter:
    """Counts what the AWS clients and the Redis server see between :meth:`start` and :meth:`stop`."""

    def __init__(self, redis_client: CountingRedis, admin: redis.Redis) -> None:
        self.redis, self.admin = redis_client, admin
        self.aws: Counter[str] = Counter()
        self.transact_items = self.log_records = 0
        self._id = f"cost-meter-{id(self)}"
        self._hooked: list[tuple[Any, str]] = []

    def client(self, service: str) -> Any:
        client = aws_client(service)
        # The factory hands out one cached client per configuration: count through each one once, and
        # leave it as it was (close) for the session's other tests.
        event = f"before-parameter-build.{client.meta.service_model.service_name}"
        client.meta.events.register(event, self._seen, unique_id=self._id)
        self._hooked.append((client, event))
        return client

    def close(self) -> None:
        for client, event in self._hooked:
            client.meta.events.unregister(event, unique_id=self._id)

    def _seen(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.aws[f"{model.service_model.service_name}.{model.name}"] += 1
        self.transact_items += len(params.get("TransactItems", []))
        self.log_records += len(params.get("Records", []))

    def start(self) -> None:
        self.aws.clear()
        self.transact_items = self.log_records = 0
        self.redis.round_trips = 0
        self.admin.config_resetstat()

    def stop(self) -> Counted:
        stats = self.admin.info("commandstats")
        commands = Counter(
            {
                name.removeprefix("cmdstat_"): int(v["calls"])
                for name, v in stats.items()
                if name.removeprefix("cmdstat_") not in NOT_PER_REQUEST
            }
        )
        return Counted(
            Counter(self.aws), self.transact_items, self.log_records, commands, self.redis.round_trips
        )


@dataclass
class Stack:
    client: TestClient
    meter: Meter
    table: str


def _stack(tmp_path: Path, redis_url: str, *, refresh_s: float) -> Iterator[Stack]:
    bundle_dir = write_tiny_bundle(tmp_path / "bundle")
    admin = redis.Redis.from_url(redis_url)
    admin.flushdb()
    counting = CountingRedis(connection_pool=redis.ConnectionPool.from_url(redis_url))
    meter = Meter(counting, admin)
    table = f"state-{uuid4().hex[:8]}"
    create_table(aws_client("dynamodb"), table)
    ddb = meter.client("dynamodb")
    bucket, stream = f"events-{uuid4().hex[:8]}", f"events-{uuid4().hex[:8]}"
    aws_client("s3").create_bucket(Bucket=bucket)
    aws_client("firehose").create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
        },
    )
    settings = Settings(artifacts=str(bundle_dir), catalog_refresh_s=refresh_s, rules_refresh_s=refresh_s)
    container = build_container(
        settings,
        state=DynamoDbUserStateStore(table, client=ddb, read_client=ddb),
        cache=RedisCache(counting),
        ranker=FakeRanker(),
        rules=DynamoDbRuleStore(table, client=ddb, read_client=ddb),
        items=DynamoDbItemStore(table, client=ddb, read_client=ddb),
        event_log=FirehoseEventLog(stream, firehose=meter.client("firehose")),
    )
    client = TestClient(create_app(container), raise_server_exceptions=True)
    try:
        yield Stack(client, meter, table)
    finally:
        meter.close()
        counting.close()
        admin.close()


@pytest.fixture
def stack(tmp_path: Path, moto_server: str, redis_url: str) -> Iterator[Stack]:
    """The API over DynamoDB, Firehose and Redis, refresh reads pushed an hour apart (counted apart)."""
    yield from _stack(tmp_path, redis_url, refresh_s=3600.0)


def post_event(stack: Stack, event_id: str, item_id: str) -> None:
    body = {"events": [{"event_id": event_id, "user_id": USER, "item_id": item_id, "type": "view"}]}
    assert stack.client.post("/v1/events", json=body).status_code == 200


def measured(stack: Stack, method: str, path: str, **kwargs: Any) -> Counted:
    stack.meter.start()
    response = stack.client.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return stack.meter.stop()


def assert_matches(counted: Counted, ops: Ops) -> None:
    """``counted`` is what ``ops`` says: the model's figures for one request."""
    assert counted.aws["dynamodb.GetItem"] == ops.dynamodb_reads
    assert counted.aws["dynamodb.PutItem"] + counted.aws["dynamodb.UpdateItem"] == ops.dynamodb_writes
    assert counted.aws["dynamodb.TransactWriteItems"] == ops.dynamodb_transactions
    assert counted.transact_items == ops.dynamodb_transact_items
    assert counted.aws["firehose.PutRecordBatch"] == ops.event_log_calls
    assert counted.log_records == ops.event_log_records
    assert sum(counted.aws.values()) == (
        ops.dynamodb_reads + ops.dynamodb_writes + ops.dynamodb_transactions + ops.event_log_calls
    )
    assert sum(counted.commands.values()) == ops.cache_commands + ops.cache_list_transfers
    assert counted.round_trips == ops.cache_round_trips


def test_each_request_kind_costs_what_the_model_counts(stack: Stack) -> None:
    post_event(stack, "e1", "p0")
    post_event(stack, "e2", "p2")
    stack.client.get("/v1/recommendations/warm-up")  # the first request reads the catalogue and the rules

    miss = measured(stack, "GET", f"/v1/recommendations/{USER}")
    assert miss.commands == Counter({"get": 2, "set": 1, "sadd": 1, "pexpire": 2})
    assert_matches(miss, OPS["recommend_miss"])

    hit = measured(stack, "GET", f"/v1/recommendations/{USER}")
    assert hit.commands == Counter({"get": 2})
    assert_matches(hit, OPS["recommend_hit"])

    assert_matches(measured(stack, "GET", "/v1/search", params={"q": "caliper"}), OPS["search"])
    assert_matches(measured(stack, "GET", "/v1/items/p0/similar"), OPS["similar"])

    # The user has a cached list now: the invalidation pops it and deletes it.
    body = {"events": [{"event_id": "e3", "user_id": USER, "item_id": "p1", "type": "view"}]}
    event = measured(stack, "POST", "/v1/events", json=body)
    assert event.commands == Counter({"set": 1, "spop": 2, "del": 1})
    assert_matches(event, OPS["event"])


def test_a_refresh_reads_the_catalogue_version_and_the_rules_once(
    tmp_path: Path, moto_server: str, redis_url: str
) -> None:
    for stack in _stack(tmp_path, redis_url, refresh_s=0.0):
        stack.client.get("/v1/search", params={"q": "caliper"})
        counted = measured(stack, "GET", "/v1/search", params={"q": "caliper"})
        # One GetItem of the item store's version, one Query of the rules: each a "refresh" in the model.
        assert counted.aws == Counter({"dynamodb.GetItem": 1, "dynamodb.Query": 1})
        assert OPS["refresh"] == Ops(dynamodb_reads=1)


def test_the_ingest_guard_writes_twice_per_message(stack: Stack) -> None:
    table = f"idempotency-{uuid4().hex[:8]}"
    admin = aws_client("dynamodb")
    admin.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    guard = OncePerMessageBody(lambda record: {"applied": 1}, table, client=stack.meter.client("dynamodb"))
    guard.register_lambda_context(LambdaContext())  # type: ignore[arg-type]
    body = json.dumps({"event_id": "q1", "user_id": USER, "item_id": "p0", "type": "view"})
    stack.meter.start()
    assert guard(SQSRecord(sqs_event(body)["Records"][0])) == {"applied": 1}
    counted = stack.meter.stop()
    assert counted.aws == Counter({"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1})
    assert_matches(counted, OPS["idempotency"])
