"""Fitting the fusion: the leakage guard, weight tuning, the LightGBM stacker and its numpy twin."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data import Dataset, leave_one_out
from shoprec.ranking.features import FEATURES, CandidateSignals, feature_matrix
from shoprec.ranking.fusion import StackingFusion
from shoprec.training.fusion import (
    FusionExamples,
    LeakageError,
    check_fitted_on_train,
    choose,
    lightgbm_ensemble,
    ndcg_within,
    pointwise_metrics,
    split_examples,
    train_stacker,
    tune_weights,
)

lgb = pytest.importorskip("lightgbm")


def tiny_split() -> Dataset:
    seqs = [np.array(s, dtype=np.int64) for s in ([0, 1, 2, 3], [1, 2, 3], [2, 3, 0, 1, 4], [0, 4])]
    return Dataset(
        name="tiny",
        source="tiny",
        item_ids=[f"i{i}" for i in range(5)],
        user_ids=[f"u{u}" for u in range(4)],
        sequences=seqs,
    )


def test_the_leakage_guard_accepts_training_items_and_refuses_validation_or_test_items() -> None:
    split = leave_one_out(tiny_split())
    check_fitted_on_train(split, split.train, "item-CF")
    check_fitted_on_train(split, [s[:1] for s in split.train], "a model fitted on less")
    with pytest.raises(LeakageError, match=r"item-CF: user 0 was fitted on 3 items, more than the 2"):
        check_fitted_on_train(split, split.train_with_valid(), "item-CF")
    with pytest.raises(LeakageError, match="user 2"):
        check_fitted_on_train(split, [*split.train[:2], split.sequences[2], split.train[3]], "popularity")
    shuffled = [s[::-1].copy() for s in split.train]
    with pytest.raises(LeakageError, match="user 0"):
        check_fitted_on_train(split, shuffled, "a model fitted on other items")
    with pytest.raises(LeakageError, match="fitted on 3 users"):
        check_fitted_on_train(split, split.train[:3], "item-CF")


def signals(scores: dict[str, list[float]], target: int) -> tuple[CandidateSignals, np.ndarray]:
    n = len(scores["ranker"])
    f32 = np.float32
    s = CandidateSignals(
        items=np.arange(n),
        history_length=3,
        recall_score=np.zeros(n, dtype=f32),
        found=np.ones((n, 4), dtype=np.bool_),
        channel_rank=np.tile(np.arange(n, dtype=f32)[:, None], (1, 4)),
        signals=np.column_stack(
            [scores["itemcf"], scores["embedding"], scores["popularity"], scores.get("content", [0.0] * n)]
        ).astype(f32),
        itemcf_last=np.zeros(n, dtype=f32),
        itemcf_recency=np.zeros(n, dtype=f32),
        popularity_percentile=np.zeros(n, dtype=f32),
        ranker=np.asarray(scores["ranker"], dtype=f32),
    )
    return s, np.arange(n) == target


def test_ndcg_within_ranks_the_target_among_its_candidates() -> None:
    labels = [np.array([False, True, False]), np.array([True, False, False])]
    # target 2nd (1/log2 3) and 3rd ((1/log2 4) = 0.5) -> mean
    got = ndcg_within([np.array([3.0, 2.0, 1.0]), np.array([1.0, 3.0, 2.0])], labels, k=10)
    assert got == pytest.approx((1 / np.log2(3) + 0.5) / 2)
    assert ndcg_within([np.array([3.0, 2.0, 1.0])], [np.array([False, False, True])], k=2) == 0.0
    assert ndcg_within([np.array([1.0, 1.0])], [np.array([False, True])]) == pytest.approx(1 / np.log2(3))


def test_tuned_weights_follow_the_source_that_finds_the_targets() -> None:
    # The ranker puts each target last; item-CF puts it first: the tuned weights must favour item-CF.
    sets = [
        signals(
            {
                "ranker": [3.0, 2.0, 1.0, 0.0],
                "itemcf": [0.0, 0.1, 0.2, 1.0],
                "embedding": [1.0, 1.0, 1.0, 1.0],
                "popularity": [0.0, 0.0, 0.0, 0.0],
            },
            target=3,
        )
        for _ in range(5)
    ]
    examples = FusionExamples([s for s, _ in sets], [lab for _, lab in sets], list(range(5)), n_users=10)
    weights = tune_weights(examples, np.arange(5))
    assert weights["ranker"] == 1.0
    assert weights["itemcf"] > 1.0  # the smallest weight that lifts every target above the ranker's pick
    assert examples.recall == 0.5
    # Only the sources asked for are weighed (a bundle without text has no content scores).
    assert set(tune_weights(examples, np.arange(5), sources=("ranker", "itemcf"))) == {"ranker", "itemcf"}


def test_the_examples_split_is_seeded_and_disjoint() -> None:
    fit, stop, compare = split_examples(20, seed=1)
    assert sorted([*fit.tolist(), *stop.tolist(), *compare.tolist()]) == list(range(20))
    assert (fit.size, stop.size, compare.size) == (12, 2, 6)
    again = split_examples(20, seed=1)
    assert [a.tolist() for a in again] == [fit.tolist(), stop.tolist(), compare.tolist()]
    assert all(part.size == 1 for part in split_examples(3, seed=0))


def test_a_more_complex_fusion_is_chosen_only_when_it_wins_by_more_than_the_noise() -> None:
    rng = np.random.default_rng(0)
    weighted = rng.random(400)
    jitter = 0.05 * rng.standard_normal(400)  # one standard error of the difference: about 0.0025
    close = {"weighted": weighted, "stacking": weighted + jitter - jitter.mean() + 0.001}
    assert close["stacking"].mean() > weighted.mean()
    assert choose(close) == "weighted"
    assert choose({"weighted": weighted, "stacking": weighted + 0.05}) == "stacking"
    assert choose({"weighted": weighted - 0.05, "stacking": weighted}) == "stacking"
    scores = {"ranker": weighted - 0.1, "equal": weighted - 0.05, "weighted": weighted}
    assert choose(scores, ("ranker", "equal", "weighted")) == "weighted"
    assert choose(dict.fromkeys(("ranker", "equal"), weighted), ("ranker", "equal")) == "ranker"


def random_examples(n_users: int, seed: int) -> FusionExamples:
    """Candidate sets where the target tends to have a high ranker and item-CF score."""
    rng = np.random.default_rng(seed)
    out = FusionExamples(n_users=n_users)
    for u in range(n_users):
        c = 30
        target = int(rng.integers(c))
        boost = np.arange(c) == target
        s, lab = signals(
            {
                "ranker": (rng.normal(size=c) + 1.5 * boost).tolist(),
                "itemcf": (rng.random(c) + 0.8 * boost).tolist(),
                "embedding": rng.normal(size=c).tolist(),
                "popularity": rng.random(c).tolist(),
            },
            target,
        )
        out.signals.append(s)
        out.labels.append(lab)
        out.users.append(u)
    return out


def test_the_served_stacker_predicts_exactly_what_lightgbm_trained() -> None:
    examples = random_examples(120, seed=0)
    model = train_stacker(examples, np.arange(90), np.arange(90, 120), seed=0, max_rounds=60, threads=1)
    X = feature_matrix(examples.signals[90:], FEATURES)
    assert model.rounds >= 1
    assert set(model.importance) == set(FEATURES)
    assert model.parity_max_abs_diff < 1e-9  # served twin == LightGBM on the stop users
    booster = lgb.LGBMRanker(n_estimators=25, num_leaves=15, min_child_samples=5, verbose=-1, n_jobs=1)
    booster.fit(X, np.concatenate(examples.labels[90:]).astype(float), group=[30] * 30)
    twin = lightgbm_ensemble(booster.booster_.dump_model(), len(FEATURES))
    np.testing.assert_allclose(twin.predict(X), booster.booster_.predict(X), rtol=0, atol=1e-9)
    # The stacker ranks the planted targets above chance on held-out users.
    scores = model.ensemble.predict(X).reshape(30, 30)
    ndcg = ndcg_within(list(scores), examples.labels[90:])
    assert ndcg > 0.5
    p = model.probability(X)
    assert p.min() >= 0.0
    assert p.max() <= 1.0
    # Training's pointwise metrics calibrate the stacking fusion's scores instead of predicting again.
    fused = StackingFusion(model.ensemble, model.features).fuse(examples.signals[90:])
    np.testing.assert_array_equal(model.calibrated(np.concatenate([f.scores for f in fused])), p)


def test_pointwise_metrics_on_a_hand_computed_case() -> None:
    got = pointwise_metrics(np.array([0.9, 0.2, 0.6, 0.1]), np.array([1, 0, 0, 1]))
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["MSE"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.81) / 4)
    assert got["MAE"] == pytest.approx((0.1 + 0.2 + 0.6 + 0.9) / 4)
    assert got["RMSE"] == pytest.approx(np.sqrt(got["MSE"]))
