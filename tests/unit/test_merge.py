from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.domain import Candidate
from shoprec.recall.merge import DEFAULT_BUDGET, MergePolicy, merge_candidates


def cands(channel: str, *pairs: tuple[int, float]) -> tuple[str, list[Candidate]]:
    return channel, [
        Candidate(item=i, score=s, channels=[channel], reason=f"{channel} {i}") for i, s in pairs
    ]


POLICY = MergePolicy(weights={"a": 1.0, "b": 0.5}, quotas={}, budget=10)


def test_scores_are_min_max_normalised_per_channel_then_weighted_and_summed() -> None:
    merged = merge_candidates(
        [cands("a", (1, 10.0), (2, 6.0), (3, 2.0)), cands("b", (2, 0.9), (4, 0.1))], POLICY
    )
    scores = {c.item: c.score for c in merged}
    # a: (10, 6, 2) -> (1, 0.5, 0); b: (0.9, 0.1) -> (1, 0) weighted 0.5
    assert scores == pytest.approx({1: 1.0, 2: 0.5 + 0.5, 3: 0.0, 4: 0.0})


def test_items_are_deduplicated_and_keep_every_channel_in_channel_order() -> None:
    merged = merge_candidates([cands("a", (1, 3.0), (2, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY)
    assert sorted(c.item for c in merged) == [1, 2]
    assert all(c.channels == ["a", "b"] for c in merged)


def test_reason_comes_from_the_channel_contributing_most() -> None:
    merged = merge_candidates(
        [cands("a", (1, 3.0), (2, 2.0), (3, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY
    )
    by_item = {c.item: c.reason for c in merged}
    assert by_item[1] == "a 1"  # a: 1.0, b: 0.0
    assert by_item[2] == "a 2"  # a: 0.5, b: 0.5 -> tie keeps the earlier channel
    merged = merge_candidates([cands("a", (1, 3.0), (2, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY)
    assert {c.item: c.reason for c in merged}[2] == "b 2"  # a: 0.0, b: 0.5


def test_sorted_by_score_then_item_and_cut_to_the_budget() -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 1.0}, quotas={}, budget=4)
    merged = merge_candidates(
        [cands("a", (5, 1.0), (4, 1.0), (2, 0.5)), cands("b", (1, 1.0), (9, 0.0))], policy
    )
    assert [c.item for c in merged] == [1, 4, 5, 2]


def test_equal_scores_in_a_channel_normalise_to_one() -> None:
    merged = merge_candidates([cands("b", (1, 7.0), (2, 7.0))], POLICY)
    assert [c.score for c in merged] == [0.5, 0.5]


def test_quota_limits_what_each_channel_contributes() -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 1.0}, quotas={"a": 2}, budget=10)
    merged = merge_candidates([cands("a", (1, 3.0), (2, 2.0), (3, 1.0)), cands("b", (7, 1.0))], policy)
    assert sorted(c.item for c in merged) == [1, 2, 7]
    assert policy.quota("a") == 2
    assert policy.quota("b") == 10  # no quota: up to the budget


def test_unknown_channels_get_the_default_weight_and_inputs_are_not_modified() -> None:
    name, items = cands("zzz", (1, 2.0), (2, 1.0))
    merged = merge_candidates([(name, items)], MergePolicy(weights={}, default_weight=2.0))
    assert [c.score for c in merged] == [2.0, 0.0]
    assert [c.score for c in items] == [2.0, 1.0]
    assert merged[0] is not items[0]


def test_a_channel_listing_an_item_twice_counts_it_once() -> None:
    merged = merge_candidates([cands("a", (1, 2.0), (1, 2.0), (2, 0.0))], POLICY)
    assert [(c.item, c.score, c.channels) for c in merged] == [(1, 1.0, ["a"]), (2, 0.0, ["a"])]


def test_defaults_and_validation() -> None:
    assert MergePolicy().budget == DEFAULT_BUDGET == 300
    assert merge_candidates([]) == []
    with pytest.raises(ValueError, match="budget"):
        MergePolicy(budget=-1)
    with pytest.raises(ValueError, match="weights"):
        MergePolicy(weights={"a": -1.0})


def reference_merge(lists: list[tuple[str, list[Candidate]]], policy: MergePolicy) -> list[Candidate]:
    """The merge rule written out item by item."""
    merged: dict[int, Candidate] = {}
    best: dict[int, float] = {}
    for name, candidates in lists:
        head = candidates[: policy.quota(name)]
        if not head:
            continue
        lo, hi = min(c.score for c in head), max(c.score for c in head)
        for c in head:
            part = policy.weight(name) * ((c.score - lo) / (hi - lo) if hi > lo else 1.0)
            m = merged.setdefault(c.item, Candidate(item=c.item, score=0.0, channels=[], reason=c.reason))
            if name in m.channels:
                continue
            m.score += part
            m.channels.append(name)
            if part > best.get(c.item, -1.0):
                best[c.item] = part
                m.reason = c.reason
    return sorted(merged.values(), key=lambda c: (-c.score, c.item))[: policy.budget]


channel_lists = st.lists(st.tuples(st.integers(0, 15), st.integers(-3, 3).map(float)), max_size=12).map(
    lambda pairs: [Candidate(item=i, score=s, reason=f"{i}/{s}") for i, s in pairs]
)


@settings(max_examples=80, deadline=None)
@given(channel_lists, channel_lists, channel_lists, st.integers(0, 20), st.integers(0, 10))
def test_merge_matches_the_item_by_item_rule(
    a: list[Candidate], b: list[Candidate], c: list[Candidate], budget: int, quota: int
) -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 0.5, "c": 0.25}, quotas={"b": quota}, budget=budget)
    lists = [("a", a), ("b", b), ("c", c)]
    got = merge_candidates(lists, policy)
    want = reference_merge(lists, policy)
    assert [(x.item, x.channels, x.reason) for x in got] == [(x.item, x.channels, x.reason) for x in want]
    assert [x.score for x in got] == pytest.approx([x.score for x in want])
