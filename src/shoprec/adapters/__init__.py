"""Adapters: implementations of the ports in :mod:`shoprec.ports`.

``adapters.local`` holds the embedded, single-machine backends (sqlite, in-process cache, files on disk,
onnxruntime in process); ``adapters.aws`` the AWS ones (DynamoDB, ElastiCache/Redis, S3, SageMaker). Only
code in this package imports boto3, redis or sqlite3, and every adapter turns SDK errors into the domain
errors of :mod:`shoprec.errors`.

This module also holds the batch planning both user-state stores share, so they agree exactly on what
"idempotent, in timestamp order" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shoprec.domain import Event


@dataclass(frozen=True)
class EventPlan:
    """A batch of events grouped for applying: per user, the first occurrence of each event id in
    timestamp order (stable, so equal timestamps keep their input order)."""

    by_user: dict[str, list[Event]]
    duplicates_in_batch: int


def plan_events(events: Sequence[Event]) -> EventPlan:
    """Drop repeated (user, event id) pairs within ``events`` (the first occurrence wins) and group the rest
    by user. Event ids are unique per user: the same id for two users is two events."""
    seen: set[tuple[str, str]] = set()
    by_user: dict[str, list[Event]] = {}
    duplicates = 0
    for event in events:
        key = (event.user_id, event.event_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        by_user.setdefault(event.user_id, []).append(event)
    for user_events in by_user.values():
        user_events.sort(key=lambda e: e.timestamp)
    return EventPlan(by_user=by_user, duplicates_in_batch=duplicates)
