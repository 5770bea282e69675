"""Managing merchandising rules, and the rules that apply to a request, cached in process.

Rules are read on every request and written rarely, so each process keeps the whole rule set in memory
and reads it again from the store when it is older than ``refresh_s`` (5 s): **a change made through
another process shows in responses within ``refresh_s``**; the process that made it drops its copy at
once. Cached result lists cannot outlive a change either: the digest of the rules applied to a request
is part of its cache key (:class:`shoprec.merchandising.RuleSet`), so a list computed under other rules
is never found again. A rule's time window is checked on every request against the wall clock, so a
rule starts and ends on time whatever the refresh.

When the store cannot be read, the rules last read keep applying (retried after ``refresh_s``); a
process that never read them serves lists without rules, filed under their own cache keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from shoprec.errors import BackendUnavailableError, NotFoundError
from shoprec.merchandising import RULES_UNAVAILABLE, MerchRule, RuleSet, Surface, select_rules
from shoprec.ports import RuleStore

log = logging.getLogger(__name__)

RULES_REFRESH_S: Final = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class MerchandisingService:
    """CRUD over a :class:`~shoprec.ports.RuleStore` plus :meth:`rules_for`, the rules of a request.

    ``clock`` (monotonic seconds) times the refresh; ``now`` (aware UTC datetimes) decides time windows.
    Thread-safe: one thread reloads, the others keep using the current copy meanwhile.
    """

    def __init__(
        self,
        store: RuleStore,
        *,
        refresh_s: float = RULES_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if refresh_s < 0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s}")
        self.store = store
        self.refresh_s = refresh_s
        self._clock = clock
        self._now = now
        self._rules: tuple[MerchRule, ...] | None = None  # None: never read successfully
        self._read_at: float | None = None
        self._lock = threading.Lock()

    # --- management (the admin API) --------------------------------------------------------------

    def put(self, rule: MerchRule) -> bool:
        """Store ``rule`` (create or replace); ``True`` if it was created. Visible at once here."""
        created = self.store.put(rule)
        self.invalidate()
        return created

    def get(self, rule_id: str) -> MerchRule:
        """The stored rule; ``NotFoundError(field="rule_id")`` when there is none."""
        rule = self.store.get(rule_id)
        if rule is None:
            raise NotFoundError(f"no rule {rule_id!r}", field="rule_id")
        return rule

    def list(self) -> list[MerchRule]:
        """Every stored rule, active or not, by id (read from the store, not the cache)."""
        return self.store.list()

    def delete(self, rule_id: str) -> None:
        """Remove the rule; ``NotFoundError(field="rule_id")`` when there is none."""
        if not self.store.delete(rule_id):
            raise NotFoundError(f"no rule {rule_id!r}", field="rule_id")
        self.invalidate()

    def invalidate(self) -> None:
        """Drop the cached rule set: the next request reads the store."""
        with self._lock:
            self._read_at = None

    # --- the request path -------------------------------------------------------------------------

    def rules_for(
        self,
        surface: Surface,
        *,
        query: str | None = None,
        category: str | None = None,
        brand: str | None = None,
    ) -> RuleSet:
        """The rules active now that apply to a request on ``surface`` with this query and filters."""
        rules = self._current()
        if rules is None:
            return RULES_UNAVAILABLE
        return select_rules(rules, surface, now=self._now(), query=query, category=category, brand=brand)

    def _current(self) -> tuple[MerchRule, ...] | None:
        read_at = self._read_at
        if read_at is not None and self._clock() - read_at < self.refresh_s:
            return self._rules
        if not self._lock.acquire(blocking=self._rules is None):
            return self._rules  # another thread is reloading: serve the copy we have
        try:
            if self._read_at is not None and self._clock() - self._read_at < self.refresh_s:
                return self._rules
            try:
                self._rules = tuple(self.store.list())
            except BackendUnavailableError as exc:
                log.warning("rule store unavailable, keeping the rules last read: %s", exc)
            self._read_at = self._clock()  # a failure is retried after refresh_s, not on every request
            return self._rules
        finally:
            self._lock.release()
