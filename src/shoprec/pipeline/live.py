"""The recommendation pipeline over the live catalogue: the bundle's models, with the items added since
training given a place in them.

The bundle's models know the items they were trained on. An item added through ``PUT /v1/items`` gets an
index after those (:meth:`CatalogIndex.with_overlay`) and, in every item-indexed table of the pipeline, a
row built from what is known about it — its text:

- **content channel**: its own sentence embedding (encoded at upsert), so it is recalled for users whose
  recent items read like it, and listed among the similar items of its peers;
- **item-CF**: no neighbours and in no one's neighbour list (nobody has interacted with it yet);
- **popularity**: zero;
- **live co-occurrence and trending** (:mod:`shoprec.recall.online`): the same live counts, over the live
  catalogue, so an added item that is viewed next to others gets neighbours before any retrain;
- **Transformer embedding and ranker**: those of its *stand-in*, the bundle item whose text is closest
  to its own. The ranker is asked about the stand-in's id in the new item's place (in the candidates and
  in a history), so a new item is ranked as the Transformer ranks the product most like it, and a user
  whose history holds only new items is ranked from their stand-ins.

A stand-in is a nearest neighbour in text space rather than a learned text-to-embedding map: it needs no
training step, works with any ranker (the in-process ONNX model or the SageMaker endpoint, which only
know item ids), and explains itself. The next ``shoprec train`` learns the item for real.

Rebuilding copies the item-indexed tables (a few MB for the 4k-item catalogue, milliseconds); it happens
when the live catalogue changes, not per request.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from shoprec.catalog import CatalogIndex, IntArray
from shoprec.pipeline.core import RecommendationPipeline
from shoprec.recall.channels import (
    ContentChannel,
    EmbeddingChannel,
    ItemCFChannel,
    PopularityChannel,
    RecallChannel,
)
from shoprec.recall.itemcf import ItemCFNeighbours

F32 = npt.NDArray[np.float32]


def stand_ins(base_vectors: F32 | None, new_vectors: F32, n_base: int) -> IntArray:
    """For each new item, the bundle item whose text embedding is closest (cosine; vectors are unit
    length); item 0 when there are no text embeddings to compare."""
    if base_vectors is None or new_vectors.shape[0] == 0:
        return np.zeros(new_vectors.shape[0], dtype=np.int64)
    best: IntArray = np.argmax(new_vectors @ base_vectors[:n_base].T, axis=1).astype(np.int64)
    return best


def extend_pipeline(
    base: RecommendationPipeline, catalog: CatalogIndex, text_vectors: Mapping[int, F32] | None = None
) -> RecommendationPipeline:
    """``base`` (built over the bundle's catalogue) over ``catalog``: the bundle's items first, then the
    live-added ones. ``text_vectors`` (catalogue index -> unit text embedding) must hold every added item
    when ``base`` has text embeddings, and may replace a bundle item's (its text was edited).
    Availability and prices come with ``catalog``."""
    n_base = base.catalog.n_items
    if catalog.n_base != n_base or catalog.item_ids[:n_base] != base.catalog.item_ids:
        raise ValueError("the live catalogue must start with the bundle's items, in the bundle's order")
    m = catalog.n_items - n_base
    vectors = dict(text_vectors or {})
    content = base.content.vectors
    new_vectors: F32 | None = None
    if content is not None:
        missing = [i for i in range(n_base, n_base + m) if i not in vectors]
        if missing:
            raise ValueError(f"no text embedding for the added item(s) {', '.join(map(str, missing[:5]))}")
        if vectors:
            content = content.copy()
            if m:
                content = np.vstack([content, np.zeros((m, content.shape[1]), dtype=np.float32)])
            for i, vec in vectors.items():
                content[i] = vec
            new_vectors = content[n_base:]
    proxies = stand_ins(base.content.vectors, new_vectors, n_base) if new_vectors is not None else None
    if proxies is None:
        proxies = np.zeros(m, dtype=np.int64)

    cf = base.itemcf.itemcf
    itemcf = cf
    embeddings = base.embedding.embeddings
    popularity = base.popularity.popularity
    if m:
        itemcf = ItemCFNeighbours(
            indices=np.vstack([cf.indices, np.full((m, cf.k), -1, dtype=np.int32)]),
            scores=np.vstack([cf.scores, np.zeros((m, cf.k), dtype=np.float32)]),
        )
        embeddings = np.vstack([embeddings, embeddings[proxies]])
        popularity = np.concatenate([popularity, np.zeros(m, dtype=np.float32)])
    # An ANN index over the bundle's vectors does not know the new rows: the extended channels search
    # exactly (the catalogue changes rarely compared with requests, and exact search is milliseconds here).
    embedding_index = base.embedding.index if m == 0 else None
    content_index = base.content.index if not vectors else None
    online_cf = base.itemcf.online
    online_pop = base.popularity.online
    channels: list[RecallChannel] = [
        ItemCFChannel(
            itemcf,
            catalog,
            max_history=base.itemcf.max_history,
            decay=base.itemcf.decay,
            online=online_cf.over(catalog, itemcf) if online_cf is not None else None,
        ),
        EmbeddingChannel(
            embeddings, catalog, index=embedding_index, last=base.embedding.last, decay=base.embedding.decay
        ),
        PopularityChannel(
            popularity,
            catalog,
            online=online_pop.over(catalog, popularity) if online_pop is not None else None,
        ),
        ContentChannel(
            content, catalog, index=content_index, last=base.content.last, decay=base.content.decay
        ),
    ]
    pipeline = RecommendationPipeline(
        catalog,
        channels,
        base.merge_policy,
        base.ranker,
        base.fusion,
        fallback=base.fallback,
        latency_budget_s=base.latency_budget_s,
        clock=base.clock,
    )
    ids = base.catalog.item_ids
    pipeline.ranker_ids = list(ids) + [ids[p] for p in proxies.tolist()]
    return pipeline
