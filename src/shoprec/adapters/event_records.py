"""The event log's record: one JSON object per event and line, shared by every :class:`EventLog` adapter.

The fields are those of the generic dataset format (``user_id``, ``item_id``, ``timestamp``, ``event_type``;
``docs/data-formats.md``), so one log file is also a generic dataset, plus the dedup key (``event_id``),
the serving context (``request_id``, ``variant``, ``position``; ``null`` when the client sent none) and
``logged_at``, the moment the log accepted it (which picks the date partition).

Served lists of an experiment are logged beside the events as exposure records (``"record": "exposure"``,
:func:`exposure_record`; ``docs/experiments.md``); readers of events skip them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from shoprec.domain import Event, Exposure

EXPOSURE: Final = "exposure"
"""The ``record`` field of an exposure record (events have none)."""


def event_record(event: Event, logged_at: datetime) -> dict[str, Any]:
    """The log's record of ``event``."""
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "item_id": event.item_id,
        "event_type": event.type.value,
        "timestamp": event.timestamp.astimezone(UTC).isoformat(),
        "request_id": event.request_id,
        "variant": event.variant,
        "position": event.position,
        "logged_at": logged_at.astimezone(UTC).isoformat(),
    }


def exposure_record(exposure: Exposure, logged_at: datetime) -> dict[str, Any]:
    """The log's record of a served list (``record`` tells it from an event)."""
    return {
        "record": EXPOSURE,
        "request_id": exposure.request_id,
        "user_id": exposure.user_id,
        "experiment": exposure.experiment,
        "variant": exposure.variant,
        "surface": exposure.surface,
        "item_ids": list(exposure.item_ids),
        "model_version": exposure.model_version,
        "endpoint_variant": exposure.endpoint_variant,
        "share": exposure.share,
        "timestamp": exposure.timestamp.astimezone(UTC).isoformat(),
        "logged_at": logged_at.astimezone(UTC).isoformat(),
    }


def encode_lines(records: Sequence[Event | Exposure], logged_at: datetime) -> list[bytes]:
    """One UTF-8 line per event or exposure, each ending with a newline (Firehose concatenates records as
    they are)."""
    return [
        (json.dumps(_record(r, logged_at), separators=(",", ":")) + "\n").encode("utf-8") for r in records
    ]


def _record(record: Event | Exposure, logged_at: datetime) -> dict[str, Any]:
    if isinstance(record, Exposure):
        return exposure_record(record, logged_at)
    return event_record(record, logged_at)


def partition(logged_at: datetime) -> str:
    """The date partition of records logged at ``logged_at``: ``date=YYYY-MM-DD`` (UTC)."""
    return f"date={logged_at.astimezone(UTC).date().isoformat()}"


def without_user(data: bytes, user_id: str) -> tuple[bytes, int]:
    """``data`` (JSON lines) without the records of ``user_id``, and how many were dropped.

    A line that is not a JSON object (a record cut short by a crash) is kept as it is: erasure must not
    destroy what it cannot read, and readers skip it."""
    kept: list[bytes] = []
    dropped = 0
    for line in data.splitlines(keepends=True):
        if _user_of(line) == user_id:
            dropped += 1
        else:
            kept.append(line)
    return b"".join(kept), dropped


def _user_of(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    user = record.get("user_id") if isinstance(record, dict) else None
    return user if isinstance(user, str) else None


def complete_lines(text: str) -> Iterable[tuple[int, str]]:
    """(1-based line, text) of each line that ends with a newline: the last line of a file without one is
    an append a crash cut short, never acknowledged, and is left out."""
    yield from enumerate(text.split("\n")[:-1], 1)
