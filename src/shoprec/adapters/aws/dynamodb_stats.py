"""Interaction counts in the state table: the serverless implementation of ``InteractionStatsStore``.

Two partitions of their own beside the users' (``USER#``), the rules' and the items'::

    pk = COOC#<item id>   sk = E#<epoch>   n:<neighbour id> = forward-decayed weight, ..., ttl
    pk = TREND#<epoch>    sk = <item id>   w = forward-decayed count, ttl

Every write is an ``UpdateItem`` with ``ADD`` (no read first, no condition, so concurrent ingesters never
conflict): one per neighbour list a batch touches and one per item it counts. A list reaching twice
``max_neighbours`` members is cut back to the heaviest ``max_neighbours`` with one ``REMOVE``, decided
from the item the ``ADD`` returned (``ReturnValues=ALL_NEW`` costs no read capacity). Weights are rounded
to three decimals so stored numbers stay short: with 20 neighbours a list stays under 1 KB, one write
capacity unit per update (``bench/online_updates.py`` measures it).

Reads on the request path use the read client (short timeout, no retries): the neighbour lists of a
request's items in one ``BatchGetItem`` (both live epochs), the trending counts in one ``Query`` per live
epoch. Each epoch's items carry a ``ttl`` past the last read that combines them, so DynamoDB deletes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import dynamodb_clients
from shoprec.adapters.aws.dynamodb_state import DEFAULT_READ_TIMEOUT_S, TTL_ATTRIBUTE
from shoprec.adapters.interaction_stats import (
    DEFAULT_MAX_NEIGHBOURS,
    Decay,
    check_weights,
    needs_pruning,
    top,
    weakest,
)
from shoprec.errors import BackendUnavailableError

COOC_PK_PREFIX: Final = "COOC#"
TREND_PK_PREFIX: Final = "TREND#"
NEIGHBOUR_PREFIX: Final = "n:"
WEIGHT_ATTRIBUTE: Final = "w"
MAX_BATCH_GET_KEYS: Final = 100
"""DynamoDB's limit on keys in one ``BatchGetItem`` call."""
_DIGITS: Final = 3

_T = TypeVar("_T")


