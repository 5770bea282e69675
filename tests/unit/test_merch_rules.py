"""Merchandising rules: validation naming the field, time windows, scopes, and each action applied to
hand-made ranked lists of the tiny catalogue (tests.unit.fakes: p0..p11, brands and categories there)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from tests.unit.fakes import make_catalog

from shoprec.domain import Candidate
from shoprec.merchandising import NO_RULES, MerchRule, RuleSpec, Surface, select_rules
from shoprec.rerank.merch import MERCH_CHANNEL, PROMOTED, apply_rules, merch_depth
from shoprec.rerank.rules import rerank

CATALOG = make_catalog()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def rule(rule_id: str = "r1", **fields: Any) -> MerchRule:
    return MerchRule(rule_id=rule_id, **fields)


def error_fields(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        RuleSpec(**fields)
    return list(dict.fromkeys(str(e["loc"][0]) for e in info.value.errors()))


def ranked(*pairs: tuple[str, float]) -> list[Candidate]:
    """Candidates of ``(item id, score)``, each found by item-CF with reason "r:<id>"."""
    return [Candidate(CATALOG.index_of[i], s, ["itemcf"], f"r:{i}") for i, s in pairs]


def listed(out: list[Candidate]) -> list[str]:
    return [CATALOG.item_ids[c.item] for c in out]


# A list over four leaf categories, so the diversity cap (3 of k=5) does not interfere unless wanted.
BASE = ranked(("p0", 1.0), ("p2", 0.9), ("p5", 0.8), ("p9", 0.7), ("p10", 0.6), ("p3", 0.5), ("p7", 0.4))


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ({"action": "pin", "items": ["p1"]}, ["position"]),
        ({"action": "pin", "items": ["p1"], "position": 0}, ["position"]),
        ({"action": "pin", "items": ["p1"], "position": "2"}, ["position"]),  # strict: no string numbers
        ({"action": "pin", "position": 1}, ["items"]),
        ({"action": "pin", "items": ["p1"], "position": 1, "item_brand": "3M"}, ["item_brand"]),
        ({"action": "boost", "items": ["p1"]}, ["weight"]),
        ({"action": "boost", "items": ["p1"], "weight": 0}, ["weight"]),
        ({"action": "bury", "items": ["p1"], "weight": float("inf")}, ["weight"]),
        ({"action": "block", "items": ["p1"], "weight": 1.0}, ["weight"]),
        ({"action": "block", "items": ["p1"], "position": 1}, ["position"]),
        ({"action": "block"}, ["items"]),
        ({"action": "block", "items": ["p1", "p1"]}, ["items"]),
        ({"action": "block", "items": ["bad id!"]}, ["items"]),
        ({"action": "hide", "items": ["p1"]}, ["action"]),
        ({"action": "block", "items": ["p1"], "scope": "query"}, ["scope_value"]),
        ({"action": "block", "items": ["p1"], "scope_value": "x"}, ["scope_value"]),
        ({"action": "block", "items": ["p1"], "scope": "brand", "scope_value": "   "}, ["scope_value"]),
        ({"action": "block", "items": ["p1"], "surfaces": []}, ["surfaces"]),
        ({"action": "block", "items": ["p1"], "surfaces": ["home"]}, ["surfaces"]),
        ({"action": "block", "items": ["p1"], "colour": "red"}, ["colour"]),
        (
            {
                "action": "block",
                "items": ["p1"],
                "starts_at": "2026-06-02T00:00:00Z",
                "ends_at": "2026-06-01",
            },
            ["ends_at"],
        ),
    ],
)
def test_invalid_rules_name_the_field_at_fault(fields: dict[str, Any], wanted: list[str]) -> None:
    assert error_fields(**fields) == wanted


def test_a_rule_is_normalised_and_round_trips_through_json() -> None:
    r = rule(
        action="boost",
        scope="query",
        scope_value="  Digital   CALIPER ",
        item_brand="Neiko",
        weight=0.5,
        starts_at="2026-06-01T10:00:00",  # naive: UTC
        ends_at="2026-06-01T14:00:00+02:00",
    )
    assert r.scope_value == "digital caliper"
    assert r.starts_at == datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert r.ends_at == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert MerchRule.from_json(r.to_json()) == r
    assert r.surfaces == (Surface.RECOMMENDATIONS, Surface.SEARCH, Surface.SIMILAR)


def test_time_windows_start_inclusive_and_end_exclusive() -> None:
    r = rule(action="block", items=["p1"], starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    assert not r.active_at(NOW - timedelta(microseconds=1))
    assert r.active_at(NOW)
    assert r.active_at(NOW + timedelta(minutes=59))
    assert not r.active_at(NOW + timedelta(hours=1))
    assert rule(action="block", items=["p1"]).active_at(NOW)
    rules = [r]
    assert select_rules(rules, Surface.SEARCH, now=NOW).rules == (r,)
    assert select_rules(rules, Surface.SEARCH, now=NOW + timedelta(hours=2)) is NO_RULES


def test_scopes_match_the_normalised_query_and_filters_and_surfaces() -> None:
    by_query = rule("q", action="block", items=["p1"], scope="query", scope_value="Duct Tape")
    by_cat = rule("c", action="block", items=["p1"], scope="category", scope_value="filament")
    by_brand = rule("b", action="block", items=["p1"], scope="brand", scope_value="3m")
    only_similar = rule("s", action="block", items=["p1"], surfaces=["similar"])
    everything = rule("g", action="block", items=["p1"])
    rules = [everything, by_query, by_cat, by_brand, only_similar]

    def ids(surface: Surface, **ctx: str) -> list[str]:
        return [r.rule_id for r in select_rules(rules, surface, now=NOW, **ctx).rules]

    assert ids(Surface.SEARCH, query="  duct   TAPE ") == ["g", "q"]
    assert ids(Surface.SEARCH, query="duct tapes") == ["g"]
    assert ids(Surface.RECOMMENDATIONS, category="Filament", brand="3M") == ["b", "c", "g"]
    assert ids(Surface.SIMILAR) == ["g", "s"]
    # the digest changes with the rules and is empty without any
    one = select_rules(rules, Surface.SIMILAR, now=NOW)
    changed = [everything, rule("s", action="block", items=["p2"], surfaces=["similar"])]
    assert one.digest != select_rules(changed, Surface.SIMILAR, now=NOW).digest
    assert len(one.digest) == 12
    assert select_rules([], Surface.SEARCH, now=NOW).digest == ""


# --- application ------------------------------------------------------------------------------------


def test_without_rules_it_is_the_plain_rerank() -> None:
    assert apply_rules(BASE, 5, CATALOG, []) == rerank(BASE, 5, CATALOG)
    assert merch_depth(10, []) == 10
    assert merch_depth(10, [rule(action="block", items=["p1"])]) == 60


def test_block_removes_listed_and_selected_items_and_the_list_refills() -> None:
    out = apply_rules(BASE, 5, CATALOG, [rule(action="block", items=["p0"], item_brand="Gorilla")])
    # p0 listed, p10 (Gorilla) selected; a selector without item_category acts on the brand alone
    assert listed(out) == ["p2", "p5", "p9", "p3", "p7"]
    assert [c.reason for c in out] == ["r:p2", "r:p5", "r:p9", "r:p3", "r:p7"]


def test_boost_lifts_by_weight_times_the_score_range_and_says_promoted() -> None:
    # range 1.0 - 0.4 = 0.6; p7 0.4 + 0.5 * 0.6 = 0.7 ties p9 at 0.7, and "p7" < "p9"
    out = apply_rules(BASE, 5, CATALOG, [rule(action="boost", items=["p7"], weight=0.5)])
    assert listed(out) == ["p0", "p2", "p5", "p7", "p9"]
    assert out[3].score == pytest.approx(0.7)
    assert out[3].reason == PROMOTED
    assert [c.reason for c in out if c.item != CATALOG.index_of["p7"]] == ["r:p0", "r:p2", "r:p5", "r:p9"]
    top = apply_rules(BASE, 3, CATALOG, [rule(action="boost", item_category="Filament", weight=1.0)])
    assert listed(top) == ["p5", "p0", "p7"]  # both filaments above everything else... p5 1.4, p7 1.0
    assert [c.reason for c in top] == [PROMOTED, "r:p0", PROMOTED]


def test_bury_moves_down_and_keeps_the_reason_and_boost_and_bury_add_up() -> None:
    out = apply_rules(BASE, 7, CATALOG, [rule(action="bury", items=["p0"], weight=1.5)])
    assert listed(out)[-1] == "p0"
    assert out[-1].reason == "r:p0"
    both = [
        rule("a", action="bury", items=["p0"], weight=1.5),
        rule("b", action="boost", items=["p0"], weight=1.5),
    ]
    out = apply_rules(BASE, 7, CATALOG, both)
    assert listed(out)[0] == "p0"
    assert out[0].score == pytest.approx(1.0)
    assert out[0].reason == "r:p0"


def test_pin_places_items_at_their_positions_even_when_recall_missed_them() -> None:
    rules = [
        rule("a", action="pin", items=["p11", "p4"], position=2),  # p11, p4 not among the candidates
        rule("b", action="pin", items=["p9"], position=1),  # already a candidate: moved, not duplicated
    ]
    out = apply_rules(BASE, 5, CATALOG, rules)
    assert listed(out) == ["p9", "p11", "p4", "p0", "p2"]
    assert [c.reason for c in out] == [PROMOTED, PROMOTED, PROMOTED, "r:p0", "r:p2"]
    assert out[0].channels == ["itemcf"]
    assert out[1].channels == [MERCH_CHANNEL]
    scores = [c.score for c in out]
    assert scores == sorted(scores, reverse=True)  # pins take their neighbour's score


def test_pins_past_the_list_append_and_past_k_show_nothing() -> None:
    short = ranked(("p0", 1.0), ("p2", 0.5))
    out = apply_rules(short, 5, CATALOG, [rule(action="pin", items=["p9"], position=5)])
    assert listed(out) == ["p0", "p2", "p9"]
    out = apply_rules(BASE, 3, CATALOG, [rule(action="pin", items=["p4"], position=4)])
    assert listed(out) == ["p0", "p2", "p5"]
    assert listed(apply_rules([], 3, CATALOG, [rule(action="pin", items=["p4"], position=2)])) == ["p4"]


def test_pins_obey_filters_seen_items_blocks_and_unknown_ids() -> None:
    rules = [
        rule("a", action="pin", items=["p6", "p2", "gone", "p8"], position=1),
        rule("b", action="block", items=["p8"]),
    ]
    # filament only: p2 (a beaker) is filtered, p6 seen, "gone" unknown, p8 blocked: nothing is pinned
    out = apply_rules(BASE, 3, CATALOG, rules, seen=[CATALOG.index_of["p6"]], category="filament")
    assert listed(out) == ["p5", "p7"]
    # seen items are allowed back when exclude_seen is off
    out = apply_rules(
        BASE, 3, CATALOG, rules, seen=[CATALOG.index_of["p6"]], exclude_seen=False, brand="hatchbox"
    )
    assert listed(out) == ["p6", "p5"]


def test_application_is_deterministic_whatever_the_order_of_rules() -> None:
    rules = [
        rule("a", action="pin", items=["p4"], position=2),
        rule("b", action="pin", items=["p1"], position=2),
        rule("c", action="boost", items=["p3"], weight=0.2),
        rule("d", action="bury", item_brand="SEOH", weight=0.3),
    ]
    first = apply_rules(BASE, 6, CATALOG, rules)
    assert listed(first)[1:3] == ["p4", "p1"]  # equal positions follow each other by rule id
    assert apply_rules(BASE, 6, CATALOG, list(reversed(rules))) == first
