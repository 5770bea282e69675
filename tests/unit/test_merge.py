from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.recall.channels import Recalled
from shoprec.recall.merge import DEFAULT_BUDGET, Merged, MergePolicy, merge_candidates


def cands(channel: str, *pairs: tuple[int, float]) -> tuple[str, Recalled]:
    items = np.asarray([i for i, _ in pairs], dtype=np.int64)
    scores = np.asarray([s for _, s in pairs], dtype=np.float32)
    return channel, Recalled(items, scores)


def as_dict(merged: Merged) -> dict[int, float]:
    return dict(zip(merged.items.tolist(), merged.scores.tolist(), strict=True))


POLICY = MergePolicy(weights={"a": 1.0, "b": 0.5}, quotas={}, budget=10)


def test_scores_are_min_max_normalised_per_channel_then_weighted_and_summed() -> None:
    merged = merge_candidates(
        [cands("a", (1, 10.0), (2, 6.0), (3, 2.0)), cands("b", (2, 0.9), (4, 0.1))], POLICY
    )
    # a: (10, 6, 2) -> (1, 0.5, 0); b: (0.9, 0.1) -> (1, 0) weighted 0.5
    assert as_dict(merged) == pytest.approx({1: 1.0, 2: 0.5 + 0.5, 3: 0.0, 4: 0.0})


def test_items_are_deduplicated_and_record_every_channel_and_its_position() -> None:
    merged = merge_candidates([cands("a", (1, 3.0), (2, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY)
    assert sorted(merged.items.tolist()) == [1, 2]
    assert [merged.channels(r) for r in range(merged.size)] == [["a", "b"], ["a", "b"]]
    ranks = {i: r.tolist() for i, r in zip(merged.items.tolist(), merged.ranks, strict=True)}
    assert ranks == {1: [0, 1], 2: [1, 0]}


def test_the_best_channel_is_the_one_contributing_most() -> None:
    merged = merge_candidates(
        [cands("a", (1, 3.0), (2, 2.0), (3, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY
    )
    best = dict(zip(merged.items.tolist(), [merged.names[b] for b in merged.best.tolist()], strict=True))
    assert best[1] == "a"  # a: 1.0, b: 0.0
    assert best[2] == "a"  # a: 0.5, b: 0.5 -> tie keeps the earlier channel
    merged = merge_candidates([cands("a", (1, 3.0), (2, 1.0)), cands("b", (2, 5.0), (1, 1.0))], POLICY)
    assert merged.names[int(merged.best[merged.items.tolist().index(2)])] == "b"  # a: 0.0, b: 0.5


def test_sorted_by_score_then_item_and_cut_to_the_budget() -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 1.0}, quotas={}, budget=4)
    merged = merge_candidates(
        [cands("a", (5, 1.0), (4, 1.0), (2, 0.5)), cands("b", (1, 1.0), (9, 0.0))], policy
    )
    assert merged.items.tolist() == [1, 4, 5, 2]


def test_equal_scores_in_a_channel_normalise_to_one() -> None:
    merged = merge_candidates([cands("b", (1, 7.0), (2, 7.0))], POLICY)
    assert merged.scores.tolist() == [0.5, 0.5]


def test_quota_limits_what_each_channel_contributes() -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 1.0}, quotas={"a": 2}, budget=10)
    merged = merge_candidates([cands("a", (1, 3.0), (2, 2.0), (3, 1.0)), cands("b", (7, 1.0))], policy)
    assert sorted(merged.items.tolist()) == [1, 2, 7]
    assert policy.quota("a") == 2
    assert policy.quota("b") == 10  # no quota: up to the budget


def test_unknown_channels_get_the_default_weight_and_inputs_are_not_modified() -> None:
    name, recalled = cands("zzz", (1, 2.0), (2, 1.0))
    merged = merge_candidates([(name, recalled)], MergePolicy(weights={}, default_weight=2.0))
    assert merged.scores.tolist() == [2.0, 0.0]
    assert recalled.scores.tolist() == [2.0, 1.0]


def test_a_channel_listing_an_item_twice_counts_it_once_and_a_channel_named_twice_once() -> None:
    merged = merge_candidates([cands("a", (1, 2.0), (1, 2.0), (2, 0.0))], POLICY)
    assert [(i, s, merged.channels(r)) for r, (i, s) in enumerate(as_dict(merged).items())] == [
        (1, 1.0, ["a"]),
        (2, 0.0, ["a"]),
    ]
    twice = merge_candidates([cands("a", (1, 2.0), (2, 1.0)), cands("a", (3, 9.0))], POLICY)
    assert twice.items.tolist() == [1, 2]


def test_defaults_and_validation() -> None:
    assert MergePolicy().budget == DEFAULT_BUDGET == 300
    assert merge_candidates([]).size == 0
    assert merge_candidates([("a", Recalled.none())]).size == 0
    with pytest.raises(ValueError, match="budget"):
        MergePolicy(budget=-1)
    with pytest.raises(ValueError, match="weights"):
        MergePolicy(weights={"a": -1.0})


@dataclass
class Row:
    item: int
    score: float = 0.0
    channels: list[str] = field(default_factory=list)
    best: str = ""
    best_part: float = -1.0


def reference_merge(lists: list[tuple[str, list[tuple[int, float]]]], policy: MergePolicy) -> list[Row]:
    """The merge rule written out item by item."""
    rows: dict[int, Row] = {}
    for name, pairs in lists:
        head = pairs[: policy.quota(name)]
        if not head:
            continue
        lo, hi = min(s for _, s in head), max(s for _, s in head)
        for item, score in head:
            part = policy.weight(name) * ((score - lo) / (hi - lo) if hi > lo else 1.0)
            row = rows.setdefault(item, Row(item))
            if name in row.channels:
                continue
            row.score += part
            row.channels.append(name)
            if part > row.best_part:
                row.best, row.best_part = name, part
    return sorted(rows.values(), key=lambda r: (-r.score, r.item))[: policy.budget]


Pairs = list[tuple[int, float]]
channel_lists = st.lists(st.tuples(st.integers(0, 15), st.integers(-3, 3).map(float)), max_size=12)


@settings(max_examples=80, deadline=None)
@given(channel_lists, channel_lists, channel_lists, st.integers(0, 20), st.integers(0, 10))
def test_merge_matches_the_item_by_item_rule(
    a: list[tuple[int, float]],
    b: list[tuple[int, float]],
    c: list[tuple[int, float]],
    budget: int,
    quota: int,
) -> None:
    policy = MergePolicy(weights={"a": 1.0, "b": 0.5, "c": 0.25}, quotas={"b": quota}, budget=budget)
    lists = [("a", a), ("b", b), ("c", c)]
    got = merge_candidates([cands(name, *pairs) for name, pairs in lists], policy)
    want = reference_merge(lists, policy)
    assert [
        (item, got.channels(r), got.names[int(got.best[r])]) for r, item in enumerate(got.items.tolist())
    ] == [(row.item, row.channels, row.best) for row in want]
    assert got.scores.tolist() == pytest.approx([row.score for row in want])
