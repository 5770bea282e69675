"""User state in DynamoDB: the serverless implementation of ``UserStateStore``.

Single-table design, one partition per user::

    pk = USER#<user id>  sk = STATE            items (item ids, oldest first), version, updated_at, ttl
    pk = USER#<user id>  sk = EVENT#<event id>  item_id, applied_at, ttl

An event is applied together with its idempotency item in one ``TransactWriteItems`` call: the event item
is put with ``attribute_not_exists(pk)`` (a repeated event id cancels the transaction and is reported as a
duplicate) and the state item with an optimistic check on ``version`` (a concurrent writer cancels it and
the batch is re-read and retried), so duplicates are skipped exactly and no writer overwrites another's
items.

Event items carry a ``ttl`` (unix seconds) and DynamoDB's TTL deletes them eventually (typically within a
few days after expiry), which bounds the table; the de-duplication window is therefore at least
``event_ttl_s``. moto never expires items, which the tests do not rely on either way.

``delete_user`` deletes every item of the user's partition (consistent query, then batched deletes).
DynamoDB keeps no readable copy of a deleted item in the table; what outlives it is outside this store:
point-in-time-recovery backups (the deploy stack enables them: up to 35 days), so a restored table must
have the deletions of the audit log applied again (``docs/api.md``, DELETE).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters import plan_events
from shoprec.adapters.aws.clients import dynamodb_clients
from shoprec.domain import MAX_RECENT_ITEMS, Appended, ApplyResult, Event
from shoprec.errors import BackendUnavailableError

STATE_SK = "STATE"
EVENT_SK_PREFIX = "EVENT#"
TTL_ATTRIBUTE = "ttl"

MAX_TRANSACT_ITEMS = 100
"""DynamoDB's limit on actions in one ``TransactWriteItems`` call."""
MAX_BATCH_WRITE_ITEMS = 25
"""DynamoDB's limit on requests in one ``BatchWriteItem`` call (moto does not enforce it; AWS does)."""

DEFAULT_EVENT_TTL_S = 7 * 24 * 3600
DEFAULT_STATE_TTL_S = 180 * 24 * 3600
MAX_ATTEMPTS = 6
DEFAULT_READ_TIMEOUT_S = 0.1
"""Connect and read timeout of :meth:`DynamoDbUserStateStore.recent_items`, the read on the request path."""
"""Attempts per transaction before a persistent conflict is reported as the backend being unavailable."""

# Cancellation reasons worth another attempt: another transaction touched the same items, or throttling.
_RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})

_T = TypeVar("_T")


