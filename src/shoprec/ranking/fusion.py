"""Fusion: one final score per candidate from the ranker's and the recall channels' scores.

Three kinds, chosen by the bundle's :class:`~shoprec.artifacts.specs.FusionSpec` (training evaluates all of
them on the validation targets and stores the best):

``ranker``
    The sequence model's score alone; recall only chose the candidates (what shoprec served before fusion).
``weighted``
    ``sum_s w_s * minmax_s(score_s)`` over the sources ``s`` (the ranker and each channel), each source
    min-max normalised over the user's candidates so that logits, similarity sums and dot products become
    comparable. Equal weights and weights tuned on the validation targets are both of this kind.
``stacking``
    A learned second-stage ranker: a tree ensemble (:mod:`shoprec.ranking.trees`) over the features of
    :mod:`shoprec.ranking.features`, trained with LambdaRank on the validation targets.

Every fusion also says, per candidate, which source contributed most to its score (``strongest``, an index
into ``SOURCES``): the weighted part for ``weighted``, the summed per-feature contributions for
``stacking``. The pipeline turns it into the item's reason.

Serving code: numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import RANKER, SOURCES, FusionSpec
from shoprec.ranking.features import CandidateSignals, feature_matrix, feature_source
from shoprec.ranking.trees import TreeEnsemble

F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Fused:
    """Final scores ``[C]`` of one user's candidates, and ``strongest(positions)``: for the candidates at
    ``positions``, the index in ``SOURCES`` of the source contributing most to the score (``-1`` when none
    contributed positively). Lazy, because serving explains the few items it returns, not all ``C``."""

    scores: F64
    strongest: Callable[[IntArray], IntArray]

    @classmethod
    def of(cls, scores: F64, strongest: IntArray) -> Fused:
        """Scores whose strongest sources are already known for every candidate."""
        return cls(scores, lambda positions: strongest[positions])


class Fusion(Protocol):
    """Turns candidate signals into final scores (see the module docstring)."""

    @property
    def spec(self) -> FusionSpec: ...

    @property
    def uses_ranker(self) -> bool:
        """Whether :meth:`fuse` reads the ranker's scores (the pipeline skips the ranker otherwise)."""
        ...

    def fuse(self, batch: Sequence[CandidateSignals]) -> list[Fused]: ...


class RankerFusion:
    """The ranker's score replaces the recall scores. It credits no source (``strongest`` is -1): the
    sequence model says how good an item is, not why, so the item keeps the reason recall gave it."""

    def __init__(self, spec: FusionSpec | None = None) -> None:
        self._spec = spec or FusionSpec(kind="ranker")

    @property
    def spec(self) -> FusionSpec:
        return self._spec

    @property
    def uses_ranker(self) -> bool:
        return True

    def fuse(self, batch: Sequence[CandidateSignals]) -> list[Fused]:
        return [Fused.of(s.source_scores(RANKER).astype(np.float64), np.full(s.size, -1)) for s in batch]


class WeightedFusion:
    """``sum_s weights[s] * minmax_s(score)``; sources with weight 0 (or missing) are ignored."""

    def __init__(self, weights: Mapping[str, float], *, variant: str = "") -> None:
        unknown = [s for s in weights if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown score source(s) {unknown}; expected {', '.join(SOURCES)}")
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise ValueError(f"weights must be >= 0 with at least one positive, got {dict(weights)}")
        self.weights = {s: float(w) for s, w in weights.items() if w > 0}
        self._spec = FusionSpec(kind="weighted", variant=variant, weights=dict(self.weights))

    @property
    def spec(self) -> FusionSpec:
        return self._spec

    @property
    def uses_ranker(self) -> bool:
        return RANKER in self.weights

    def fuse(self, batch: Sequence[CandidateSignals]) -> list[Fused]:
        out = []
        for s in batch:
            parts = np.zeros((s.size, len(SOURCES)), dtype=np.float64)
            for source, w in self.weights.items():
                parts[:, SOURCES.index(source)] = w * minmax(s.source_scores(source))
            out.append(Fused.of(parts.sum(axis=1), _strongest(parts)))
        return out


class StackingFusion:
    """A tree ensemble over :func:`~shoprec.ranking.features.feature_matrix` (one batched evaluation)."""

    def __init__(
        self, model: TreeEnsemble, features: Sequence[str], *, spec: FusionSpec | None = None
    ) -> None:
        if model.n_features != len(features):
            raise ValueError(f"the model reads {model.n_features} features, the spec names {len(features)}")
        self.model = model
        self.features = tuple(features)
        self._source_of = np.asarray([feature_source(f) for f in self.features], dtype=np.int64)
        self._spec = spec or FusionSpec(kind="stacking", file="fusion.npz", features=self.features)

    @property
    def spec(self) -> FusionSpec:
        return self._spec

    @property
    def uses_ranker(self) -> bool:
        return self._spec.uses_ranker

    def fuse(self, batch: Sequence[CandidateSignals]) -> list[Fused]:
        X = feature_matrix(batch, self.features)
        scores = self.model.predict(X)
        out = []
        start = 0
        for s in batch:
            stop = start + s.size
            out.append(Fused(scores[start:stop], self._explainer(X[start:stop])))
            start = stop
        return out

    def _explainer(self, X: F64) -> Callable[[IntArray], IntArray]:
        def strongest(positions: IntArray) -> IntArray:
            _, contrib = self.model.predict_with_contributions(X[positions])
            by_source = np.zeros((positions.size, len(SOURCES)), dtype=np.float64)
            for j, source in enumerate(self._source_of.tolist()):
                if source >= 0:
                    by_source[:, source] += contrib[:, j]
            return _strongest(by_source)

        return strongest


def fusion_from_spec(spec: FusionSpec, arrays: Callable[[str], Mapping[str, npt.NDArray[Any]]]) -> Fusion:
    """The fusion ``spec`` describes; ``arrays(file)`` reads a bundle file's arrays (for ``stacking``).

    Raises ``ValueError`` when the stacking model's arrays are malformed.
    """
    if spec.kind == "ranker":
        return RankerFusion(spec)
    if spec.kind == "weighted":
        return WeightedFusion(spec.weights, variant=spec.variant)
    assert spec.file is not None
    return StackingFusion(TreeEnsemble.from_arrays(arrays(spec.file)), spec.features, spec=spec)


def minmax(x: npt.NDArray[np.floating]) -> F64:
    """``x`` scaled to [0, 1] over the user's candidates; all ones when every value is equal (no signal
    ranks above another, and an item found by an extra source still gains)."""
    v = np.asarray(x, dtype=np.float64)
    if v.size == 0:
        return v
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.ones_like(v)


def _strongest(parts: F64) -> IntArray:
    """Per row, the column with the largest positive part (ties: the earlier source); ``-1`` if none."""
    if parts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    best: IntArray = np.argmax(parts, axis=1).astype(np.int64)
    best[parts[np.arange(parts.shape[0]), best] <= 0] = -1
    return best
