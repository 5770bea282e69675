"""Lambda entry point of SQS-triggered event ingestion, with partial batch failure reporting.

Each SQS message body is JSON: either one ``{"events": [...]}`` object (1..100 events, the body of
``POST /v1/events``) or a single event object ``{"event_id", "user_id", "item_id", "type", "timestamp"?}``.
A message that is not valid JSON, fails validation or names unknown items is reported in
``batchItemFailures`` (SQS redelivers it, then moves it to the dead-letter queue); the other messages of
the batch are applied. Applying is idempotent by ``event_id``, so a redelivered batch changes nothing.
The event source mapping must enable ``ReportBatchItemFailures``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from shoprec.api.schemas import EventIn, EventsRequest
from shoprec.container import LazyContainer
from shoprec.observability import logger, metrics, record_count, tracer

container = LazyContainer()
processor = BatchProcessor(event_type=EventType.SQS)
_message = TypeAdapter(EventsRequest | EventIn)


def record_handler(record: SQSRecord) -> None:
    """Validate one message and apply its events; any exception marks just this message as failed."""
    parsed = _message.validate_json(record.body)
    request = parsed if isinstance(parsed, EventsRequest) else EventsRequest(events=[parsed])
    result = container.get().events.ingest(request.to_domain())
    record_count("EventsApplied", result.applied)
    record_count("EventsDuplicate", result.duplicates)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
