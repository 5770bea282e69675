"""Merchandising rules in the state table: the serverless implementation of ``RuleStore``.

One partition, apart from the users' (``USER#<id>``, see :mod:`shoprec.adapters.aws.dynamodb_state`)::

    pk = MERCH#RULES  sk = RULE#<rule id>   body (the rule as JSON), updated_at

Rules are few (hundreds at most) and read whole: :meth:`DynamoDbRuleStore.list` is one consistent
``Query`` of that partition (paginated), which the rule service runs at most once per refresh interval
per process. Items carry no ``ttl``: an expired rule is inactive, not deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from shoprec.adapters.aws.clients import dynamodb_clients
from shoprec.errors import BackendUnavailableError
from shoprec.merchandising import MerchRule

log = logging.getLogger(__name__)

RULES_PK = "MERCH#RULES"
RULE_SK_PREFIX = "RULE#"
DEFAULT_READ_TIMEOUT_S = 0.2
"""Connect and read timeout, one attempt, of :meth:`DynamoDbRuleStore.list` (run on the request path
when the rule cache refreshes; a failure keeps the rules last read)."""

_T = TypeVar("_T")


class DynamoDbRuleStore:
    """Rules in ``table_name`` (the state table). ``client`` (writes, ``get``, ``delete``) defaults to the
    patient :func:`aws_client` (3 s, 3 attempts); ``read_client`` (``list``) to one with
    ``read_timeout_s`` and no retries."""

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

    def put(self, rule: MerchRule) -> bool:
        resp = self._call(
            "PutItem",
            self._client.put_item,
            TableName=self.table_name,
            Item={
                **_key(rule.rule_id),
                "body": {"S": rule.to_json()},
                "updated_at": {"N": repr(self._clock())},
            },
            ReturnValues="ALL_OLD",
        )
        return not resp.get("Attributes")

    def get(self, rule_id: str) -> MerchRule | None:
        resp = self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key=_key(rule_id),
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return _parse(rule_id, item["body"]["S"]) if item else None

    def list(self) -> list[MerchRule]:
        rules: list[MerchRule] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": RULES_PK}, ":prefix": {"S": RULE_SK_PREFIX}},
                "ProjectionExpression": "sk, body",
                "ConsistentRead": True,
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            resp = self._call("Query", self._read_client.query, **kwargs)
            for item in resp.get("Items", []):
                rule = _parse(item["sk"]["S"].removeprefix(RULE_SK_PREFIX), item["body"]["S"])
                if rule is not None:
                    rules.append(rule)
            start = resp.get("LastEvaluatedKey")
            if not start:
                return sorted(rules, key=lambda r: r.rule_id)

    def delete(self, rule_id: str) -> bool:
        resp = self._call(
            "DeleteItem",
            self._client.delete_item,
            TableName=self.table_name,
            Key=_key(rule_id),
            ReturnValues="ALL_OLD",
        )
        return bool(resp.get("Attributes"))

    def describe(self) -> str:
        return f"dynamodb://{self.table_name}#{RULES_PK}"

    def _call(self, operation: str, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailableError(f"{self.describe()}: {operation} failed: {exc}") from exc


def _key(rule_id: str) -> dict[str, Any]:
    return {"pk": {"S": RULES_PK}, "sk": {"S": RULE_SK_PREFIX + rule_id}}


def _parse(rule_id: str, body: str) -> MerchRule | None:
    try:
        return MerchRule.from_json(body)
    except ValidationError as exc:
        log.warning("skipping stored rule %r that no longer validates: %s", rule_id, exc)
        return None
