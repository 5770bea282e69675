"""Event ingestion and user deletion: the write side of shoprec.

A batch is validated as a whole before anything is stored (one unknown item id rejects the batch), then
applied through the user-state port, then every user of the batch gets a new cache generation
(``Cache.invalidate_tag``), which retires every list cached for them, including one a concurrent request
is computing from the earlier state (``docs/pipeline.md``, cache keys). A write is acknowledged only when
both steps succeeded: if the invalidation fails, the state change stays (applying and deleting are
idempotent) and ``BackendUnavailableError`` tells the caller to retry, which invalidates again.

With an event log (:class:`~shoprec.ports.EventLog`), every event of an applied batch is appended to it
after the state store applied it, duplicates included (a retried batch is logged again either way: readers
keep the first record per ``(user_id, event_id)``, ``docs/event-log.md``); a batch is acknowledged only once
logged. Deleting a user erases their logged events too.

With an interaction stats store (:class:`~shoprec.ports.InteractionStatsStore`), the events a batch
applied (duplicates left out, so a retried batch counts nothing twice) also update the live co-occurrence
and trending counts (:func:`shoprec.recall.online.stream_counts`, ``docs/online-updates.md``). Those
counts are best effort: when the store fails, the batch is still acknowledged and the failure logged.

Every deletion, successful or not, writes one audit record through the project's logger, naming the user
by a keyed hash (:func:`user_hash`), never by the id itself.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from shoprec.catalog import CatalogIndex
from shoprec.domain import ID_PATTERN, ApplyResult, Event
from shoprec.errors import BackendUnavailableError, InvalidInputError
from shoprec.observability import logger
from shoprec.ports import Cache, EventLog, InteractionStatsStore, UserStateStore
from shoprec.recall.online import stream_counts
from shoprec.services.recommendation import user_cache_tag

DEFAULT_AUDIT_KEY: Final = b"shoprec-audit-v1"
"""The key of :func:`user_hash` when none is configured. Deployments pass a secret of their own, so that
ids cannot be recovered from the audit log by hashing guesses."""
AUDIT_EVENT: Final = "user_deletion"


def user_hash(user_id: str, key: bytes = DEFAULT_AUDIT_KEY) -> str:
    """The user's id as the audit log names it: HMAC-SHA256 under ``key``, 32 hex digits. Whoever holds
    the key can check whether a given id was deleted; nobody can read ids off the log."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


class EventService:
    """Stores user interactions and removes users, keeping the recommendation cache consistent.

    ``audit_key`` keys the hash that names users in deletion audit records (:func:`user_hash`).
    """

    def __init__(
        self,
        catalog: CatalogIndex | Callable[[], CatalogIndex],
        state: UserStateStore,
        cache: Cache,
        *,
        audit_key: bytes = DEFAULT_AUDIT_KEY,
        event_log: EventLog | None = None,
        stats: InteractionStatsStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``catalog``: the catalogue whose items events may name, or a function returning the current
        one (the live catalogue's, so that an item added a moment ago can be used at once). ``stats``
        learns from the applied events, dated by ``clock`` (unix seconds)."""
        self._catalog = catalog
        self.state = state
        self.cache = cache
        self._audit_key = audit_key
        self.event_log = event_log
        self.stats = stats
        self._clock = clock

    @property
    def catalog(self) -> CatalogIndex:
        return self._catalog() if callable(self._catalog) else self._catalog

    def ingest(self, events: Sequence[Event]) -> ApplyResult:
        """Apply ``events`` (idempotent by ``event_id``) and retire their users' cached lists.

        Raises ``InvalidInputError(field="events", values=[...])`` naming the item ids the catalogue does
        not know (or malformed user / item ids), in which case nothing is stored. State-store failures
        propagate as ``BackendUnavailableError``; so does a failed invalidation, after the events were
        stored: the batch is then not acknowledged, and sending it again applies nothing twice and
        invalidates again (every user of a batch is invalidated, duplicates or not).
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
        unknown = self.catalog.unknown(e.item_id for e in events)  # delisted items are known: events are real
        if unknown:
            raise InvalidInputError(
                f"{len(unknown)} item id(s) not in the catalogue: {', '.join(unknown[:10])}",
                field="events",
                values=unknown,
            )
        result = self.state.apply_events(events)
        if self.event_log is not None:
            self.event_log.append(events)
        self._learn(result)
        self._invalidate(dict.fromkeys(e.user_id for e in events))
        return result

    def delete_user(self, user_id: str) -> bool:
        """Remove the user's state, cached lists and logged events; ``True`` if the state store or the
        event log held anything for them.

        Raises ``BackendUnavailableError`` unless every store is clean: the state store failed, or the
        cache could not be invalidated or the log not erased (the state is then already gone, and a retry,
        which finds nothing stored, invalidates and erases again). Writes one audit record either way.
        """
        try:
            removed = self.state.delete_user(user_id)
        except BackendUnavailableError as exc:
            self._audit(user_id, "failed", failed_step="state", error=str(exc))
            raise
        try:
            dropped = self.cache.invalidate_tag(user_cache_tag(user_id))
        except BackendUnavailableError as exc:
            self._audit(user_id, "failed", state_removed=removed, failed_step="cache", error=str(exc))
            raise
        erased = 0
        if self.event_log is not None:
            try:
                erased = self.event_log.erase_user(user_id)
            except BackendUnavailableError as exc:
                self._audit(user_id, "failed", state_removed=removed, failed_step="event_log", error=str(exc))
                raise
        anything = removed or erased > 0
        self._audit(
            user_id,
            "deleted" if anything else "nothing_stored",
            state_removed=removed,
            cached_lists=dropped,
            logged_events=erased,
        )
        return anything

    def _learn(self, result: ApplyResult) -> None:
        if self.stats is None or not result.appended:
            return
        pairs, items = stream_counts(result.appended)
        try:
            self.stats.record(pairs, items, at=self._clock())
        except BackendUnavailableError as exc:
            # The events are stored; a retry would find them applied and count nothing, so failing the
            # batch would not bring the counts back either. They miss this batch, which is what decays.
            logger.warning("interaction stats not updated for %d events: %s", result.applied, exc)

    def _invalidate(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            try:
                self.cache.invalidate_tag(user_cache_tag(user_id))
            except BackendUnavailableError as exc:
                # Stop at the first failure: with a dead cache each further user would cost a timeout, and
                # the retry of the batch invalidates them all anyway.
                raise BackendUnavailableError(
                    f"events stored, but cached lists could not be invalidated (retry the batch): {exc}"
                ) from exc

    def _audit(self, user_id: str, outcome: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "audit": AUDIT_EVENT,
            "user_hash": user_hash(user_id, self._audit_key),
            "outcome": outcome,
            **fields,
        }
        if outcome == "failed":
            logger.warning("user deletion failed", extra=record)
        else:
            logger.info("user deletion", extra=record)
