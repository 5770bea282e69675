"""Approximate nearest-neighbour search over the item tables of the embedding and content channels, for
catalogues too large for exact search (:class:`AnnIndex`, a ``VectorIndex``).

The index is a usearch HNSW graph (docs/scale.md compares it with hnswlib and faiss: the three find the
same neighbours at the same speed; usearch alone maps its file into memory instead of reading it, ships
cp312 wheels for x86_64 and arm64, and adds 11 MiB to the Lambda layer). Training builds it
(:func:`build_vector_index`) and stores it in the bundle; serving maps it (:func:`load_vector_index`).

Inner products, not cosines: the Transformer's item vectors have norms that grow with popularity, and an
HNSW graph over such vectors under the inner product finds the true neighbours badly (recall@100 0.71
against 0.94 on the synthetic catalogue). So each vector gets one more coordinate, ``sqrt(R^2 - |x|^2)``
with ``R`` the largest norm: every row then has norm ``R``, and for a query ``[q, 0]`` the inner product
is unchanged while the search is, in effect, a cosine search.

The graph only proposes: candidates are re-scored exactly against the float32 table, so scores are the
exact dot products and ties fall to the smaller index, as with :class:`ExactDotProductIndex`. A filter
(``allowed``) that keeps few items is answered exactly over those items, and whenever the graph's
candidates run out before ``n`` survive the filter, exact search answers instead: a filter never shortens
a list.

Serving code: numpy, and usearch imported only when a bundle has an index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import ITEM_EMBEDDINGS_ANN, TEXT_EMBEDDINGS_ANN, AnnIndexSpec, PipelineSpec
from shoprec.catalog import BoolArray, IntArray
from shoprec.recall.channels import ExactDotProductIndex, FloatArray, top_n

if TYPE_CHECKING:
    from shoprec.artifacts.writer import BundleWriter

ANN_MIN_ITEMS = 50_000
"""Catalogues with fewer items keep exact search. Measured (docs/scale.md): one exact query costs about
0.07 ms at 10k items and 1.2 ms at 100k, one graph query 0.1 to 0.7 ms, so the graph pays from about 50k."""

EXACT_SUBSET_MAX = 20_000
"""A filter that allows at most this many items is answered by exact search over them (cheaper than the
graph, and the graph would have to be asked for far more than ``n`` to find ``n`` allowed items)."""


def augment(vectors: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], float]:
    """``[x, sqrt(R^2 - |x|^2)]`` for every row ``x`` (``R``: the largest norm) and ``R``."""
    norms = np.linalg.norm(vectors, axis=1)
    radius = float(norms.max()) if norms.size else 1.0
    extra = np.sqrt(np.maximum(radius**2 - norms**2, 0.0)).astype(np.float32)
    return np.hstack([vectors, extra[:, None]]).astype(np.float32, copy=False), radius


def build_vector_index(
    vectors: npt.ArrayLike,
    writer: BundleWriter | str | Path,
    name: str,
    *,
    min_items: int = ANN_MIN_ITEMS,
    dtype: str = "f16",
    connectivity: int = 32,
    expansion_add: int = 200,
    expansion_search: int = 500,
    threads: int = 0,
) -> AnnIndexSpec | None:
    """Build the HNSW index of ``vectors`` (``[n_items, d]``) and write it as bundle file ``name``
    (through ``writer``, or into the folder ``writer``); its spec, or ``None`` (nothing written) when the
    catalogue has fewer than ``min_items`` items and exact search serves it.

    ``dtype`` is how the index stores the vectors (``f16`` halves the file of ``f32`` at the same
    recall; ``i8`` loses recall), ``connectivity`` the graph's M, ``expansion_add`` and
    ``expansion_search`` its ef at build and at query time; ``threads`` 0 uses every core.
    """
    from usearch.index import Index

    table = np.ascontiguousarray(vectors, dtype=np.float32)
    if table.ndim != 2:
        raise ValueError(f"vectors must be 2-D [n_items, d], got shape {table.shape}")
    if table.shape[0] < max(min_items, 1):
        return None
    data, radius = augment(table)
    index = Index(
        ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=connectivity, expansion_add=expansion_add
    )
    index.add(np.arange(table.shape[0], dtype=np.uint64), data, threads=threads)
    path = writer.path_for(name) if not isinstance(writer, str | Path) else Path(writer) / name
    index.save(str(path))
    return AnnIndexSpec(
        file=name,
        n_items=table.shape[0],
        dim=table.shape[1],
        dtype=dtype,
        connectivity=connectivity,
        expansion_add=expansion_add,
        expansion_search=expansion_search,
        radius=radius,
    )


def add_vector_indexes(
    spec: PipelineSpec,
    writer: BundleWriter,
    item_vectors: npt.ArrayLike,
    text_vectors: npt.ArrayLike | None = None,
    *,
    min_items: int = ANN_MIN_ITEMS,
    threads: int = 0,
) -> PipelineSpec:
    """``spec`` with the ANN indexes of the item vectors (``pipeline.embedding.ann``) and, when the
    pipeline has texts, of the text vectors (``pipeline.text.ann``), written through ``writer``; ``spec``
    unchanged for a catalogue under ``min_items`` items."""
    item_ann = build_vector_index(
        item_vectors, writer, ITEM_EMBEDDINGS_ANN, min_items=min_items, threads=threads
    )
    if item_ann is not None:
        spec = spec.model_copy(update={"embedding": spec.embedding.model_copy(update={"ann": item_ann})})
    if spec.text is not None and text_vectors is not None:
        text_ann = build_vector_index(
            text_vectors, writer, TEXT_EMBEDDINGS_ANN, min_items=min_items, threads=threads
        )
        if text_ann is not None:
            spec = spec.model_copy(update={"text": spec.text.model_copy(update={"ann": text_ann})})
    return spec


class AnnIndex:
    """Maximum inner product search through the HNSW graph, re-scored exactly against ``vectors``."""

    def __init__(self, graph: Any, vectors: npt.ArrayLike, *, expansion_search: int = 500) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if graph.size != self.vectors.shape[0] or graph.ndim != self.vectors.shape[1] + 1:
            raise ValueError(
                f"the index holds {graph.size} vectors of {graph.ndim - 1} dimensions, "
                f"the table {self.vectors.shape[0]} of {self.vectors.shape[1]}"
            )
        self.graph = graph
        self.expansion_search = expansion_search
        self.exact = ExactDotProductIndex(self.vectors)

    def search(
        self,
        query_vec: npt.NDArray[np.floating],
        n: int,
        exclude: IntArray | None = None,
        *,
        allowed: BoolArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        n_items = self.vectors.shape[0]
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        share = 1.0
        if allowed is not None:
            n_allowed = int(np.count_nonzero(allowed))
            if n_allowed <= EXACT_SUBSET_MAX:
                return self._exact_subset(query_vec, n, exclude, allowed)
            share = n_allowed / n_items
        n_exclude = 0 if exclude is None else int(exclude.size)
        # Enough candidates that n are expected to survive the filter; exact search below if not.
        count = min(n_items, int(np.ceil((n + n_exclude) / share)))
        query = np.append(np.asarray(query_vec, dtype=np.float32), np.float32(0.0))
        self.graph.expansion_search = max(self.expansion_search, count)
        keys = np.asarray(self.graph.search(query, count, threads=1).keys, dtype=np.int64)
        keep = np.ones(keys.size, dtype=np.bool_)
        if allowed is not None:
            keep &= allowed[keys]
        if n_exclude:
            keep &= ~np.isin(keys, exclude)  # type: ignore[arg-type]
        keys = keys[keep]
        if keys.size < n and keys.size < n_items - n_exclude:
            return self.exact.search(query_vec, n, exclude, allowed=allowed)
        scores = self.vectors[keys] @ np.asarray(query_vec, dtype=np.float32)
        order = np.lexsort((keys, -scores))[:n]
        return keys[order], scores[order]

    def _exact_subset(
        self,
        query_vec: npt.NDArray[np.floating],
        n: int,
        exclude: IntArray | None,
        allowed: BoolArray,
    ) -> tuple[IntArray, FloatArray]:
        """Exact search over the allowed items only: cost proportional to how many there are."""
        mask = allowed
        if exclude is not None and exclude.size:
            mask = allowed.copy()
            mask[exclude] = False
        idx = np.flatnonzero(mask)
        scores = self.vectors[idx] @ np.asarray(query_vec, dtype=np.float32)
        best = top_n(scores, n)
        return idx[best].astype(np.int64, copy=False), scores[best]


def load_vector_index(path: str | Path, spec: AnnIndexSpec, vectors: npt.ArrayLike) -> AnnIndex:
    """The index in ``path`` (described by ``spec``), memory-mapped rather than read: pages are loaded as
    queries touch them, so a cold start does not pay for the whole file. ``vectors`` is the float32 table
    the index was built from (candidates are re-scored against it)."""
    from usearch.index import Index

    graph = Index.restore(str(path), view=True)
    if graph is None:
        raise ValueError(f"{path}: not a usearch index")
    return AnnIndex(graph, vectors, expansion_search=spec.expansion_search)
