"""Load a dataset's user histories into the user-state store (``shoprec state import``).

Each interaction becomes a ``view`` event with the deterministic id ``import:<user>:<position>``, so
importing the same dataset twice changes nothing (events are idempotent by id) and the dataset's own
user ids work in the API right away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shoprec.data.model import Dataset
from shoprec.domain import MAX_RECENT_ITEMS, ApplyResult, Event, EventType
from shoprec.services.events import EventService

IMPORT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BATCH = 1000


def import_histories(
    events: EventService,
    dataset: Dataset,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ApplyResult:
    """Apply every user's most recent items (at most ``MAX_RECENT_ITEMS``) as events, in order."""
    applied = duplicates = 0
    batch: list[Event] = []

    def flush() -> None:
        nonlocal applied, duplicates
        if batch:
            result = events.ingest(batch)
            applied += result.applied
            duplicates += result.duplicates
            batch.clear()

    for u, (user, seq) in enumerate(zip(dataset.user_ids, dataset.sequences, strict=True)):
        start = max(0, len(seq) - MAX_RECENT_ITEMS)
        for pos in range(start, len(seq)):
            item = dataset.item_ids[int(seq[pos])]
            batch.append(
                Event(
                    f"import:{user}:{pos}", user, item, EventType.VIEW, IMPORT_EPOCH + timedelta(seconds=pos)
                )
            )
        if len(batch) >= BATCH:
            flush()
            if progress is not None:
                progress(u + 1, dataset.n_users)
    flush()
    if progress is not None:
        progress(dataset.n_users, dataset.n_users)
    return ApplyResult(applied=applied, duplicates=duplicates, users=frozenset(dataset.user_ids))
