"""Ports: the interfaces the services depend on. Adapters under ``shoprec.adapters`` implement them.

Nothing above the adapters imports boto3, redis or sqlite3; tests swap in other implementations through
the composition root (``shoprec.container``), never by patching modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from shoprec.domain import ApplyResult, Event, Exposure
from shoprec.items import CatalogItem


@runtime_checkable
class UserStateStore(Protocol):
    """Each user's most recent item ids (oldest first, at most ``MAX_RECENT_ITEMS``) and seen event ids."""

    def recent_items(self, user_id: str) -> list[str]:
        """The user's recent item ids, oldest first; ``[]`` for an unknown user."""
        ...

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        """Append the events' items to their users' sequences, atomically per user.

        Idempotent by ``event_id`` per user: an event whose id was already applied for its user (in an
        earlier call or earlier in the same batch) is counted as a duplicate and changes nothing; the same
        id for another user is another event. Events of one user are applied in
        timestamp order (stable), and the sequence is truncated to the most recent items.
        """
        ...

    def delete_user(self, user_id: str) -> bool:
        """Remove the user's state and stored events; ``True`` if there was anything to remove."""
        ...

    def describe(self) -> str:
        """Backend name for /v1/health, e.g. ``sqlite:///path`` or ``dynamodb://table``."""
        ...


@runtime_checkable
class Cache(Protocol):
    """A byte cache with TTLs and tags (a tag groups the entries of one user for invalidation).

    Every tag also has a *generation*, an opaque token that :meth:`invalidate_tag` replaces with one the
    tag never had before. A writer that reads the generation *before* reading the data it caches, and puts
    the generation into the entry's key, can never make an entry computed from data older than an
    invalidation reachable again: after the invalidation, readers look under the new generation.
    """

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_seconds: float, *, tags: Sequence[str] = ()) -> None: ...

    def generation(self, tag: str) -> str:
        """The tag's current generation (a short token, e.g. for a cache key). It changes with every
        :meth:`invalidate_tag` and does not return to a value it had while entries keyed by it can live."""
        ...

    def invalidate_tag(self, tag: str) -> int:
        """Replace the tag's generation, then drop every entry stored with ``tag``; returns how many
        entries were dropped. Raises ``BackendUnavailableError`` if either step failed."""
        ...

    def describe(self) -> str: ...


Instance = tuple[Sequence[str], Sequence[str]]
"""One scoring request: (history item ids, oldest first; candidate item ids)."""


