"""Lambda entry point of SQS-triggered event ingestion, with partial batch failure reporting.

Each SQS message body is JSON: one ``{"events": [...]}`` object (1..100 events, the body of
``POST /v1/events``), a single event object ``{"event_id", "user_id", "item_id", "type", "timestamp"?}``,
or a write of the live catalogue: ``{"put_item": {"item_id", "title", ...}}`` (the body of
``PUT /v1/items/{item_id}`` with the id) or ``{"delist_item": "<item id>"}`` (``DELETE``).
A message that cannot be applied -- no body or a body that is not a JSON string, a body over
``SHOPREC_MAX_BODY_BYTES`` (256 KiB, as for the API), invalid JSON, nesting past the parser's limit, a field
that fails validation or is unknown, unknown items -- is reported in ``batchItemFailures`` (SQS redelivers
it, then moves it to the dead-letter queue) and logged; the other messages of the batch are applied. The
event source mapping must enable ``ReportBatchItemFailures``.

The invocation itself never fails because of its messages, not even when every one of them failed:
``batchItemFailures`` then lists them all, which SQS treats exactly like a failed invocation (it retries
each), while the function's ``Errors`` metric (``IngestErrorsAlarm``) keeps meaning "the function is
broken", not "a producer sent a bad message". A record without a ``messageId`` cannot be named in
``batchItemFailures``; SQS always sets one, so such a record is not an SQS delivery: it is logged and
dropped unapplied (``MessagesDropped``) instead of failing, and so endlessly redelivering, the whole batch.

Duplicates are caught twice:

* With ``SHOPREC_IDEMPOTENCY_TABLE`` (the deploy stack sets it), each message **body** is applied at most
  once per ``SHOPREC_IDEMPOTENCY_EXPIRY_S`` (default one hour; SQS's redelivery window is about 16 minutes)
  through Powertools idempotency on that DynamoDB table (:mod:`shoprec.adapters.aws.idempotency`): a
  redelivered message, or the same body sent again under a new ``messageId``, does not reach the events
  service and counts as ``MessagesDuplicate``. A message that fails is not remembered and fails again on
  redelivery. If the table cannot be reached the message fails and SQS retries it; it is never applied
  without the guard.
* Always, applying is idempotent by ``event_id`` in the state store, so a redelivered batch changes
  nothing even without the table (local runs, tests) or after a body's idempotency record expired.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from shoprec.api.item_schemas import ItemMessage
from shoprec.api.schemas import EventIn, EventsRequest
from shoprec.container import LazyIngestContainer
from shoprec.errors import InvalidInputError, NotFoundError
from shoprec.observability import logger, metrics, record_count, route_package_logs, tracer
from shoprec.settings import get_settings

if TYPE_CHECKING:
    from shoprec.adapters.aws.idempotency import OncePerMessageBody

route_package_logs()
container = LazyIngestContainer()  # the ingest graph: no ranker, pipeline or search index
# Each failed record is logged with its exception; a batch in which every record failed is reported, not
# raised (see the module docstring).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=logger)
_message = TypeAdapter(EventsRequest | EventIn | ItemMessage)


def apply_message(record: SQSRecord) -> dict[str, int]:
    """Validate one message and apply its events; raises on a message that cannot be applied."""
    body = record.raw_event.get("body")
    if not isinstance(body, str):
        raise InvalidInputError(
            f"message body must be a JSON string, got {type(body).__name__}", field="body"
        )
    limit = get_settings().max_body_bytes
    if len(body) > limit or len(body.encode()) > limit:  # the character count is the cheap first check
        raise InvalidInputError(f"message body exceeds {limit} bytes", field="body")
    parsed = _message.validate_json(body)
    if isinstance(parsed, ItemMessage):
        return apply_item_message(parsed)
    request = parsed if isinstance(parsed, EventsRequest) else EventsRequest(events=[parsed])
    result = container.get().events.ingest(request.to_domain())
    record_count("EventsApplied", result.applied)
    record_count("EventsDuplicate", result.duplicates)
    return {"applied": result.applied, "duplicates": result.duplicates}


def apply_item_message(message: ItemMessage) -> dict[str, int]:
    """Put or delist one item of the live catalogue (what ``PUT`` / ``DELETE /v1/items/{item_id}`` do)."""
    live = container.get().live
    if message.put_item is not None:
        created = live.upsert(message.put_item.item())
        record_count("ItemsPut")
        return {"items_put": 1, "created": int(created)}
    item_id = message.delist_item
    assert item_id is not None  # ItemMessage holds exactly one of the two
    if live.catalog.index(item_id) is None:
        raise NotFoundError(f"unknown item id {item_id!r}", field="delist_item")
    live.delist(item_id)
    record_count("ItemsDelisted")
    return {"items_delisted": 1}


@cache
def message_guard() -> OncePerMessageBody | None:
    """The idempotency guard of the settings, built on first use and kept while warm; ``None`` without a
    table (boto3 is then never imported)."""
    settings = get_settings()
    if settings.idempotency_table is None:
        return None
    from shoprec.adapters.aws.idempotency import OncePerMessageBody

    return OncePerMessageBody(
        apply_message,
        settings.idempotency_table,
        expiry_s=settings.idempotency_expiry_s,
        on_replay=lambda: record_count("MessagesDuplicate"),
    )


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """Any exception marks just this message as failed."""
    guard = message_guard()
    if guard is None:
        apply_message(record)
        return
    guard.register_lambda_context(lambda_context)
    guard(record)


def reportable(records: list[Any]) -> list[Any]:
    """The records that ``batchItemFailures`` could name (a non-empty string ``messageId``); the others are
    logged and counted as ``MessagesDropped``."""
    kept = [
        r for r in records if isinstance(r, dict) and isinstance(r.get("messageId"), str) and r["messageId"]
    ]
    if len(kept) < len(records):
        dropped = len(records) - len(kept)
        logger.error(
            "dropped SQS records without a messageId: they cannot be reported for redelivery",
            extra={"dropped": dropped},
        )
        record_count("MessagesDropped", dropped)
    return kept


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = event.get("Records")
    if isinstance(records, list) and records:  # anything else is not an SQS batch: Powertools refuses it
        kept = reportable(records)
        if not kept:
            return {"batchItemFailures": []}
        event = {**event, "Records": kept}
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
