"""Merchandising rules: pin, boost, bury or block items, per search query, category, brand or everywhere.

A rule (:class:`MerchRule`) says *what* it does (``action``), *where* (``scope`` and ``scope_value``,
``surfaces``), *to which items* (``items`` and/or the selector ``item_brand`` / ``item_category``) and
*when* (``starts_at`` / ``ends_at``). It is pure data, validated strictly: every error names its field.
:func:`select_rules` picks the rules that apply to one request; :mod:`shoprec.rerank.merch` applies
them to a ranked list; ``docs/pipeline.md`` ("Merchandising rules") describes the semantics.

=========  ==========================================================================================
action     effect on the acted-on items
=========  ==========================================================================================
pin        the listed ``items`` are placed at ``position`` (1 = first), even when recall missed them
boost      score + ``weight`` x the score range of the request's candidates; reason "promoted"
bury       score - ``weight`` x that range (moved down, keeps its reason)
block      removed from the list
=========  ==========================================================================================

========  ===========================================================================================
scope     the rule applies to a request when
========  ===========================================================================================
global    always (on its surfaces)
query     the search query, normalised (case and whitespace folded), equals ``scope_value``
category  the request's category filter, normalised, equals ``scope_value`` (a category page)
brand     the request's brand filter, normalised, equals ``scope_value`` (a brand page)
========  ===========================================================================================
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from shoprec.catalog import name_key
from shoprec.domain import ID_PATTERN

MAX_RULE_ITEMS: Final = 100
MAX_PIN_POSITION: Final = 100
MAX_WEIGHT: Final = 10.0
MAX_NAME_CHARS: Final = 200


class RuleAction(StrEnum):
    PIN = "pin"
    BOOST = "boost"
    BURY = "bury"
    BLOCK = "block"


class RuleScope(StrEnum):
    GLOBAL = "global"
    QUERY = "query"
    CATEGORY = "category"
    BRAND = "brand"


class Surface(StrEnum):
    RECOMMENDATIONS = "recommendations"
    SEARCH = "search"
    SIMILAR = "similar"


RuleId = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern, min_length=1, max_length=128)]
ItemId = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]


class RuleSpec(BaseModel):
    """A merchandising rule without its id (the body of ``PUT /v1/rules/{rule_id}``).

    Cross-field checks are field validators, so an error names the field at fault: ``position`` is
    required for pin and refused otherwise, ``weight`` required for boost and bury and refused otherwise,
    ``scope_value`` required unless the scope is global, ``items`` required for pin (and, without a
    selector, for every action), a selector refused for pin, ``ends_at`` after ``starts_at``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: RuleAction = Field(description="pin | boost | bury | block")
    scope: RuleScope = Field(default=RuleScope.GLOBAL, description="global | query | category | brand")
    scope_value: Name | None = Field(
        default=None,
        validate_default=True,
        description="The query, category or brand the rule is for (stored normalised); none when global.",
    )
    item_brand: Name | None = Field(default=None, description="Selector: act on every item of this brand.")
    item_category: Name | None = Field(
        default=None, description="Selector: act on every item in this category (any level of its path)."
    )
    items: tuple[ItemId, ...] = Field(
        default=(),
        max_length=MAX_RULE_ITEMS,
        validate_default=True,
        description="Item ids acted on (in addition to the selector's); pin places them in this order.",
    )
    position: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PIN_POSITION,
        strict=True,
        validate_default=True,
        description="pin only: 1-based position of the first pinned item.",
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        validate_default=True,
        description="boost / bury only: the shift, in units of the candidates' score range (1 = all of it).",
    )
    starts_at: datetime | None = Field(default=None, description="Active from (ISO 8601, UTC when naive).")
    ends_at: datetime | None = Field(
        default=None, validate_default=True, description="Active until, excluded (ISO 8601, UTC when naive)."
    )
    surfaces: tuple[Surface, ...] = Field(
        default=(Surface.RECOMMENDATIONS, Surface.SEARCH, Surface.SIMILAR),
        min_length=1,
        description="Where the rule applies: recommendations, search, similar.",
    )

    @field_validator("scope_value")
    @classmethod
    def _scope_value(cls, value: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("scope")
        if value is not None:
            value = name_key(value)
            if not value:
                raise ValueError("must not be blank")
        if scope is None:
            return value
        if scope == RuleScope.GLOBAL and value is not None:
            raise ValueError("a global rule has no scope_value")
        if scope != RuleScope.GLOBAL and value is None:
            raise ValueError(f"required for scope '{scope}'")
        return value

    @field_validator("item_brand", "item_category")
    @classmethod
    def _selector(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        if value is not None and info.data.get("action") == RuleAction.PIN:
            raise ValueError("pin places the listed items; a selector is for boost, bury and block")
        return value

    @field_validator("items")
    @classmethod
    def _items(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an item id twice")
        action = info.data.get("action")
        selector = info.data.get("item_brand") is not None or info.data.get("item_category") is not None
        if action == RuleAction.PIN and not value:
            raise ValueError("pin needs at least one item id")
        if action is not None and not value and not selector:
            raise ValueError("give item ids, or a selector (item_brand / item_category)")
        return value

    @field_validator("position")
    @classmethod
    def _position(cls, value: int | None, info: ValidationInfo) -> int | None:
        action = info.data.get("action")
        if action == RuleAction.PIN and value is None:
            raise ValueError("required for pin")
        if action is not None and action != RuleAction.PIN and value is not None:
            raise ValueError(f"only pin has a position, not {action}")
        return value

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: float | None, info: ValidationInfo) -> float | None:
        action = info.data.get("action")
        weighted = action in (RuleAction.BOOST, RuleAction.BURY)
        if weighted and value is None:
            raise ValueError(f"required for {action}")
        if action is not None and not weighted and value is not None:
            raise ValueError(f"only boost and bury have a weight, not {action}")
        return value

    @field_validator("starts_at")
    @classmethod
    def _starts_at(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @field_validator("ends_at")
    @classmethod
    def _ends_at(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        value = _utc(value)
        start = info.data.get("starts_at")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after starts_at")
        return value

    @field_validator("surfaces")
    @classmethod
    def _surfaces(cls, value: tuple[Surface, ...]) -> tuple[Surface, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a surface twice")
        return value

    def active_at(self, now: datetime) -> bool:
        """Whether ``now`` lies in the rule's window: ``starts_at <= now < ends_at`` (open ends)."""
        if self.starts_at is not None and now < self.starts_at:
            return False
        return self.ends_at is None or now < self.ends_at

    def applies_to(
        self,
        surface: Surface,
        *,
        query: str | None = None,
        category: str | None = None,
        brand: str | None = None,
    ) -> bool:
        """Whether the rule is for a request on ``surface`` with these (already normalised) query and
        filters; the time window is :meth:`active_at`'s business."""
        if surface not in self.surfaces:
            return False
        wanted = {
            RuleScope.GLOBAL: None,
            RuleScope.QUERY: query,
            RuleScope.CATEGORY: category,
            RuleScope.BRAND: brand,
        }[self.scope]
        return self.scope == RuleScope.GLOBAL or wanted == self.scope_value

    def with_id(self, rule_id: str) -> MerchRule:
        return MerchRule(rule_id=rule_id, **self.model_dump())


class MerchRule(RuleSpec):
    """A stored merchandising rule: :class:`RuleSpec` plus its id."""

    rule_id: RuleId = Field(description="1..128 characters of letters, digits and _ . : @ -")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> MerchRule:
        """The rule stored as ``text``; raises pydantic's ``ValidationError`` naming the field at fault."""
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class RuleSet:
    """The rules that apply to one request, ordered by id, and a digest of them for cache keys.

    ``digest`` is ``""`` when no rule applies (so the keys of lists without rules do not change), 12 hex
    digits of the rules' JSON otherwise, and ``"unavailable"`` when the rule store could not be read
    (a list computed then is filed apart from every list computed with rules).
    """

    rules: tuple[MerchRule, ...] = ()
    digest: str = ""

    def __bool__(self) -> bool:
        return bool(self.rules)


NO_RULES: Final = RuleSet()
RULES_UNAVAILABLE: Final = RuleSet(digest="unavailable")


def select_rules(
    rules: Iterable[MerchRule],
    surface: Surface,
    *,
    now: datetime,
    query: str | None = None,
    category: str | None = None,
    brand: str | None = None,
) -> RuleSet:
    """The rules of ``rules`` active at ``now`` that apply to a request on ``surface`` with the search
    query and filters given (normalised here the way rules store them)."""
    q, c, b = (_key(v) for v in (query, category, brand))
    chosen = sorted(
        (r for r in rules if r.active_at(now) and r.applies_to(surface, query=q, category=c, brand=b)),
        key=lambda r: r.rule_id,
    )
    if not chosen:
        return NO_RULES
    payload: list[dict[str, Any]] = [r.model_dump(mode="json") for r in chosen]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return RuleSet(tuple(chosen), digest)


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    key = name_key(value)
    return key or None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
