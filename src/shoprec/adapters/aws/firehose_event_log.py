"""The event log in Amazon Data Firehose, delivered to S3 as date-partitioned JSON Lines.

Appends are ``PutRecordBatch`` calls (one record per event and line); the delivery stream buffers them and
writes objects under ``<prefix>date=YYYY-MM-DD/`` of its bucket (``template.yaml``, ``EventLogStream``).
Firehose acknowledges a record once it holds it durably, so an acknowledged event is in the log; records
it reports failed are sent again once, then the batch fails with ``BackendUnavailableError``.

Erasure (``DELETE /v1/users/{id}``) is a compaction: every object under the stream's prefix is read and,
when it holds the user's records, written again without them, conditionally on its ETag (or deleted when
nothing is left). The bucket and prefix are read from the stream's description. Two limits, documented in
``docs/event-log.md``: the cost is a read of the whole log per deletion, and records still in the stream's
buffer at the deletion (at most its buffering interval) reach S3 after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.event_records import encode_lines, without_user
from shoprec.domain import Event, Exposure
from shoprec.errors import BackendUnavailableError

MAX_BATCH_RECORDS = 500
"""PutRecordBatch takes at most 500 records (and 4 MiB; events are a few hundred bytes each)."""


MAX_REWRITES = 5
"""Attempts to rewrite one object that other erasures keep changing between our read and our write."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FirehoseEventLog:
    """:class:`~shoprec.ports.EventLog` through the delivery stream ``stream``.

    ``bucket`` and ``prefix`` name where the stream delivers (default: read from the stream's description
    on the first erasure); ``firehose`` and ``s3`` are injected clients (default: :func:`aws_client`).
    """

    def __init__(
        self,
        stream: str,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        firehose: Any = None,
        s3: Any = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.stream = stream
        self._destination = (bucket, prefix or "") if bucket is not None else None
        self._firehose = firehose
        self._s3 = s3
        self._clock = clock

    @property
    def firehose(self) -> Any:
        if self._firehose is None:
            self._firehose = aws_client("firehose")
        return self._firehose

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws_client("s3")
        return self._s3

    def append(self, events: Sequence[Event | Exposure]) -> None:
        lines = encode_lines(events, self._clock())
        for start in range(0, len(lines), MAX_BATCH_RECORDS):
            self._put([{"Data": line} for line in lines[start : start + MAX_BATCH_RECORDS]])

    def _put(self, records: list[dict[str, bytes]]) -> None:
        for attempt in (1, 2):
            response = self._call(
                "PutRecordBatch",
                self.firehose.put_record_batch,
                DeliveryStreamName=self.stream,
                Records=records,
            )
            if not response.get("FailedPutCount"):
                return
            # Only the failed records are sent again: the others are logged already.
            results = response["RequestResponses"]
            failed = [r for r, result in zip(records, results, strict=True) if "ErrorCode" in result]
            if attempt == 2 or not failed:
                codes = sorted({str(r.get("ErrorCode")) for r in results if "ErrorCode" in r})
                raise BackendUnavailableError(
                    f"event log {self.describe()}: {len(failed)} record(s) not accepted ({', '.join(codes)})"
                )
            records = failed

    def erase_user(self, user_id: str) -> int:
        bucket, prefix = self._where()
        erased = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        pages = self._call("ListObjectsV2", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix)))
        for page in pages:
            for obj in page.get("Contents", []):
                erased += self._erase_in(bucket, obj["Key"], user_id)
        return erased

    def _erase_in(self, bucket: str, key: str, user_id: str) -> int:
        """Rewrite one object without the user's records. The write is conditional on the object being the
        one read (``If-Match`` its ETag): another erasure that rewrote it meanwhile makes this one read it
        again, instead of writing back the records that one removed. A delete needs no condition: only
        erasures change an object, and they only remove records, so one left empty stays empty."""
        for _ in range(MAX_REWRITES):
            got = self._call("GetObject", self.s3.get_object, Bucket=bucket, Key=key)
            kept, dropped = without_user(got["Body"].read(), user_id)
            if not dropped:
                return 0
            if not kept:
                self._call("DeleteObject", self.s3.delete_object, Bucket=bucket, Key=key)
                return dropped
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=kept, IfMatch=got["ETag"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                    raise BackendUnavailableError(
                        f"event log {self.describe()}: PutObject failed: {exc}"
                    ) from exc
                continue
            except BotoCoreError as exc:
                raise BackendUnavailableError(
                    f"event log {self.describe()}: PutObject failed: {exc}"
                ) from exc
            return dropped
        raise BackendUnavailableError(
            f"event log {self.describe()}: s3://{bucket}/{key} changed under {MAX_REWRITES} rewrites in a row"
        )

    def describe(self) -> str:
        return f"firehose://{self.stream}"

    def _where(self) -> tuple[str, str]:
        """The bucket and the fixed part of the prefix the stream delivers to."""
        if self._destination is None:
            description = self._call(
                "DescribeDeliveryStream",
                self.firehose.describe_delivery_stream,
                DeliveryStreamName=self.stream,
            )["DeliveryStreamDescription"]
            destination = description["Destinations"][0]
            s3 = (
                destination.get("ExtendedS3DestinationDescription") or destination["S3DestinationDescription"]
            )
            bucket = s3["BucketARN"].split(":::", 1)[1]
            # The prefix's expressions (!{timestamp:...}) vary per object: list from the part before them.
            prefix = str(s3.get("Prefix") or "").split("!{", 1)[0]
            self._destination = (bucket, prefix)
        return self._destination

    def _call(self, operation: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailableError(f"event log {self.describe()}: {operation} failed: {exc}") from exc
