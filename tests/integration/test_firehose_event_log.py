"""The event log through Amazon Data Firehose into S3 (moto): records delivered as JSON lines under the
stream's prefix, erasure by compaction of those objects, and Firehose's partial failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from tests.unit.fakes import event

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.firehose_event_log import FirehoseEventLog
from shoprec.adapters.event_records import without_user
from shoprec.errors import BackendUnavailableError
from shoprec.ports import EventLog

PREFIX = "events/date=!{timestamp:yyyy-MM-dd}/"


@pytest.fixture
def s3(moto_server: str) -> Any:
    return aws_client("s3")


@pytest.fixture
def stream(s3: Any) -> tuple[str, str]:
    """(stream name, bucket) of a delivery stream into a fresh bucket, as template.yaml configures it."""
    bucket, name = f"events-{uuid4().hex[:12]}", f"shoprec-events-{uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    aws_client("firehose").create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": PREFIX,
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
            "CompressionFormat": "UNCOMPRESSED",
        },
    )
    return name, bucket


def logged(s3: Any, bucket: str) -> dict[str, list[dict[str, Any]]]:
    """Object key -> its records."""
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        out[obj["Key"]] = [json.loads(line) for line in body.splitlines()]
    return out


def test_appended_events_reach_the_bucket_as_json_lines_under_the_prefix(
    s3: Any, stream: tuple[str, str]
) -> None:
    name, bucket = stream
    log = FirehoseEventLog(name, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    assert isinstance(log, EventLog)
    assert log.describe() == f"firehose://{name}"
    log.append([event("u1", "p1", 1), event("u2", "p2", 2)])
    objects = logged(s3, bucket)
    assert all(key.startswith("events/") for key in objects)
    records = [r for rs in objects.values() for r in rs]
    assert [(r["user_id"], r["item_id"], r["event_type"]) for r in records] == [
        ("u1", "p1", "view"),
        ("u2", "p2", "view"),
    ]
    assert records[0]["logged_at"] == "2026-03-01T00:00:00+00:00"


def test_erasing_a_user_rewrites_the_objects_that_hold_them_and_deletes_those_left_empty(
    s3: Any, stream: tuple[str, str]
) -> None:
    name, bucket = stream
    log = FirehoseEventLog(name)
    log.append([event("u1", "p1", 1), event("u2", "p2", 2)])
    log.append([event("u1", "p3", 3)])  # moto delivers each call as an object: this one holds u1 alone
    s3.put_object(Bucket=bucket, Key="elsewhere/u1.jsonl", Body=b'{"user_id": "u1"}\n')  # not the log's
    assert len(logged(s3, bucket)) == 3
    assert log.erase_user("u1") == 2
    objects = logged(s3, bucket)
    log_records = [r for key, rs in objects.items() if key.startswith("events/") for r in rs]
    assert [(r["user_id"], r["item_id"]) for r in log_records] == [("u2", "p2")]
    assert len(objects) == 2
    assert log.erase_user("u1") == 0


class RacingS3:
    """The S3 client, except that another erasure (of ``other``) rewrites the object between our read and
    our first write."""

    def __init__(self, s3: Any, other: str) -> None:
        self._s3, self._other, self.raced = s3, other, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_object(self, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = True
            body = self._s3.get_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"])["Body"].read()
            self._s3.put_object(
                Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=without_user(body, self._other)[0]
            )
        return self._s3.put_object(**kwargs)


def test_an_erasure_that_lost_a_race_reads_the_object_again_instead_of_restoring_the_other_users(
    s3: Any, stream: tuple[str, str]
) -> None:
    name, bucket = stream
    FirehoseEventLog(name).append([event("u1", "p1", 1), event("u2", "p2", 2), event("u3", "p3", 3)])
    racing = RacingS3(s3, other="u2")
    assert FirehoseEventLog(name, s3=racing).erase_user("u1") == 1
    assert racing.raced
    (records,) = logged(s3, bucket).values()
    assert [r["user_id"] for r in records] == ["u3"]  # u2 stays erased


def test_an_unknown_stream_is_a_backend_error(moto_server: str) -> None:
    log = FirehoseEventLog("no-such-stream")
    with pytest.raises(BackendUnavailableError, match="no-such-stream"):
        log.append([event("u1", "p1", 1)])
    with pytest.raises(BackendUnavailableError, match="DescribeDeliveryStream"):
        log.erase_user("u1")


class PartlyFailingFirehose:
    """PutRecordBatch that fails the records whose data holds ``failing`` for the first ``times`` calls."""

    def __init__(self, failing: bytes, times: int) -> None:
        self.failing, self.times = failing, times
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        fail = len(self.calls) <= self.times
        results = [
            {"ErrorCode": "ServiceUnavailableException"}
            if fail and self.failing in r["Data"]
            else {"RecordId": "x"}
            for r in Records
        ]
        return {"FailedPutCount": sum("ErrorCode" in r for r in results), "RequestResponses": results}


def test_records_firehose_failed_are_sent_again_once_alone() -> None:
    firehose = PartlyFailingFirehose(b'"u2"', times=1)
    FirehoseEventLog("s", firehose=firehose).append([event("u1", "p1", 1), event("u2", "p2", 2)])
    assert [len(c) for c in firehose.calls] == [2, 1]
    assert b'"u2"' in firehose.calls[1][0]


def test_records_that_fail_twice_fail_the_batch() -> None:
    firehose = PartlyFailingFirehose(b'"u2"', times=2)
    with pytest.raises(BackendUnavailableError, match="1 record"):
        FirehoseEventLog("s", firehose=firehose).append([event("u1", "p1", 1), event("u2", "p2", 2)])
