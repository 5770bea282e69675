"""Evaluation protocols on tiny hand-made cases with fixed scorers, plus brute-force cross-checks."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shoprec.evaluation.protocol import EvalResult, _sample_negatives, evaluate, top_k_items

N_ITEMS = 6
DESCENDING = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], dtype=np.float32)  # item i ranks i-th


def h(*items: int) -> np.ndarray:
    return np.array(items, dtype=np.int64)


def constant_scorer(row: np.ndarray) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Every user gets the same scores."""

    def score(batch: list[np.ndarray]) -> np.ndarray:
        return np.tile(np.asarray(row, dtype=np.float32), (len(batch), 1))

    return score


class TableScorer:
    """Row u of ``table`` for the u-th user evaluated (evaluate walks users in order)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float32)
        self.offset = 0

    def __call__(self, batch: list[np.ndarray]) -> np.ndarray:
        out = self.table[self.offset : self.offset + len(batch)]
        self.offset += len(batch)
        return out


def one_hot_scorer(targets: np.ndarray, n_items: int, value: float) -> TableScorer:
    table = np.zeros((len(targets), n_items), dtype=np.float32)
    table[np.arange(len(targets)), targets] = value
    return TableScorer(table)


def ref_rank(scores: np.ndarray, history: np.ndarray, target: int) -> int:
    """Brute force: sort the non-excluded items by (-score, index) and find the target."""
    excluded = set(history.tolist()) - {target}
    order = sorted((i for i in range(len(scores)) if i not in excluded), key=lambda i: (-scores[i], i))
    return order.index(target)


# ---------------------------------------------------------------------------------------------------- full


class TestFull:
    def test_history_items_are_excluded(self) -> None:
        # scores descend with the index; items 0, 1 are in the history, target 3.
        # Remaining ranking: 2, 3, 4, 5 -> rank 1 (it would be 3 without the exclusion).
        r = evaluate(constant_scorer(DESCENDING), [h(0, 1)], h(3), N_ITEMS, "full", ks=(1, 2))
        assert r.metrics["HR@1"] == 0.0
        assert r.metrics["HR@2"] == 1.0
        assert r.metrics["MRR"] == 0.5
        # 4 candidates -> 3 negatives, 2 of them below the target
        assert r.metrics["AUC"] == pytest.approx(2 / 3)
        assert r.target_in_history == 0

    def test_target_in_history_stays_rankable_and_is_counted(self) -> None:
        # history [3, 0], target 3 (a repeat purchase): 0 is excluded, 3 is not. Ranking 1, 2, 3, 4, 5.
        r = evaluate(constant_scorer(DESCENDING), [h(3, 0), h(1)], h(3, 0), N_ITEMS, "full", ks=(3,))
        # user 0: rank 2 -> hit@3, RR 1/3. user 1: target 0 ranks first (1 is excluded) -> RR 1.
        assert r.metrics["HR@3"] == 1.0
        assert r.metrics["MRR"] == pytest.approx((1 / 3 + 1) / 2)
        # user 0: 5 candidates, rank 2 -> 2/4; user 1: 5 candidates, rank 0 -> 1
        assert r.metrics["AUC"] == pytest.approx((0.5 + 1.0) / 2)
        assert r.target_in_history == 1

    def test_target_repeated_many_times_counted_once(self) -> None:
        r = evaluate(constant_scorer(DESCENDING), [h(3, 3, 3)], h(3), N_ITEMS, "full", ks=(1,))
        assert r.target_in_history == 1
        assert r.metrics["MRR"] == pytest.approx(1 / 4)  # items 0, 1, 2 ahead

    def test_ties_break_by_item_index(self) -> None:
        flat = constant_scorer(np.ones(N_ITEMS))
        # all equal: rank = number of lower-indexed candidates
        assert evaluate(flat, [h()], h(4), N_ITEMS, "full", ks=(1,)).metrics["MRR"] == pytest.approx(1 / 5)
        assert evaluate(flat, [h(1)], h(4), N_ITEMS, "full", ks=(1,)).metrics["MRR"] == pytest.approx(1 / 4)
        assert evaluate(flat, [h()], h(0), N_ITEMS, "full", ks=(1,)).metrics["MRR"] == 1.0
        # mixed: items 1 and 3 score higher, item 0 ties and has a lower index -> rank 3
        mixed = constant_scorer(np.array([0.5, 0.9, 0.5, 0.9, 0.5, 0.1]))
        assert evaluate(mixed, [h()], h(2), N_ITEMS, "full", ks=(1,)).metrics["MRR"] == pytest.approx(1 / 4)

    def test_coverage_known_case(self) -> None:
        # Both users get the same scores; user 1 has item 0 in its history.
        # top-2: user 0 -> [0, 1], user 1 -> [1, 2]: union {0, 1, 2} -> 3/6. top-1: {0, 1} -> 2/6.
        r = evaluate(constant_scorer(DESCENDING), [h(), h(0)], h(5, 5), N_ITEMS, "full", ks=(1, 2))
        assert r.metrics["Coverage@2"] == pytest.approx(0.5)
        assert r.metrics["Coverage@1"] == pytest.approx(2 / 6)

    def test_perfect_scorer(self) -> None:
        targets = h(0, 3, 5, 2)
        hist = [h(1, 2), h(3), h(), h(0, 4)]
        r = evaluate(one_hot_scorer(targets, N_ITEMS, 1.0), hist, targets, N_ITEMS, "full", ks=(1, 3))
        for k in (1, 3):
            assert r.metrics[f"HR@{k}"] == 1.0
            assert r.metrics[f"NDCG@{k}"] == 1.0
            assert r.metrics[f"R@{k}"] == 1.0
            assert r.metrics[f"P@{k}"] == pytest.approx(1 / k)
            assert r.metrics[f"F1@{k}"] == pytest.approx(2 / (k + 1))
        assert r.metrics["MRR"] == 1.0
        assert r.metrics["AUC"] == 1.0

    def test_reversed_scorer(self) -> None:
        targets = h(0, 3, 5)
        hist = [h(1, 2), h(), h(4)]
        r = evaluate(one_hot_scorer(targets, N_ITEMS, -1.0), hist, targets, N_ITEMS, "full", ks=(1,))
        assert r.metrics["AUC"] == 0.0
        assert r.metrics["HR@1"] == 0.0
        # candidates: 4, 6, 5 -> the target is last
        assert r.metrics["MRR"] == pytest.approx((1 / 4 + 1 / 6 + 1 / 5) / 3)

    def test_minus_inf_scores_are_not_confused_with_exclusion(self) -> None:
        # The target scores -inf like every other item; item 1 is excluded, so only item 0 is ahead.
        scores = np.full(N_ITEMS, -np.inf)
        r = evaluate(constant_scorer(scores), [h(1)], h(2), N_ITEMS, "full", ks=(1,))
        assert r.metrics["MRR"] == 0.5

    def test_nan_raises(self) -> None:
        scores = DESCENDING.copy()
        scores[4] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            evaluate(constant_scorer(scores), [h()], h(0), N_ITEMS, "full", ks=(1,))

    def test_scorer_output_not_modified(self) -> None:
        table = np.tile(DESCENDING, (2, 1))
        scorer = TableScorer(table)
        evaluate(scorer, [h(0, 1), h(2)], h(3, 4), N_ITEMS, "full", ks=(2,))
        np.testing.assert_array_equal(scorer.table, np.tile(DESCENDING, (2, 1)))

    def test_metric_names(self) -> None:
        r = evaluate(constant_scorer(DESCENDING), [h()], h(0), N_ITEMS, "full", ks=(5, 1))
        assert list(r.metrics) == [
            *(f"{m}@1" for m in ("HR", "NDCG", "P", "R", "F1", "Coverage")),
            *(f"{m}@5" for m in ("HR", "NDCG", "P", "R", "F1", "Coverage")),
            "MRR",
            "AUC",
        ]
        assert r.protocol == "full"
        assert r.inflated is False


@st.composite
def full_case(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, int]:
    n_items = draw(st.integers(2, 12))
    u = draw(st.integers(1, 8))
    scores = draw(hnp.arrays(np.float32, (u, n_items), elements=st.sampled_from([0.0, 1.0, 2.0, -np.inf])))
    targets = draw(hnp.arrays(np.int64, (u,), elements=st.integers(0, n_items - 1)))
    hist = [
        draw(hnp.arrays(np.int64, st.integers(0, n_items + 2), elements=st.integers(0, n_items - 1)))
        for _ in range(u)
    ]
    batch = draw(st.integers(1, 4))
    return scores, hist, targets, batch


@settings(max_examples=60, deadline=None)
@given(full_case())
def test_full_matches_brute_force(case: tuple[np.ndarray, list[np.ndarray], np.ndarray, int]) -> None:
    scores, hist, targets, batch = case
    n_items = scores.shape[1]
    ks = tuple(sorted({1, min(3, n_items)}))
    r = evaluate(TableScorer(scores), hist, targets, n_items, "full", ks=ks, batch_size=batch)
    ranks = np.array([ref_rank(s, hh, int(t)) for s, hh, t in zip(scores, hist, targets, strict=True)])
    n_cand = np.array(
        [n_items - len(set(hh.tolist()) - {int(t)}) for hh, t in zip(hist, targets, strict=True)]
    )
    assert r.metrics["MRR"] == pytest.approx(float(np.mean(1 / (ranks + 1))))
    for k in ks:
        assert r.metrics[f"HR@{k}"] == pytest.approx(float(np.mean(ranks < k)))
    auc = np.where(n_cand > 1, (n_cand - 1 - ranks) / np.maximum(n_cand - 1, 1), 1.0)
    assert r.metrics["AUC"] == pytest.approx(float(np.mean(auc)))
    assert r.target_in_history == sum(int(t) in hh.tolist() for hh, t in zip(hist, targets, strict=True))
    # coverage from brute-force top-k lists over the same exclusion
    top: set[int] = set()
    for s, hh, t in zip(scores, hist, targets, strict=True):
        excluded = set(hh.tolist()) - {int(t)}
        order = sorted((i for i in range(n_items) if i not in excluded), key=lambda i: (-s[i], i))
        top.update(order[: ks[-1]])
    assert r.metrics[f"Coverage@{ks[-1]}"] == pytest.approx(len(top) / n_items)


# ------------------------------------------------------------------------------------------------- top-k


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, 6), st.integers(1, 15)),
        elements=st.sampled_from([0.0, 0.5, 1.0, -1.0, np.inf, -np.inf, np.nan]),
    ),
    st.data(),
)
def test_top_k_matches_brute_force_sort(scores: np.ndarray, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, scores.shape[1]))
    got = top_k_items(scores, k)
    assert got.shape == (scores.shape[0], k)
    for row, out in zip(scores, got, strict=True):
        valid = [i for i in range(len(row)) if not np.isnan(row[i])]
        expected = sorted(valid, key=lambda i: (-row[i], i))[:k]
        expected += [-1] * (k - len(expected))
        assert out.tolist() == expected


def test_top_k_large_random_rows() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 50, (40, 500)).astype(np.float32)  # many ties at the cut
    got = top_k_items(scores, 20)
    expected = np.lexsort((np.broadcast_to(np.arange(500), scores.shape), -scores), axis=1)[:, :20]
    np.testing.assert_array_equal(got, expected)


def test_top_k_validation() -> None:
    with pytest.raises(ValueError, match="k"):
        top_k_items(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="scores"):
        top_k_items(np.zeros(3), 1)


# ------------------------------------------------------------------------------------------------- sampled


class TestSampled:
    def test_negatives_exclude_history_and_target(self) -> None:
        # 10 items; history 0..4, target 5 -> the pool is exactly {6, 7, 8, 9} and n_negatives=4 takes
        # all of it. History items score highest: if any were sampled the target would not rank first.
        scores = np.array([9, 9, 9, 9, 9, 5, 1, 1, 1, 1], dtype=np.float32)
        r = evaluate(constant_scorer(scores), [h(0, 1, 2, 3, 4)], h(5), 10, "sampled", ks=(1,), n_negatives=4)
        assert r.metrics["HR@1"] == 1.0
        assert r.metrics["AUC"] == 1.0

    def test_sampler_direct(self) -> None:
        rng = np.random.default_rng(0)
        hist = [h(0, 1, 1, 7), h(), h(3, 9)]
        targets = h(7, 2, 4)
        rows = np.repeat(np.arange(3), [len(x) for x in hist])
        negs = _sample_negatives(rng, rows, np.concatenate(hist), targets, 12, 8, 0)
        assert negs.shape == (3, 8)
        for u, row in enumerate(negs):
            assert len(set(row.tolist())) == 8  # without replacement
            assert not set(row.tolist()) & (set(hist[u].tolist()) | {int(targets[u])})
            assert row.min() >= 0
            assert row.max() < 12

    def test_sampler_uniform(self) -> None:
        # 3000 users, history 0..4, target 5, 20 items: 14 allowed items, 3 draws each -> ~643 per item
        n = 3000
        rows = np.repeat(np.arange(n), 5)
        cols = np.tile(np.arange(5), n)
        negs = _sample_negatives(np.random.default_rng(1), rows, cols, np.full(n, 5), 20, 3, 0)
        counts = np.bincount(negs.ravel(), minlength=20)
        assert counts[:6].sum() == 0
        assert np.all(np.abs(counts[6:] - n * 3 / 14) < 0.15 * n * 3 / 14)

    def _run(self, seed: int, batch_size: int = 256) -> EvalResult:
        rng = np.random.default_rng(42)
        table = rng.random((30, 50)).astype(np.float32)
        hist = [rng.integers(0, 50, 5) for _ in range(30)]
        targets = rng.integers(0, 50, 30)
        return evaluate(
            TableScorer(table),
            hist,
            targets,
            50,
            "sampled",
            ks=(1, 5),
            n_negatives=10,
            seed=seed,
            batch_size=batch_size,
        )

    def test_deterministic_for_a_seed_and_batch_size_independent(self) -> None:
        a = self._run(seed=7)
        assert self._run(seed=7).metrics == a.metrics
        assert self._run(seed=7, batch_size=4).metrics == a.metrics

    def test_sampler_differs_across_seeds(self) -> None:
        rows, cols, targets = h(0, 0), h(1, 2), h(3)
        a = _sample_negatives(np.random.default_rng(0), rows, cols, targets, 1000, 20, 0)
        b = _sample_negatives(np.random.default_rng(0), rows, cols, targets, 1000, 20, 0)
        c = _sample_negatives(np.random.default_rng(1), rows, cols, targets, 1000, 20, 0)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert self._run(seed=1).metrics != self._run(seed=2).metrics

    def test_perfect_and_reversed(self) -> None:
        targets = h(0, 3, 7, 2)
        hist = [h(1), h(3, 4), h(), h(0, 5)]
        good = evaluate(
            one_hot_scorer(targets, 10, 1.0), hist, targets, 10, "sampled", ks=(1, 3), n_negatives=5
        )
        assert (
            good.metrics["HR@1"]
            == good.metrics["NDCG@3"]
            == good.metrics["MRR"]
            == good.metrics["AUC"]
            == 1.0
        )
        bad = evaluate(
            one_hot_scorer(targets, 10, -1.0), hist, targets, 10, "sampled", ks=(1,), n_negatives=5
        )
        assert bad.metrics["AUC"] == 0.0
        assert bad.metrics["MRR"] == pytest.approx(1 / 6)

    def test_ties_break_by_item_index(self) -> None:
        # all scores equal, 3 negatives from {0, 1, 3, 4} (2 is the target): rank = #negatives below 2.
        # With n_negatives=4 every allowed item is drawn -> rank 2 exactly.
        r = evaluate(constant_scorer(np.ones(5)), [h()], h(2), 5, "sampled", ks=(1,), n_negatives=4)
        assert r.metrics["MRR"] == pytest.approx(1 / 3)

    def test_result_labels(self) -> None:
        r = self._run(seed=0)
        assert r.inflated is True
        assert r.protocol == "sampled"
        assert not any(name.startswith("Coverage") for name in r.metrics)
        assert r.target_in_history == r.to_json_dict()["target_in_history"]
        assert r.n_negatives == 10
        assert r.seed == 0

    def test_pool_too_small(self) -> None:
        with pytest.raises(ValueError, match="n_negatives"):
            evaluate(
                constant_scorer(DESCENDING), [h(0, 1, 2)], h(3), N_ITEMS, "sampled", ks=(1,), n_negatives=3
            )

    def test_nan_raises(self) -> None:
        scores = DESCENDING.copy()
        scores[0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            evaluate(constant_scorer(scores), [h()], h(1), N_ITEMS, "sampled", ks=(1,), n_negatives=2)


# ------------------------------------------------------------------------------------------- result, errors


def test_to_json_dict_round_trips() -> None:
    r = evaluate(constant_scorer(DESCENDING), [h(3), h()], h(3, 1), N_ITEMS, "full", ks=(2,))
    d = r.to_json_dict()
    assert d["protocol"] == "full"
    assert d["users"] == 2
    assert d["metrics"] == r.metrics
    assert d["target_in_history"] == 1
    assert d["inflated"] is False
    assert "n_negatives" not in d
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(AttributeError):
        r.users = 3  # type: ignore[misc]


def test_progress_reports_each_batch() -> None:
    calls: list[tuple[int, int]] = []
    hist = [h() for _ in range(5)]
    evaluate(
        constant_scorer(DESCENDING),
        hist,
        h(0, 1, 2, 3, 4),
        N_ITEMS,
        "full",
        ks=(1,),
        batch_size=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "loo"}, "protocol"),
        ({"ks": ()}, "ks"),
        ({"ks": (0,)}, "ks"),
        ({"ks": (7,)}, "ks"),
        ({"targets": h(0, 1)}, "targets"),
        ({"targets": h(6)}, "targets"),
        ({"histories": [h(9)]}, r"histories\[0\]"),
        ({"histories": [np.array([0.5])]}, r"histories\[0\]"),
        ({"histories": [], "targets": h()}, "empty"),
        ({"n_items": 0}, "n_items"),
        ({"batch_size": 0}, "batch_size"),
        ({"protocol": "sampled", "n_negatives": 0}, "n_negatives"),
        ({"protocol": "sampled", "n_negatives": 3, "ks": (5,)}, "ks"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "histories": [h(1)],
        "targets": h(0),
        "n_items": N_ITEMS,
        "protocol": "full",
        "ks": (1,),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate(constant_scorer(DESCENDING), **args)  # type: ignore[arg-type]


def test_scorer_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate(lambda batch: np.zeros((len(batch), 3)), [h()], h(0), N_ITEMS, "full", ks=(1,))
