"""Domain types of the online path: events, candidates and ranked results. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")
"""Ids in the API: 1..128 characters of a safe alphabet (letters, digits and ``_ . : @ -``)."""

MAX_RECENT_ITEMS = 50
"""How many of a user's most recent items the state store keeps (the ranker reads at most this many)."""


class EventType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"


@dataclass(frozen=True)
class Event:
    """One user interaction. ``event_id`` makes ingestion idempotent: a repeated id is applied once."""

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    timestamp: datetime
    # The serving context the event answers, logged with it (docs/event-log.md): the response's request id,
    # the experiment variant it was served under and the item's 0-based place in that list.
    request_id: str | None = None
    variant: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class Appended:
    """What one call appended to a user's sequence: the recent items before it (oldest first) and the items
    of the events it applied, in the order applied (duplicates left out)."""

    before: tuple[str, ...]
    items: tuple[str, ...]


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of applying a batch of events to the user-state store.

    ``appended`` (per changed user) feeds the online co-occurrence counts (``docs/online-updates.md``); it
    is not part of equality, and a store that does not report it leaves it empty."""

    applied: int
    duplicates: int
    users: frozenset[str] = frozenset()
    appended: dict[str, Appended] = field(default_factory=dict, compare=False)


@dataclass
class Candidate:
    """An item found by recall: internal item index, merged score and the channels that found it."""

    item: int
    score: float
    channels: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class RankedItem:
    """One entry of a response list."""

    item_id: str
    score: float
    channels: tuple[str, ...]
    reason: str
    title: str | None = None


@dataclass(frozen=True)
class Exposure:
    """A list served to a user under an experiment's variant: the denominator of the variant's rates
    (``docs/experiments.md``). Logged beside the events; ``endpoint_variant`` is the SageMaker production
    variant whose ranker scored it (``None`` when none did: another ranker, a fallback, or a cached list);
    ``share`` the variant's configured share of the users, which the report checks the split against."""

    request_id: str
    user_id: str
    experiment: str
    variant: str
    surface: str
    item_ids: tuple[str, ...]
    model_version: str
    timestamp: datetime
    endpoint_variant: str | None = None
    share: float | None = None
