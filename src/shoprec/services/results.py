"""What the services return to the API and the Lambda handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoprec.domain import RankedItem


@dataclass(frozen=True)
class ListResult:
    """A ranked list plus how it was produced.

    ``degraded`` is true when a fallback was used (ranker timeout/failure → recall scores, cold start is
    *not* degraded); ``ranker_fallback`` says the ranker in particular failed or ran out of budget.
    ``timings_ms`` maps stage names (cache, state, recall, rank, rerank) to milliseconds
    for metrics. ``facets`` is only set by search: ``{"brand": {name: count}, "category": {...}}``.
    ``variant`` is the experiment variant that served the list (``None`` without an experiment).
    """

    items: list[RankedItem]
    model_version: str
    degraded: bool = False
    ranker_fallback: bool = False
    cached: bool = False
    facets: dict[str, dict[str, int]] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidates_per_channel: dict[str, int] = field(default_factory=dict)
    variant: str | None = None
