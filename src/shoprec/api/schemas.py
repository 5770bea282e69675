"""Request and response bodies of the REST API v1 (pydantic models; they also define the OpenAPI schema).

Limits live here as constants so the routes, the SQS ingest handler and the docs agree on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shoprec.domain import ID_PATTERN, Event, EventType, RankedItem

MAX_K: Final = 100
MAX_QUERY_CHARS: Final = 200
MAX_FILTER_CHARS: Final = 200
MAX_EVENTS: Final = 100
MAX_RANK_ITEMS: Final = 300

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern, min_length=1, max_length=128)]
"""A user, item or event id: 1..128 characters of letters, digits and ``_ . : @ -``."""


class _Request(BaseModel):
    # Unknown fields are rejected so that a typo ("item_Ids") fails loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid")


class EventIn(_Request):
    """One interaction as clients send it."""

    event_id: Id = Field(description="Client-chosen id; a repeated id is applied once (idempotency).")
    user_id: Id
    item_id: Id
    type: EventType = Field(description="view | click | cart | purchase")
    timestamp: datetime | None = Field(
        default=None, description="ISO-8601; without an offset it is taken as UTC; absent means now."
    )
    request_id: Id | None = Field(
        default=None, description="request_id of the response that showed the item (kept in the event log)."
    )
    variant: Id | None = Field(
        default=None, description="The experiment variant that response was served under (event log)."
    )
    position: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        strict=True,  # an integer, not false or "3"
        description="The item's 0-based place in that list (event log).",
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_string(cls, value: object) -> object:
        """Only an ISO-8601 string (pydantic would take a number as Unix seconds, which the schema and
        the docs do not offer)."""
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("timestamp must be an ISO-8601 string")
        return value

    def to_domain(self, now: datetime) -> Event:
        ts = self.timestamp or now
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return Event(
            event_id=self.event_id,
            user_id=self.user_id,
            item_id=self.item_id,
            type=self.type,
            timestamp=ts,
            request_id=self.request_id,
            variant=self.variant,
            position=self.position,
        )


class EventsRequest(_Request):
    """``POST /v1/events``: 1..100 events, applied all together or (on unknown items) not at all."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)

    def to_domain(self, now: datetime | None = None) -> list[Event]:
        """Domain events; events without a timestamp get ``now`` (default: the current UTC time)."""
        at = now or datetime.now(UTC)
        return [e.to_domain(at) for e in self.events]


class RankRequest(_Request):
    """``POST /v1/rank``: items to order for a user (duplicates are dropped)."""

    user_id: Id
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_RANK_ITEMS)


class Envelope(BaseModel):
    """Fields every successful response carries."""

    model_version: str = Field(description="Content hash of the artifact bundle that served the request.")
    request_id: str = Field(description="API Gateway request id, the caller's X-Request-Id, or generated.")
    degraded: bool = Field(description="True when a fallback was used (e.g. ranker timeout → recall scores).")


class ListItem(BaseModel):
    item_id: str
    score: float
    channels: list[str] = Field(
        description="Channels that found the item: itemcf, embedding, popularity, content (recommendations, "
        "similar items); bm25, semantic (search)."
    )
    reason: str = Field(description="Why the item is shown, for display.")
    title: str | None = None

    @classmethod
    def of(cls, item: RankedItem) -> ListItem:
        return cls(
            item_id=item.item_id,
            score=item.score,
            channels=list(item.channels),
            reason=item.reason,
            title=item.title,
        )


class ListResponse(Envelope):
    items: list[ListItem]
    cached: bool = Field(default=False, description="Served from the result cache.")
    variant: str | None = Field(
        default=None,
        description="The experiment variant that served the list (send it back with the events it leads "
        "to); null when no experiment runs.",
    )


class Facets(BaseModel):
    brand: dict[str, int] = Field(description="Matches per brand (largest counts first).")
    category: dict[str, int] = Field(description="Matches per most specific category.")


class SearchResponse(ListResponse):
    facets: Facets


class EventsResponse(Envelope):
    applied: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events whose event_id was already applied (nothing changed).")


class Health(Envelope):
    status: Literal["ok"] = "ok"
    artifact_created_at: str = Field(description="When the bundle was written (manifest created_at).")
    artifact_age_s: float = Field(description="Seconds since artifact_created_at.")
    n_items: int
    backends: dict[str, str] = Field(
        description="describe() of each backend: artifacts, state, cache, ranker."
    )


class DependencyStatus(BaseModel):
    """One dependency as ``GET /v1/health/ready`` probed it."""

    state: Literal["ok", "degraded", "down"] = Field(
        description="ok; degraded: answered in more than half of its timeout; down: failed, no answer in "
        "time, or its circuit breaker is open."
    )
    required: bool = Field(description="Whether the service is unavailable (503) while it is down.")
    latency_ms: float | None = Field(description="How long the probe took; null when it did not answer.")
    breaker: Literal["closed", "open", "half_open"] | None = Field(
        description="Its circuit breaker's state after the probe; null when it has none (in-process)."
    )
    detail: str = Field(description="What the probe saw, for people (an error message is cut short).")


class Readiness(BaseModel):
    """``GET /v1/health/ready``: 200 when every required dependency answers, else 503."""

    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="ready: all ok; degraded: an optional dependency is down or one is slow; "
        "unavailable: a required one (state, artifacts) is down."
    )
    degraded: bool = Field(description="True unless every dependency is ok.")
    model_version: str | None = Field(description="The bundle served; null when none could be loaded.")
    request_id: str
    dependencies: dict[str, DependencyStatus] = Field(description="artifacts, state, cache and ranker.")


class FieldError(BaseModel):
    field: str = Field(
        description="The offending field: a parameter name or a body path like events[3].item_id."
    )
    message: str
    values: list[str] | None = Field(default=None, description="Offending values, e.g. unknown item ids.")


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: list[FieldError] = Field(default_factory=list)
