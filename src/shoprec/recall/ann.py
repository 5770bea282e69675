"""Approximate nearest-neighbour search over the item tables of the embedding and content channels, for
catalogues too large for exact search (:class:`AnnIndex`, a ``VectorIndex``).

The index is an inverted file (IVF, :mod:`shoprec.recall.ivf`, numpy only): k-means lists of the item
vectors, stored ordered by list in one float32 ``.npy`` that serving memory-maps; a query scans the
``nprobe`` lists whose centroids score highest. docs/scale.md compares it with usearch's HNSW graph (the
index of earlier bundles), faiss and hnswlib: at 1M synthetic items it reaches recall@100 0.99 at more than
50x the exact search's speed, where the HNSW graph reached 0.76 at 9x, builds in minutes on two cores, and
adds nothing to the Lambda layer. Training builds it (:func:`build_vector_index`) and stores it in the
bundle; serving maps it (:func:`load_vector_index`).

Inner products, not cosines: the Transformer's item vectors have norms that grow with popularity. Both
kinds cluster or link the vectors with one more coordinate, ``sqrt(R^2 - |x|^2)`` with ``R`` the largest
norm (:func:`augment`): every row then has norm ``R``, and for a query ``[q, 0]`` the inner product is
unchanged while the search is, in effect, a cosine search (an HNSW graph over the raw vectors found the
true top 100 badly: recall@100 0.71 against 0.94 on the synthetic catalogue).

The index only proposes; scores are the exact float32 dot products (the IVF scans the table's own rows,
the graph's candidates are re-scored against the table), ties fall to the smaller index, as with
:class:`ExactDotProductIndex`. A filter (``allowed``) that keeps few items is answered exactly over those
items; a larger one widens the search in proportion (more lists, more graph candidates), and whenever
fewer than ``n`` candidates survive the filter, exact search answers instead: a filter never shortens a
list.

Bundles written before the IVF index hold a usearch HNSW graph (``kind`` ``usearch-hnsw``): they are
served where usearch is installed, and refused with an error that says so where it is not (the Lambda
runtime layer no longer ships it).

Serving code: numpy (usearch imported only for an HNSW bundle).
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.specs import (
    ITEM_EMBEDDINGS_ANN,
    TEXT_EMBEDDINGS_ANN,
    AnnIndexSpec,
    HnswIndexSpec,
    IvfIndexSpec,
    PipelineSpec,
)
from shoprec.catalog import BoolArray, IntArray
from shoprec.recall.channels import ExactDotProductIndex, FloatArray, top_n
from shoprec.recall.ivf import (
    DEFAULT_NPROBE,
    KMEANS_ITERATIONS,
    SAMPLE_PER_LIST,
    IvfIndex,
    build_ivf,
    default_n_lists,
    read_ivf,
    write_ivf,
)

if TYPE_CHECKING:
    from shoprec.artifacts.writer import BundleWriter

AnnKind = Literal["ivf-flat", "usearch-hnsw"]

ANN_MIN_ITEMS = 50_000
"""Catalogues with fewer items keep exact search (their lists stay exactly what they were). Measured
(docs/scale.md): one exact query costs about 0.07-0.2 ms at 10k items and 1.2-2.2 ms at 100k."""

EXACT_SUBSET_MAX = 20_000
"""A filter that allows at most this many items is answered by exact search over them (cheaper than
widening the index's search until ``n`` allowed items turn up)."""


def augment(vectors: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], float]:
    """``[x, sqrt(R^2 - |x|^2)]`` for every row ``x`` (``R``: the largest norm) and ``R``."""
    norms = np.linalg.norm(vectors, axis=1)
    radius = float(norms.max()) if norms.size else 1.0
    extra = np.sqrt(np.maximum(radius**2 - norms**2, 0.0)).astype(np.float32)
    return np.hstack([vectors, extra[:, None]]).astype(np.float32, copy=False), radius


def lists_file_name(name: str) -> str:
    """The lists file of the IVF index whose vectors file is ``name`` (``x.ivf.npy``: ``x.ivf.lists.npz``)."""
    stem = name[: -len(".npy")] if name.endswith(".npy") else name
    return f"{stem}.lists.npz"


