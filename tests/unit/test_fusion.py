"""Fusion of the ranker's and the channels' scores, and the stacking features, on hand-made candidates."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.artifacts import FusionSpec
from shoprec.artifacts.specs import SOURCES
from shoprec.ranking.features import FEATURES, CandidateSignals, feature_matrix, feature_source
from shoprec.ranking.fusion import RankerFusion, StackingFusion, WeightedFusion, fusion_from_spec, minmax
from shoprec.ranking.trees import TreeEnsemble

RANKER, ITEMCF, EMBEDDING, POPULARITY = range(4)


def signals(ranker: list[float] | None = None) -> CandidateSignals:
    """Three candidates: item 7 (item-CF's favourite), item 3 (the embedding's), item 5 (a best seller)."""
    f32 = np.float32
    return CandidateSignals(
        items=np.array([7, 3, 5]),
        history_length=4,
        recall_score=np.array([1.2, 0.6, 0.2], dtype=f32),
        found=np.array([[True, False, True, False], [False, True, False, True], [False, False, True, False]]),
        channel_rank=np.array([[0, 150, 3, 100], [200, 0, 100, 0], [200, 150, 0, 100]], dtype=f32),
        signals=np.array([[2.0, 0.1, 1.0, 0.2], [0.0, 0.9, 2.0, 0.7], [1.0, 0.5, 5.0, 0.3]], dtype=f32),
        itemcf_last=np.array([0.5, 0.0, 0.1], dtype=f32),
        itemcf_recency=np.array([0, 20, 3], dtype=f32),
        popularity_percentile=np.array([0.5, 0.25, 1.0], dtype=f32),
        ranker=None if ranker is None else np.asarray(ranker, dtype=f32),
    )


def test_minmax_scales_to_the_unit_interval_and_equal_scores_to_one() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(minmax(np.array([7.0, 7.0])), [1.0, 1.0])
    assert minmax(np.zeros(0)).size == 0


def test_weighted_fusion_sums_weighted_min_max_scores_and_credits_the_largest_part() -> None:
    fusion = WeightedFusion({"ranker": 1.0, "itemcf": 2.0}, variant="tuned")
    (fused,) = fusion.fuse([signals(ranker=[0.0, 3.0, 1.0])])
    # ranker: (0, 1, 1/3); itemcf (2, 0, 1) -> (1, 0, 0.5) x 2
    np.testing.assert_allclose(fused.scores, [2.0, 1.0, 1.0 + 1 / 3])
    assert fused.strongest(np.arange(3)).tolist() == [ITEMCF, RANKER, ITEMCF]
    assert fusion.uses_ranker
    assert fusion.spec == FusionSpec(kind="weighted", variant="tuned", weights={"ranker": 1.0, "itemcf": 2.0})


def test_weighted_fusion_without_the_ranker_needs_no_ranker_scores() -> None:
    fusion = WeightedFusion({"itemcf": 1.0, "popularity": 0.2, "embedding": 0.0})
    assert not fusion.uses_ranker
    (fused,) = fusion.fuse([signals()])
    # itemcf (2, 0, 1) -> (1, 0, 0.5); popularity (1, 2, 5) -> (0, 0.25, 1) x 0.2
    np.testing.assert_allclose(fused.scores, [1.0, 0.05, 0.7])
    assert fused.strongest(np.array([1, 0])).tolist() == [POPULARITY, ITEMCF]
    (alone,) = WeightedFusion({"itemcf": 1.0}).fuse([signals()])
    assert alone.strongest(np.array([1])).tolist() == [-1]  # nothing positive: no source credited


def test_weighted_fusion_rejects_unknown_sources_and_all_zero_weights() -> None:
    with pytest.raises(ValueError, match="unknown score source"):
        WeightedFusion({"trending": 1.0})
    with pytest.raises(ValueError, match="at least one positive"):
        WeightedFusion({"itemcf": 0.0})


def test_ranker_fusion_is_the_ranker_score_and_credits_no_source() -> None:
    (fused,) = RankerFusion().fuse([signals(ranker=[0.1, 0.3, 0.2])])
    np.testing.assert_allclose(fused.scores, [0.1, 0.3, 0.2], rtol=1e-6)
    assert fused.strongest(np.arange(3)).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="no ranker scores"):
        RankerFusion().fuse([signals()])


def test_features_are_computed_per_user_in_the_documented_order() -> None:
    X = feature_matrix([signals(ranker=[0.0, 3.0, 1.0])])
    assert X.shape == (3, len(FEATURES))
    col = {name: X[:, j].tolist() for j, name in enumerate(FEATURES)}
    assert col["ranker_gap"] == [-3.0, 0.0, -2.0]
    assert col["ranker_rank"] == [2.0, 0.0, 1.0]
    assert col["itemcf_share"] == [1.0, 0.0, 0.5]
    assert col["itemcf_rank"] == [0.0, 200.0, 200.0]
    assert col["embedding_rank"] == [2.0, 0.0, 1.0]
    assert col["channels_found"] == [2.0, 2.0, 1.0]
    assert col["content_gap"] == pytest.approx([-0.5, 0.0, -0.4])
    assert col["content_rank"] == [2.0, 0.0, 1.0]
    assert col["history_length"] == [4.0, 4.0, 4.0]
    assert col["popularity_log"] == [1.0, 2.0, 5.0]
    with pytest.raises(ValueError, match="no ranker scores"):
        feature_matrix([signals()])
    assert feature_matrix([signals()], ["itemcf_score", "recall_score"]).shape == (3, 2)
    with pytest.raises(ValueError, match="unknown fusion feature"):
        feature_matrix([signals()], ["colour"])


def test_features_belong_to_the_source_their_prefix_names() -> None:
    assert [feature_source(f) for f in ("ranker_gap", "itemcf_last", "embedding_rank", "popularity_log")] == [
        SOURCES.index(s) for s in ("ranker", "itemcf", "embedding", "popularity")
    ]
    assert feature_source("recall_score") == -1


def test_stacking_scores_with_the_trees_and_credits_the_source_of_the_deciding_feature() -> None:
    features = ("ranker_score", "itemcf_score")
    # One tree: itemcf_score <= 0.5 ? (ranker_score <= 2 ? -1 : 1) : 2, root value 0.
    trees = TreeEnsemble(
        feature=np.array([[1, 0, -1, -1, -1]], dtype=np.int32),
        threshold=np.array([[0.5, 2.0, 0.0, 0.0, 0.0]]),
        left=np.array([[1, 3, 0, 0, 0]], dtype=np.int32),
        right=np.array([[2, 4, 0, 0, 0]], dtype=np.int32),
        value=np.array([[0.0, 0.0, 2.0, -1.0, 1.0]]),
        n_features=2,
    )
    fusion = StackingFusion(trees, features)
    assert fusion.uses_ranker
    (fused,) = fusion.fuse([signals(ranker=[0.0, 3.0, 1.0])])
    # item 7: itemcf 2 -> 2; item 3: itemcf 0, ranker 3 -> 1; item 5: itemcf 1 -> 2
    np.testing.assert_allclose(fused.scores, [2.0, 1.0, 2.0])
    assert fused.strongest(np.array([0, 1])).tolist() == [ITEMCF, RANKER]
    spec = FusionSpec(kind="stacking", file="fusion.npz", features=features)
    again = fusion_from_spec(spec, lambda name: trees.to_arrays())
    np.testing.assert_allclose(again.fuse([signals(ranker=[0.0, 3.0, 1.0])])[0].scores, fused.scores)
    with pytest.raises(ValueError, match="reads 2 features"):
        StackingFusion(trees, ("ranker_score",))


def test_fusion_specs_say_whether_the_ranker_is_needed() -> None:
    assert FusionSpec(kind="ranker").uses_ranker
    assert not FusionSpec(kind="weighted", weights={"itemcf": 1.0}).uses_ranker
    assert FusionSpec(kind="weighted", weights={"ranker": 0.5}).uses_ranker
    assert not FusionSpec(kind="stacking", file="f.npz", features=("itemcf_score",)).uses_ranker
    with pytest.raises(ValueError, match="needs 'file' and 'features'"):
        FusionSpec(kind="stacking")
