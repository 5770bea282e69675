"""At-most-once processing of SQS message bodies: Powertools idempotency on a DynamoDB table.

The idempotency key is a hash of the message **body** only (``event_key_jmespath="body"``): the same body
delivered twice (an SQS redelivery, or a producer's retried ``SendMessage`` under a new ``messageId``) is
applied once. The rest of a record (``messageId``, ``receiptHandle``, ``attributes``) changes from one
receive to the next and is not part of the key.

The table has the shape Powertools' ``DynamoDBPersistenceLayer`` expects by default (hash key ``id`` (S),
TTL attribute ``expiration``). For each body Powertools writes an ``INPROGRESS`` record (conditional put),
runs the function, then marks the record ``COMPLETED`` for ``expiry_s`` seconds with the function's result:

* a body whose record is ``COMPLETED`` is not applied again; the stored result is returned instead;
* a body being processed elsewhere right now (``INPROGRESS``, within the registered Lambda invocation's
  remaining time) raises ``IdempotencyAlreadyInProgressError``, so the message fails and SQS retries it;
* a function that raises leaves no record (Powertools deletes the ``INPROGRESS`` one), so the message
  fails again on every redelivery and ends in the dead-letter queue instead of being remembered as done;
* when the table cannot be read or written, the message fails with ``BackendUnavailableError`` and is
  retried by SQS: nothing is applied without the guard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shoprec.adapters.aws.clients import aws_client
from shoprec.errors import BackendUnavailableError

DEFAULT_EXPIRY_S = 3_600
DYNAMODB_TIMEOUT_S = 2.0
"""Read timeout of the table's client: each message makes two or three calls to it within the function's
30 s, so a slow table fails messages (retried by SQS) early rather than waiting out the invocation."""
KEY_PREFIX = "shoprec.ingest.message"
"""Fixed prefix of every key (``<prefix>#<sha256 of the body>``): independent of the Lambda function's and the
Python function's names, so a rename or a refactor does not forget the bodies already applied."""


def persistence_layer(table_name: str, client: Any = None) -> DynamoDBPersistenceLayer:
    """Powertools' DynamoDB persistence on ``table_name``; the default client is the project's (timeouts,
    retries, ``AWS_ENDPOINT_URL``)."""
    if client is None:
        client = aws_client("dynamodb", timeout_s=DYNAMODB_TIMEOUT_S)
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)


def message_body_config(
    expiry_s: int = DEFAULT_EXPIRY_S, *, on_replay: Callable[[], None] | None = None
) -> IdempotencyConfig:
    """Key: the SQS record's body (required: a record without one fails); ``on_replay`` is called whenever a
    stored result is returned instead of running the function."""

    def replayed(response: Any, idempotent_data: DataRecord) -> Any:
        if on_replay is not None:
            on_replay()
        return response

    return IdempotencyConfig(
        event_key_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expiry_s,
        hash_function="sha256",
        response_hook=replayed,
    )


class OncePerMessageBody:
    """Calls ``apply(record)`` at most once per distinct message body within ``expiry_s`` (module docstring).

    ``apply`` returns a JSON-serialisable dict (or ``None``), stored in the ``COMPLETED`` record and returned
    again for a repeated body. Build one per execution environment and call :meth:`register_lambda_context`
    on every invocation, so an ``INPROGRESS`` record left by a timed-out invocation expires with it.
    ``client`` is a boto3 DynamoDB client; the default comes from :func:`aws_client`.
    """

    def __init__(
        self,
        apply: Callable[[SQSRecord], dict[str, Any] | None],
        table_name: str,
        *,
        expiry_s: int = DEFAULT_EXPIRY_S,
        on_replay: Callable[[], None] | None = None,
        client: Any = None,
    ) -> None:
        self.table_name = table_name
        self.config = message_body_config(expiry_s, on_replay=on_replay)
        self.persistence = persistence_layer(table_name, client)

        def apply_once(record: SQSRecord) -> dict[str, Any] | None:
            return apply(record)

        self._guarded: Callable[..., dict[str, Any] | None] = idempotent_function(
            apply_once,
            data_keyword_argument="record",
            persistence_store=self.persistence,
            config=self.config,
            key_prefix=KEY_PREFIX,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        self.config.register_lambda_context(context)

    def __call__(self, record: SQSRecord) -> dict[str, Any] | None:
        """``apply(record)``'s result, or the stored one for a body already applied. Exceptions of ``apply``
        propagate unchanged; failures of the table raise ``BackendUnavailableError``."""
        try:
            return self._guarded(record=record)
        except IdempotencyPersistenceLayerError as exc:
            raise BackendUnavailableError(f"idempotency table {self.table_name}: {exc}") from exc
