"""Event ingestion and user deletion: the write side of shoprec.

A batch is validated as a whole before anything is stored (one unknown item id rejects the batch), then
applied through the user-state port, then the cached lists of every user in the batch are invalidated.
Cache invalidation is best effort: cache entries also expire by TTL, so a failed invalidation only
delays freshness and never fails the write.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from shoprec.catalog import CatalogIndex
from shoprec.domain import ID_PATTERN, ApplyResult, Event
from shoprec.errors import BackendUnavailableError, InvalidInputError
from shoprec.ports import Cache, UserStateStore
from shoprec.services.recommendation import user_cache_tag

log = logging.getLogger(__name__)


class EventService:
    """Stores user interactions and removes users, keeping the recommendation cache consistent."""

    def __init__(self, catalog: CatalogIndex, state: UserStateStore, cache: Cache) -> None:
        self.catalog = catalog
        self.state = state
        self.cache = cache

    def ingest(self, events: Sequence[Event]) -> ApplyResult:
        """Apply ``events`` (idempotent by ``event_id``) and invalidate their users' cached lists.

        Raises ``InvalidInputError(field="events", values=[...])`` naming the item ids the catalogue does
        not know (or malformed user / item ids), in which case nothing is stored.  State-store failures
        propagate as ``BackendUnavailableError``.
        """
        if not events:
            return ApplyResult(applied=0, duplicates=0)
        bad_ids = [v for e in events for v in (e.user_id, e.item_id) if not ID_PATTERN.fullmatch(v)]
        if bad_ids:
            raise InvalidInputError(
                "malformed ids in events (1..128 of letters, digits and _ . : @ -)",
                field="events",
                values=list(dict.fromkeys(bad_ids)),
            )
        unknown = self.catalog.unknown(e.item_id for e in events)
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} item id(s) not in the catalogue: {', '.join(unknown[:10])}",
                field="events",
                values=unknown,
            )
        result = self.state.apply_events(events)
        self._invalidate(dict.fromkeys(e.user_id for e in events))
        return result

    def delete_user(self, user_id: str) -> bool:
        """Remove the user's state and cached lists; ``True`` if the store held anything for them."""
        removed = self.state.delete_user(user_id)
        self._invalidate([user_id])
        return removed

    def _invalidate(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            try:
                self.cache.invalidate_tag(user_cache_tag(user_id))
            except BackendUnavailableError as exc:
                log.warning("cache invalidation for user %s failed (entries expire by TTL): %s", user_id, exc)