class DynamoDbUserStateStore:
    """Users' recent items and applied event ids in one DynamoDB table (see the module docstring).

    ``client`` is a boto3 DynamoDB client; the default comes from :func:`aws_client` (3 s, 3 attempts):
    writes and deletions are patient, since failing them fails the caller's request. ``read_client`` serves
    :meth:`recent_items`, the read on the recommendation path, where the user is served as new when it
    fails: by default a client with ``read_timeout_s`` (connect and read, 100 ms) and no retries, so a
    hanging or throttling table costs a request at most about twice that. Each chunk of up to
    99 events of one user is applied atomically (one transaction); a user with more events in one batch
    gets several transactions, each leaving a consistent prefix applied.
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        read_client: Any = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        event_ttl_s: int = DEFAULT_EVENT_TTL_S,
        state_ttl_s: int = DEFAULT_STATE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client, self._read_client = dynamodb_clients(client, read_client, read_timeout_s)
        self._event_ttl_s = event_ttl_s
        self._state_ttl_s = state_ttl_s
        self._clock = clock

    def recent_items(self, user_id: str) -> list[str]:
        items, _ = self._read_state(user_id, self._read_client)
        return items

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        plan = plan_events(events)
        applied = 0
        duplicates = plan.duplicates_in_batch
        changed: dict[str, Appended] = {}
        for user_id, user_events in plan.by_user.items():
            # One action of every transaction is the state item, the rest are event items.
            for chunk in _chunks(user_events, MAX_TRANSACT_ITEMS - 1):
                n_duplicates, appended = self._apply_user_chunk(user_id, chunk)
                applied += len(appended.items)
                duplicates += n_duplicates
                if appended.items:
                    earlier = changed.get(user_id, Appended(appended.before, ()))
                    changed[user_id] = Appended(earlier.before, earlier.items + appended.items)
        return ApplyResult(applied=applied, duplicates=duplicates, users=frozenset(changed), appended=changed)

    def delete_user(self, user_id: str) -> bool:
        keys: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _pk(user_id)}},
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        while True:
            page = self._call("Query", self._client.query, **query)
            keys.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for chunk in _chunks(keys, MAX_BATCH_WRITE_ITEMS):
            self._batch_delete(chunk)
        return bool(keys)

    def describe(self) -> str:
        return f"dynamodb://{self.table_name}"

    # --- internals ------------------------------------------------------------------------------------

    def _read_state(self, user_id: str, client: Any = None) -> tuple[list[str], int]:
        resp = self._call(
            "GetItem",
            (client or self._client).get_item,
            TableName=self.table_name,
            Key={"pk": {"S": _pk(user_id)}, "sk": {"S": STATE_SK}},
            ConsistentRead=True,
            ProjectionExpression="#items, #version",
            ExpressionAttributeNames={"#items": "items", "#version": "version"},
        )
        item = resp.get("Item")
        if not item:
            return [], 0
        items = [v["S"] for v in item.get("items", {}).get("L", [])]
        return items, int(item.get("version", {}).get("N", "0"))

    def _apply_user_chunk(self, user_id: str, events: list[Event]) -> tuple[int, Appended]:
        """Apply ``events`` (one user, at most 99, timestamp order); returns the number of duplicates and
        what was appended."""
        pending = list(events)
        duplicates = 0
        attempt = 0
        while pending:
            if attempt == MAX_ATTEMPTS:
                raise BackendUnavailableError(
                    f"{self.describe()}: user {user_id!r} still conflicts after {MAX_ATTEMPTS} attempts"
                )
            attempt += 1
            items, version = self._read_state(user_id)
            now = self._clock()
            actions = [self._event_put(user_id, e, now) for e in pending]
            new_items = (items + [e.item_id for e in pending])[-MAX_RECENT_ITEMS:]
            actions.append(self._state_put(user_id, new_items, version, now))
            try:
                # A fresh token per attempt: botocore's own retries of this call reuse it, so a retry after
                # a lost response is not mistaken for a duplicate by DynamoDB.
                self._client.transact_write_items(TransactItems=actions, ClientRequestToken=uuid.uuid4().hex)
                return duplicates, Appended(tuple(items), tuple(e.item_id for e in pending))
            except ClientError as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise self._unavailable("TransactWriteItems", exc) from exc
                codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                unexpected = {c for c in codes if c not in ("None", "ConditionalCheckFailed")}
                if unexpected - _RETRYABLE_REASONS or not codes:
                    raise self._unavailable("TransactWriteItems", exc) from exc
                # A failed condition on an event item means that event id is already stored; whatever
                # else failed was the version check (or a retryable conflict): re-read and try again.
                seen = {i for i, code in enumerate(codes[: len(pending)]) if code == "ConditionalCheckFailed"}
                duplicates += len(seen)
                pending = [e for i, e in enumerate(pending) if i not in seen]
                if unexpected:
                    _backoff(attempt)
            except BotoCoreError as exc:
                raise self._unavailable("TransactWriteItems", exc) from exc
        return duplicates, Appended((), ())

    def _event_put(self, user_id: str, event: Event, now: float) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": {"S": _pk(user_id)},
                    "sk": {"S": EVENT_SK_PREFIX + event.event_id},
                    "item_id": {"S": event.item_id},
                    "applied_at": {"S": _iso(now)},
                    TTL_ATTRIBUTE: {"N": str(int(now) + self._event_ttl_s)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _state_put(self, user_id: str, items: list[str], version: int, now: float) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {
                "pk": {"S": _pk(user_id)},
                "sk": {"S": STATE_SK},
                "items": {"L": [{"S": i} for i in items]},
                "version": {"N": str(version + 1)},
                "updated_at": {"S": _iso(now)},
                TTL_ATTRIBUTE: {"N": str(int(now) + self._state_ttl_s)},
            },
        }
        if version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#version = :version"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":version": {"N": str(version)}}
        return {"Put": put}

    def _batch_delete(self, keys: list[dict[str, Any]]) -> None:
        requests: list[dict[str, Any]] = [{"DeleteRequest": {"Key": k}} for k in keys]
        for attempt in range(MAX_ATTEMPTS):
            resp = self._call(
                "BatchWriteItem", self._client.batch_write_item, RequestItems={self.table_name: requests}
            )
            requests = resp.get("UnprocessedItems", {}).get(self.table_name, [])
            if not requests:
                return
            _backoff(attempt)
        raise BackendUnavailableError(f"{self.describe()}: {len(requests)} deletes left unprocessed")

    def _call(self, operation: str, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(operation, exc) from exc

    def _unavailable(self, operation: str, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(f"{self.describe()}: {operation} failed: {exc}")


def create_table(client: Any, name: str, *, wait_s: float = 60.0) -> None:
    """Create the state table (on-demand billing, string ``pk``/``sk``, TTL on ``ttl``); idempotent."""
    try:
        _create_table(client, name, wait_s)
    except (ClientError, BotoCoreError) as exc:
        raise BackendUnavailableError(f"dynamodb://{name}: cannot create the table: {exc}") from exc


def _create_table(client: Any, name: str, wait_s: float) -> None:
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":  # already there: just make sure TTL is on
            raise
    deadline = time.monotonic() + wait_s
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise BackendUnavailableError(f"dynamodb://{name}: table not ACTIVE after {wait_s:.0f} s")
        time.sleep(1.0)
    ttl = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )


def _pk(user_id: str) -> str:
    return f"USER#{user_id}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _chunks(seq: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(seq), size):
        yield list(seq[start : start + size])


def _backoff(attempt: int) -> None:
    # Full jitter, capped: contention on one user's partition clears within milliseconds.
    time.sleep(random.uniform(0, min(0.2, 0.01 * 2**attempt)))