class DynamoDbInteractionStats:
    """Neighbour lists and trending counts in the DynamoDB table ``table_name`` (see the module docstring).

    ``client`` writes (default: the patient client of :func:`dynamodb_clients`); ``read_client`` serves
    the reads, which serving makes on the request path (default: ``read_timeout_s``, no retries).
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        read_client: Any = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        decay: Decay | None = None,
        max_neighbours: int = DEFAULT_MAX_NEIGHBOURS,
    ) -> None:
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        self.table_name = table_name
        self._client, self._read_client = dynamodb_clients(client, read_client, read_timeout_s)
        self.decay = decay or Decay()
        self.max_neighbours = max_neighbours

    def record(
        self, pairs: Mapping[str, Mapping[str, float]], items: Mapping[str, float], *, at: float
    ) -> None:
        check_weights(pairs, items)
        epoch = self.decay.epoch(at)
        ttl = {":ttl": {"N": str(self._ttl(epoch))}}
        for item, row in pairs.items():
            if not row:
                continue
            names = {"#ttl": TTL_ATTRIBUTE}
            values: dict[str, Any] = dict(ttl)
            adds = []
            for i, (other, w) in enumerate(row.items()):
                names[f"#n{i}"] = NEIGHBOUR_PREFIX + other
                values[f":v{i}"] = {"N": _number(self.decay.stored(w, at))}
                adds.append(f"#n{i} :v{i}")
            resp = self._call(
                "UpdateItem",
                self._client.update_item,
                TableName=self.table_name,
                Key=_list_key(item, epoch),
                UpdateExpression=f"ADD {', '.join(adds)} SET #ttl = :ttl",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            weights = _neighbours(resp.get("Attributes", {}))
            if needs_pruning(len(weights), self.max_neighbours):
                self._cut(item, epoch, weakest(weights, self.max_neighbours))
        for item, w in items.items():
            self._call(
                "UpdateItem",
                self._client.update_item,
                TableName=self.table_name,
                Key={"pk": {"S": f"{TREND_PK_PREFIX}{epoch}"}, "sk": {"S": item}},
                UpdateExpression="ADD #w :w SET #ttl = :ttl",
                ExpressionAttributeNames={"#w": WEIGHT_ATTRIBUTE, "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":w": {"N": _number(self.decay.stored(w, at))}, **ttl},
            )

    def neighbours(self, item_ids: Sequence[str], *, at: float) -> dict[str, dict[str, float]]:
        wanted = list(dict.fromkeys(item_ids))
        keys = [_list_key(item, epoch) for item in wanted for epoch in self.decay.live_epochs(at)]
        by_item: dict[str, dict[int, dict[str, float]]] = {}
        for chunk in _chunks(keys, MAX_BATCH_GET_KEYS):
            for row in self._batch_get(chunk):
                item = row["pk"]["S"].removeprefix(COOC_PK_PREFIX)
                epoch = int(row["sk"]["S"].removeprefix("E#"))
                by_item.setdefault(item, {})[epoch] = _neighbours(row)
        out = {}
        for item, by_epoch in by_item.items():
            combined = self.decay.combine(by_epoch, at)
            if combined:
                out[item] = top(combined, self.max_neighbours)
        return out

    def trending(self, *, at: float) -> dict[str, float]:
        by_epoch: dict[int, dict[str, float]] = {}
        for epoch in self.decay.live_epochs(at):
            query: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": f"{TREND_PK_PREFIX}{epoch}"}},
                "ProjectionExpression": "sk, #w",
                "ExpressionAttributeNames": {"#w": WEIGHT_ATTRIBUTE},
            }
            counts = by_epoch.setdefault(epoch, {})
            while True:
                page = self._call("Query", self._read_client.query, **query)
                for row in page.get("Items", []):
                    counts[row["sk"]["S"]] = float(row[WEIGHT_ATTRIBUTE]["N"])
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return self.decay.combine(by_epoch, at)

    def describe(self) -> str:
        return f"dynamodb://{self.table_name}#cooccurrence"

    # --- internals ------------------------------------------------------------------------------------

    def _ttl(self, epoch: int) -> int:
        # The last read combining ``epoch`` is made before the end of the next one.
        return math.ceil((epoch + 2) * self.decay.epoch_s)

    def _cut(self, item: str, epoch: int, members: list[str]) -> None:
        names = {f"#r{i}": NEIGHBOUR_PREFIX + m for i, m in enumerate(members)}
        self._call(
            "UpdateItem",
            self._client.update_item,
            TableName=self.table_name,
            Key=_list_key(item, epoch),
            UpdateExpression="REMOVE " + ", ".join(names),
            ExpressionAttributeNames=names,
        )

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of ``keys``; keys DynamoDB leaves unprocessed are asked once more, then given up (a
        request is served from the bundle's counts rather than kept waiting)."""
        rows: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table_name: {"Keys": keys}}
        for _ in range(2):
            resp = self._call("BatchGetItem", self._read_client.batch_get_item, RequestItems=request)
            rows.extend(resp.get("Responses", {}).get(self.table_name, []))
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                break
        return rows

    def _call(self, operation: str, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: {operation} failed: {exc}") from exc


def _list_key(item: str, epoch: int) -> dict[str, Any]:
    return {"pk": {"S": COOC_PK_PREFIX + item}, "sk": {"S": f"E#{epoch}"}}


def _neighbours(attributes: Mapping[str, Any]) -> dict[str, float]:
    return {
        name.removeprefix(NEIGHBOUR_PREFIX): float(value["N"])
        for name, value in attributes.items()
        if name.startswith(NEIGHBOUR_PREFIX)
    }


def _number(value: float) -> str:
    # Never 0 after rounding: an ADD of 0 would create a member that carries no weight.
    return repr(max(round(value, _DIGITS), 10.0**-_DIGITS))


def _chunks(seq: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(seq), size):
        yield list(seq[start : start + size])