@runtime_checkable
class Ranker(Protocol):
    """Scores candidate items for users' recent items with the sequence model."""

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        """One score per candidate (same order). ``history`` and ``candidates`` are dataset item ids.

        Raises ``RankerUnavailableError`` when the backend fails or the timeout passes.
        """
        ...

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        """:meth:`score` for several users in as few backend calls as the backend allows (one score list
        per instance, same order); a user's scores do not depend on the other users of the batch."""
        ...

    def describe(self) -> str: ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Where bundles live. ``local_path`` returns a verified local folder (downloading when remote)."""

    def local_path(self) -> Path: ...

    def describe(self) -> str: ...


if TYPE_CHECKING:  # the rule model is pydantic; the ports stay free of it at run time
    from shoprec.merchandising import MerchRule


@runtime_checkable
class RuleStore(Protocol):
    """Merchandising rules (:class:`shoprec.merchandising.MerchRule`) by id: read often, written rarely.

    Adapters raise ``BackendUnavailableError`` when the backend fails; a stored rule that no longer
    validates is skipped (and logged) by :meth:`list` and reported absent by :meth:`get`.
    """

    def put(self, rule: MerchRule) -> bool:
        """Create or replace the rule with ``rule.rule_id``; ``True`` if it did not exist before."""
        ...

    def get(self, rule_id: str) -> MerchRule | None:
        """The rule, or ``None`` when there is none with this id."""
        ...

    def list(self) -> list[MerchRule]:
        """Every stored rule, ordered by id (active or not)."""
        ...

    def delete(self, rule_id: str) -> bool:
        """Remove the rule; ``True`` if there was one."""
        ...

    def describe(self) -> str: ...


@runtime_checkable
class ItemStore(Protocol):
    """The live catalogue's overlay (:class:`shoprec.items.CatalogItem`) by item id, over the bundle's
    catalogue: written by ``PUT`` / ``DELETE /v1/items/{item_id}``, read whole by the catalogue service
    and by ``shoprec train --overlay``.

    Writes are idempotent: a write whose content fields (:data:`shoprec.items.CONTENT_FIELDS`) equal the
    stored item's changes nothing, not even ``updated_at`` or :meth:`version`. Adapters raise
    ``BackendUnavailableError`` when the backend fails.
    """

    def put(self, item: CatalogItem) -> bool:
        """Store ``item`` (``delisted`` cleared, ``updated_at`` set to now when anything changed); ``True``
        if the id was not stored before (a tombstone counts as stored)."""
        ...

    def delist(self, item_id: str) -> bool:
        """Store a tombstone: the stored item with ``delisted=True``, or a bare one for an id never stored
        (it hides the bundle's copy); ``True`` if that changed anything."""
        ...

    def get(self, item_id: str) -> CatalogItem | None:
        """The stored item (tombstones included), or ``None``."""
        ...

    def list(self) -> list[CatalogItem]:
        """Every stored item, tombstones included, ordered by item id."""
        ...

    def version(self) -> str:
        """An opaque token that changes with every write that changed something (one small read): a
        reader lists the items again only when it differs from the one it last saw."""
        ...

    def describe(self) -> str: ...


@runtime_checkable
class EventLog(Protocol):
    """The append-only log of accepted events, the training data of tomorrow (``docs/event-log.md``).

    One JSON object per event and line (:mod:`shoprec.adapters.event_records`), partitioned by the UTC date
    it was logged. Delivery is at least once: a batch retried after a failure is logged again, so readers
    keep the first record of each ``(user_id, event_id)``. Adapters raise ``BackendUnavailableError``.
    """

    def append(self, events: Sequence[Event | Exposure]) -> None:
        """Log ``events`` durably (returns once the backend has them); experiments log the lists they
        serve (exposures) here too."""
        ...

    def erase_user(self, user_id: str) -> int:
        """Remove every logged event of ``user_id``; returns how many records were removed."""
        ...

    def describe(self) -> str:
        """Backend name, e.g. ``file:///path`` or ``firehose://stream``."""
        ...


@runtime_checkable
class InteractionStatsStore(Protocol):
    """Interaction counts learnt from the event stream between retrains (``docs/online-updates.md``): per
    item, the items viewed near it (co-occurrence weights, a neighbour list of at most ``max_neighbours``)
    and how much it was interacted with lately (trending). Both decay with a half-life: a weight added at
    time ``t`` counts ``2 ** -((now - t) / half_life)`` at ``now``. Adapters raise
    ``BackendUnavailableError`` when the backend fails.
    """

    def record(
        self, pairs: Mapping[str, Mapping[str, float]], items: Mapping[str, float], *, at: float
    ) -> None:
        """Add weights observed at ``at`` (unix seconds): ``pairs[a][b]`` to ``b``'s weight in ``a``'s
        neighbour list, ``items[i]`` to ``i``'s trending count."""
        ...

    def neighbours(self, item_ids: Sequence[str], *, at: float) -> dict[str, dict[str, float]]:
        """The neighbour lists of ``item_ids`` decayed to ``at``, in as few backend reads as it allows (one
        for the few items of a request); items without a list are left out."""
        ...

    def trending(self, *, at: float) -> dict[str, float]:
        """Every item's trending count decayed to ``at``; items not counted lately are left out."""
        ...

    def describe(self) -> str: ...
