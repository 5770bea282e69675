"""The live catalogue's overlay in the state table: the serverless implementation of ``ItemStore``.

One partition, apart from the users' (``USER#<id>``) and the merchandising rules' (``MERCH#RULES``)::

    pk = CATALOG#ITEMS  sk = ITEM#<item id>  body (the item as JSON, CatalogItem.to_row), updated_at
    pk = CATALOG#ITEMS  sk = VERSION         n (writes that changed an item), epoch (random, first write)

A write reads the stored item (consistent ``GetItem``) and, when the content differs, puts the new one
together with ``ADD n 1`` on the version item in one ``TransactWriteItems``: the put is conditioned on
the item still being what was read (or still absent), so two writers of one item cannot lose each
other's write, and the version changes exactly when an item did. A write that changes nothing costs the
read only. :meth:`DynamoDbItemStore.version` is one consistent ``GetItem`` of the small version item, on
the read client (short timeout, no retries); :meth:`DynamoDbItemStore.list` one consistent, paginated
``Query`` of the partition. Items carry no ``ttl``: a tombstone must outlive the bundle that knows the item.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import dynamodb_clients
from shoprec.adapters.item_rows import decode, encode
from shoprec.errors import BackendUnavailableError
from shoprec.items import CatalogItem

ITEMS_PK = "CATALOG#ITEMS"
ITEM_SK_PREFIX = "ITEM#"
VERSION_SK = "VERSION"
DEFAULT_READ_TIMEOUT_S = 0.2
"""Connect and read timeout, one attempt, of :meth:`DynamoDbItemStore.version` (the check a serving
process makes before it lists the items again; a failure keeps the items last read)."""
MAX_ATTEMPTS = 6
"""Attempts of a write whose item another writer changed meanwhile, before the store reports itself
unavailable."""

# Cancellation reasons worth another attempt: the item changed since it was read, another transaction
# touched the same items, or throttling.
_RETRYABLE_REASONS = frozenset(
    {"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)

_T = TypeVar("_T")


class DynamoDbItemStore:
    """Overlay items in ``table_name`` (the state table; see the module docstring). ``client`` (writes,
    ``get``, ``list``) defaults to the patient :func:`aws_client` (3 s, 3 attempts): a listing is a bulk
    read whose result is kept, and failing a write fails its request. ``read_client`` (:meth:`version`)
    defaults to one with ``read_timeout_s`` and no retries."""

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        read_client: Any = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client, self._read_client = dynamodb_clients(client, read_client, read_timeout_s)
        self._clock = clock

    def put(self, item: CatalogItem) -> bool:
        new = dataclasses.replace(item, delisted=False)

        def replacement(old: CatalogItem | None) -> CatalogItem | None:
            return new if old is None or old.content() != new.content() else None

        return self._write(item.item_id, replacement)

    def delist(self, item_id: str) -> bool:
        def tombstone(old: CatalogItem | None) -> CatalogItem | None:
            if old is not None and old.delisted:
                return None
            return dataclasses.replace(old or CatalogItem(item_id), delisted=True)

        return self._write(item_id, tombstone, report_change=True)

    def get(self, item_id: str) -> CatalogItem | None:
        row = self._read_row(item_id)
        return _decode_row(item_id, row) if row is not None else None

    def list(self) -> list[CatalogItem]:
        items: list[CatalogItem] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": ITEMS_PK}, ":prefix": {"S": ITEM_SK_PREFIX}},
                "ProjectionExpression": "sk, body",
                "ConsistentRead": True,
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            resp = self._call("Query", self._client.query, **kwargs)
            for row in resp.get("Items", []):
                item = _decode_row(row["sk"]["S"].removeprefix(ITEM_SK_PREFIX), row)
                if item is not None:
                    items.append(item)
            start = resp.get("LastEvaluatedKey")
            if not start:
                return sorted(items, key=lambda i: i.item_id)

    def version(self) -> str:
        resp = self._call(
            "GetItem",
            self._read_client.get_item,
            TableName=self.table_name,
            Key=_key(VERSION_SK),
            ConsistentRead=True,
            ProjectionExpression="#n, #epoch",
            ExpressionAttributeNames={"#n": "n", "#epoch": "epoch"},
        )
        row = resp.get("Item")
        if not row:
            return "0"
        return f"{row.get('epoch', {}).get('S', '')}.{row.get('n', {}).get('N', '0')}"

    def describe(self) -> str:
        return f"dynamodb://{self.table_name}#{ITEMS_PK}"

    def _write(
        self,
        item_id: str,
        change: Callable[[CatalogItem | None], CatalogItem | None],
        *,
        report_change: bool = False,
    ) -> bool:
        """Read the stored item, ask ``change`` for its successor (``None``: nothing to write) and write
        it with the version bump, conditioned on the stored item being unchanged; re-read and retry when
        another writer came first. Returns whether the id was new, or (``report_change``) whether
        anything was written."""
        for attempt in range(MAX_ATTEMPTS):
            row = self._read_row(item_id)
            old = _decode_row(item_id, row) if row is not None else None
            new = change(old)
            if new is None:
                return False
            new = dataclasses.replace(new, updated_at=self._clock())
            try:
                # A fresh token per attempt: botocore's own retries of this call reuse it, so a retry after
                # a lost response is not run twice by DynamoDB.
                self._client.transact_write_items(
                    TransactItems=[self._put(new, row), self._bump()], ClientRequestToken=uuid.uuid4().hex
                )
                return True if report_change else row is None
            except ClientError as exc:
                codes = _cancellation_codes(exc)
                if not codes or not (set(codes) - {"None"}) <= _RETRYABLE_REASONS:
                    raise self._unavailable("TransactWriteItems", exc) from exc
                _backoff(attempt)
            except BotoCoreError as exc:
                raise self._unavailable("TransactWriteItems", exc) from exc
        raise BackendUnavailableError(
            f"{self.describe()}: item {item_id!r} still conflicts after {MAX_ATTEMPTS} attempts"
        )

    def _read_row(self, item_id: str) -> dict[str, Any] | None:
        """The stored row of ``item_id`` (its key and body), or ``None``."""
        resp = self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key=_key(ITEM_SK_PREFIX + item_id),
            ConsistentRead=True,
            ProjectionExpression="pk, body",
        )
        row: dict[str, Any] | None = resp.get("Item")
        return row or None

    def _put(self, item: CatalogItem, old: dict[str, Any] | None) -> dict[str, Any]:
        """A put of ``item`` on condition that its row is still ``old`` (as read; ``None``: absent)."""
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {
                **_key(ITEM_SK_PREFIX + item.item_id),
                "body": {"S": encode(item)},
                "updated_at": {"N": repr(item.updated_at)},
            },
        }
        old_body = old.get("body", {}).get("S") if old is not None else None
        if old is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        elif old_body is None:  # a row without a body was not written by a store; replacing it is fine
            put["ConditionExpression"] = "attribute_exists(pk) AND attribute_not_exists(body)"
        else:
            put["ConditionExpression"] = "body = :old"
            put["ExpressionAttributeValues"] = {":old": {"S": old_body}}
        return {"Put": put}

    def _bump(self) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(VERSION_SK),
                "UpdateExpression": "ADD #n :one SET #epoch = if_not_exists(#epoch, :epoch)",
                "ExpressionAttributeNames": {"#n": "n", "#epoch": "epoch"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":epoch": {"S": uuid.uuid4().hex[:12]}},
            }
        }

    def _call(self, operation: str, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(operation, exc) from exc

    def _unavailable(self, operation: str, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(f"{self.describe()}: {operation} failed: {exc}")


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": ITEMS_PK}, "sk": {"S": sk}}


def _decode_row(item_id: str, row: dict[str, Any]) -> CatalogItem | None:
    return decode(item_id, str(row.get("body", {}).get("S", "")))


def _cancellation_codes(exc: ClientError) -> list[str]:
    """The per-action reasons of a cancelled transaction; ``[]`` for any other error."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    return [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]


def _backoff(attempt: int) -> None:
    # Full jitter, capped: two writers of one item clear within milliseconds.
    time.sleep(random.uniform(0, min(0.2, 0.01 * 2**attempt)))
