"""Building the recommendation pipeline from a bundle: the models its manifest describes, wired together.

The composition root (:mod:`shoprec.container`) calls it for serving and
:mod:`shoprec.evaluation.pipeline_eval` for offline evaluation, so both run the very same object.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from shoprec.artifacts import Bundle, PipelineSpec
from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError
from shoprec.pipeline.core import RecommendationPipeline
from shoprec.ports import Ranker
from shoprec.ranking.fusion import Fusion, fusion_from_spec
from shoprec.recall.ann import load_vector_index
from shoprec.recall.channels import (
    ContentChannel,
    EmbeddingChannel,
    ItemCFChannel,
    PopularityChannel,
    RecallChannel,
    VectorIndex,
)
from shoprec.recall.itemcf import ItemCFNeighbours
from shoprec.recall.merge import MergePolicy
from shoprec.recall.online import OnlineItemCF, OnlinePopularity, OnlineStats


def build_pipeline(
    bundle: Bundle,
    catalog: CatalogIndex,
    ranker: Ranker | None,
    *,
    candidates: int | None = None,
    latency_budget_ms: float = 150.0,
    fusion: Fusion | None = None,
    vector_index: VectorIndex | None = None,
    spec: PipelineSpec | None = None,
    clock: Callable[[], float] = time.perf_counter,
    online: OnlineStats | None = None,
) -> RecommendationPipeline:
    """The pipeline of ``bundle.pipeline``, or of ``spec`` (the bundle's with an experiment variant's
    changes: fusion, recall weights), over the bundle's models: its channels, merge policy and fusion.

    ``candidates`` overrides the bundle's recall budget, ``fusion`` its fusion (offline comparisons),
    ``vector_index`` the embedding channel's inner-product search (by default the bundle's ANN index
    when it has one, else exact search; the content channel likewise).
    ``online``: the live co-occurrence and trending counts to blend into item-CF and popularity
    (:mod:`shoprec.recall.online`). Raises ``ArtifactError`` when a model file is malformed.
    """
    if catalog.n_items != bundle.n_items:
        raise ValueError(f"catalog has {catalog.n_items} items, the bundle {bundle.n_items}")
    try:
        itemcf = ItemCFNeighbours(indices=bundle.itemcf_indices, scores=bundle.itemcf_scores)
        spec = spec or bundle.pipeline
        fused = fusion or fusion_from_spec(spec.fusion, bundle.arrays)
        if vector_index is None and spec.embedding.ann is not None:
            vector_index = load_vector_index(
                bundle.file(spec.embedding.ann.file), spec.embedding.ann, bundle.item_embeddings
            )
        text_index = None
        if spec.text is not None and spec.text.ann is not None and bundle.text_embeddings is not None:
            text_index = load_vector_index(
                bundle.file(spec.text.ann.file), spec.text.ann, bundle.text_embeddings
            )
    except ValueError as exc:
        raise ArtifactError(f"{bundle.path}: {exc}") from exc
    return assemble_pipeline(
        spec,
        catalog,
        popularity=bundle.popularity,
        itemcf=itemcf,
        embeddings=bundle.item_embeddings,
        text_embeddings=bundle.text_embeddings,
        ranker=ranker,
        fusion=fused,
        candidates=candidates,
        latency_budget_ms=latency_budget_ms,
        vector_index=vector_index,
        text_index=text_index,
        clock=clock,
        online=online,
    )


def assemble_pipeline(
    spec: PipelineSpec,
    catalog: CatalogIndex,
    *,
    popularity: npt.NDArray[np.float32],
    itemcf: ItemCFNeighbours,
    embeddings: npt.NDArray[np.float32],
    ranker: Ranker | None,
    fusion: Fusion,
    text_embeddings: npt.NDArray[np.float32] | None = None,
    candidates: int | None = None,
    latency_budget_ms: float = 150.0,
    vector_index: VectorIndex | None = None,
    text_index: VectorIndex | None = None,
    clock: Callable[[], float] = time.perf_counter,
    online: OnlineStats | None = None,
) -> RecommendationPipeline:
    """The pipeline ``spec`` describes, over models given as objects (training builds one from the models
    fitted on the training split, before any bundle exists). Without ``text_embeddings`` the content
    channel recalls nothing."""
    channels: list[RecallChannel] = [
        ItemCFChannel(
            itemcf,
            catalog,
            max_history=spec.itemcf.max_history,
            decay=spec.itemcf.decay,
            online=OnlineItemCF(online, catalog, itemcf) if online is not None else None,
        ),
        EmbeddingChannel(
            embeddings, catalog, index=vector_index, last=spec.embedding.last, decay=spec.embedding.decay
        ),
        PopularityChannel(
            popularity,
            catalog,
            online=OnlinePopularity(online, catalog, popularity) if online is not None else None,
        ),
        ContentChannel(
            text_embeddings,
            catalog,
            index=text_index,
            last=spec.text.last if spec.text else 5,
            decay=spec.text.decay if spec.text else 0.7,
        ),
    ]
    policy = MergePolicy(
        budget=candidates if candidates is not None else spec.recall.budget,
        weights=dict(spec.recall.weights),
        quotas=dict(spec.recall.quotas),
    )
    return RecommendationPipeline(
        catalog, channels, policy, ranker, fusion, latency_budget_s=latency_budget_ms / 1000.0, clock=clock
    )