def build_vector_index(
    vectors: npt.ArrayLike,
    writer: BundleWriter | str | Path,
    name: str,
    *,
    kind: AnnKind = "ivf-flat",
    min_items: int = ANN_MIN_ITEMS,
    n_lists: int | None = None,
    nprobe: int = DEFAULT_NPROBE,
    sample_per_list: int = SAMPLE_PER_LIST,
    iterations: int = KMEANS_ITERATIONS,
    seed: int = 0,
    dtype: str = "f16",
    connectivity: int = 32,
    expansion_add: int = 200,
    expansion_search: int = 500,
    threads: int = 0,
) -> AnnIndexSpec | None:
    """Build the ANN index of ``vectors`` (``[n_items, d]``) and write it as bundle file ``name``
    (through ``writer``, or into the folder ``writer``); its spec, or ``None`` (nothing written) when the
    catalogue has fewer than ``min_items`` items and exact search serves it.

    ``kind="ivf-flat"`` (the default): ``n_lists`` k-means lists (default ``4 sqrt(n_items)``) fitted on
    ``sample_per_list`` items per list for at most ``iterations`` rounds from ``seed``, ``nprobe`` lists
    scanned per query; ``name`` is the list-ordered vectors (``.npy``) and :func:`lists_file_name` the
    lists beside it. The fit runs numpy's BLAS on as many threads as it is allowed.

    ``kind="usearch-hnsw"`` (earlier bundles, and the benchmarks): a usearch graph storing the vectors as
    ``dtype``, with ``connectivity`` (M), ``expansion_add`` and ``expansion_search`` (ef at build and
    query time), built on ``threads`` threads (0: every core).
    """
    table = np.ascontiguousarray(vectors, dtype=np.float32)
    if table.ndim != 2:
        raise ValueError(f"vectors must be 2-D [n_items, d], got shape {table.shape}")
    if table.shape[0] < max(min_items, 1):
        return None

    def path_of(file: str) -> Path:
        if not isinstance(writer, str | Path):
            return writer.path_for(file)
        path = Path(writer).joinpath(*PurePosixPath(file).parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    n_items, dim = table.shape
    if kind == "ivf-flat":
        lists_name = lists_file_name(name)
        lists_count = default_n_lists(n_items) if n_lists is None else n_lists
        if not 1 <= lists_count <= n_items:
            raise ValueError(f"n_lists must lie in [1, {n_items}], got {lists_count}")
        built = build_ivf(
            table, lists_count, sample_per_list=sample_per_list, iterations=iterations, seed=seed
        )
        write_ivf(built, path_of(name), path_of(lists_name))
        return IvfIndexSpec(
            file=name,
            lists_file=lists_name,
            n_items=n_items,
            dim=dim,
            n_lists=lists_count,
            nprobe=min(nprobe, lists_count),
            sample_per_list=sample_per_list,
            iterations=iterations,
            seed=seed,
            radius=float(np.linalg.norm(table, axis=1).max()),
        )
    if kind == "usearch-hnsw":
        from usearch.index import Index

        data, radius = augment(table)
        index = Index(
            ndim=data.shape[1],
            metric="ip",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
        )
        index.add(np.arange(n_items, dtype=np.uint64), data, threads=threads)
        index.save(str(path_of(name)))
        return HnswIndexSpec(
            file=name,
            n_items=n_items,
            dim=dim,
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
            radius=radius,
        )
    raise ValueError(f"unknown ANN index kind {kind!r}; expected 'ivf-flat' or 'usearch-hnsw'")


def add_vector_indexes(
    spec: PipelineSpec,
    writer: BundleWriter,
    item_vectors: npt.ArrayLike,
    text_vectors: npt.ArrayLike | None = None,
    *,
    min_items: int = ANN_MIN_ITEMS,
    threads: int = 0,
) -> PipelineSpec:
    """``spec`` with the ANN indexes (IVF) of the item vectors (``pipeline.embedding.ann``) and, when the
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
    """Maximum inner product search through an approximate index over ``vectors`` (the float32 table):
    the index proposes candidates with their exact scores (:meth:`_candidates`), this class answers small
    filters and short candidate lists exactly and orders the result."""

    def __init__(self, vectors: npt.ArrayLike) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.exact = ExactDotProductIndex(self.vectors)

    def search(
        self,
        query_vec: npt.NDArray[np.floating],
        n: int,
        exclude: IntArray | None = None,
        *,
        allowed: BoolArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        share = 1.0
        if allowed is not None:
            n_allowed = int(np.count_nonzero(allowed))
            if n_allowed <= EXACT_SUBSET_MAX:
                return self._exact_subset(query_vec, n, exclude, allowed)
            share = n_allowed / self.vectors.shape[0]
        query = np.asarray(query_vec, dtype=np.float32)
        if exclude is not None and exclude.size == 0:
            exclude = None
        keys, scores = self._candidates(query, n, exclude, allowed, share)
        if keys.size < n:
            return self.exact.search(query, n, exclude, allowed=allowed)
        order = np.lexsort((keys, -scores))[:n]
        return keys[order], scores[order]

    def _candidates(
        self,
        query: FloatArray,
        n: int,
        exclude: IntArray | None,
        allowed: BoolArray | None,
        share: float,
    ) -> tuple[IntArray, FloatArray]:
        """Candidate items (distinct, allowed, not excluded) and their exact scores; when there are at
        least ``n``, they must include every item that ties with or beats the ``n``-th one found."""
        raise NotImplementedError

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


class IvfAnnIndex(AnnIndex):
    """The IVF index: the probed lists are scanned exactly (their rows are the table's float32 rows)."""

    def __init__(self, ivf: IvfIndex, vectors: npt.ArrayLike) -> None:
        super().__init__(vectors)
        self.ivf = ivf

    @property
    def nprobe(self) -> int:
        return int(self.ivf.nprobe)

    def _candidates(
        self,
        query: FloatArray,
        n: int,
        exclude: IntArray | None,
        allowed: BoolArray | None,
        share: float,
    ) -> tuple[IntArray, FloatArray]:
        # A filter keeping a share of the items: as many more lists, so that about as many allowed items
        # turn up as unfiltered items would.
        nprobe = self.ivf.nprobe if share >= 1.0 else math.ceil(self.ivf.nprobe / share)
        keys, scores = self.ivf.scan(query, nprobe)
        if allowed is not None:
            keep = allowed[keys]
            keys, scores = keys[keep], scores[keep]
        n_exclude = 0 if exclude is None else int(exclude.size)
        want = n + n_exclude  # at least n of them are not excluded
        if keys.size > want:
            kth = np.partition(scores, keys.size - want)[keys.size - want]
            keep = scores >= kth  # with every tie of the last one, for the index tie-break
            keys, scores = keys[keep], scores[keep]
        if exclude is not None:
            keep = ~np.isin(keys, exclude)
            keys, scores = keys[keep], scores[keep]
        return keys, scores


class HnswAnnIndex(AnnIndex):
    """A usearch HNSW graph (bundles before the IVF index): its candidates are re-scored exactly."""

    def __init__(self, graph: Any, vectors: npt.ArrayLike, *, expansion_search: int = 500) -> None:
        super().__init__(vectors)
        if graph.size != self.vectors.shape[0] or graph.ndim != self.vectors.shape[1] + 1:
            raise ValueError(
                f"the index holds {graph.size} vectors of {graph.ndim - 1} dimensions, "
                f"the table {self.vectors.shape[0]} of {self.vectors.shape[1]}"
            )
        self.graph = graph
        self.expansion_search = expansion_search

    def _candidates(
        self,
        query: FloatArray,
        n: int,
        exclude: IntArray | None,
        allowed: BoolArray | None,
        share: float,
    ) -> tuple[IntArray, FloatArray]:
        n_items = self.vectors.shape[0]
        n_exclude = 0 if exclude is None else int(exclude.size)
        # Enough candidates that n are expected to survive the filter; exact search if not.
        count = min(n_items, math.ceil((n + n_exclude) / share))
        self.graph.expansion_search = max(self.expansion_search, count)
        augmented = np.append(query, np.float32(0.0))
        keys = np.unique(np.asarray(self.graph.search(augmented, count, threads=1).keys, dtype=np.int64))
        keep = np.ones(keys.size, dtype=np.bool_)
        if allowed is not None:
            keep &= allowed[keys]
        if exclude is not None:
            keep &= ~np.isin(keys, exclude)
        keys = keys[keep]
        return keys, self.vectors[keys] @ query


def load_vector_index(path: str | Path, spec: AnnIndexSpec, vectors: npt.ArrayLike) -> AnnIndex:
    """The index in ``path`` (the file ``spec.file``; an IVF index's lists file lies beside it), mapped
    into memory rather than read: pages are loaded as queries touch them, so a cold start does not pay
    for the whole file. ``vectors`` is the float32 table the index was built from (exact fallback,
    re-scoring). ``ValueError`` when the files are malformed, belong to another table, or the index is an
    HNSW graph and usearch is not installed."""
    path = Path(path)
    table = np.asarray(vectors, dtype=np.float32)
    if isinstance(spec, IvfIndexSpec):
        lists_path = path.with_name(PurePosixPath(spec.lists_file).name)
        if not lists_path.is_file():
            raise ValueError(f"{lists_path}: the IVF index's lists file '{spec.lists_file}' is missing")
        lists = read_ivf(path, lists_path)
        if lists.vectors.shape != table.shape or lists.centroids.shape[0] != spec.n_lists:
            raise ValueError(
                f"{path}: the index holds {lists.vectors.shape[0]} vectors of {lists.vectors.shape[1]} "
                f"dimensions in {lists.centroids.shape[0]} lists, the table {table.shape[0]} of "
                f"{table.shape[1]} and the spec {spec.n_lists} lists"
            )
        _check_rows(path, lists.vectors, lists.ids, table)
        return IvfAnnIndex(IvfIndex(lists, nprobe=spec.nprobe), table)
    try:
        from usearch.index import Index
    except ImportError:
        raise ValueError(
            f"{path}: this bundle's ANN index is a usearch HNSW graph (kind 'usearch-hnsw', written before "
            "the IVF index replaced it) and usearch is not installed here (the Lambda runtime layer no "
            "longer ships it): retrain the bundle (shoprec train writes an IVF index) or install usearch"
        ) from None
    graph = Index.restore(str(path), view=True)
    if graph is None:
        raise ValueError(f"{path}: not a usearch index")
    return HnswAnnIndex(graph, table, expansion_search=spec.expansion_search)


def _check_rows(path: Path, stored: FloatArray, ids: npt.NDArray[np.int32], table: FloatArray) -> None:
    """A few rows of the index, spread over the file, must be the table's rows they claim to be: an
    index of another table of the same shape fails here (a full comparison would read the whole file)."""
    n = stored.shape[0]
    rows = np.unique(np.linspace(0, n - 1, num=min(n, 16)).astype(np.int64))
    if not np.array_equal(np.asarray(stored[rows]), table[ids[rows]]):
        raise ValueError(f"{path}: the index's vectors are not the table's (another table's index?)")
