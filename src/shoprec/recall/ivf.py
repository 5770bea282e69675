"""An inverted-file (IVF) index for maximum inner product search over an item table, in numpy alone.

**Build** (training, :func:`build_ivf`): k-means with ``n_lists`` centroids (``4 sqrt(n_items)`` by
default) on a sample of the item vectors, each augmented with the coordinate ``sqrt(R^2 - |x|^2)`` that
gives every row the norm ``R`` (:func:`shoprec.recall.ann.augment`): on rows of equal norm the Euclidean
clustering groups items by direction, and the extra coordinate keeps an item of large norm (a popular one,
whose inner products are large) apart from a weak item that points the same way. Then every item is
assigned to its nearest centroid, in chunks, and the vectors are written **ordered by list**: list ``j``
is the contiguous slice ``offsets[j]:offsets[j + 1]`` of one float32 ``.npy`` file, which serving
memory-maps. Deterministic for a seed: the sample, the starting centroids and the refill of an emptied
list all come from one generator.

**Query** (:meth:`IvfIndex.scan`): the centroids are scored against the query (inner product; the query's
extra coordinate is 0), and the ``nprobe`` best lists are scanned exactly: their rows are contiguous, so
each list costs one matrix-vector product over a slice of the mapped file, and only the pages of the
lists a query reads are ever loaded. Recall is set by ``nprobe``: more lists, more of the true
neighbours, proportionally more time.

Files: the list-ordered vectors (``.npy``, float32 ``[n_items, d]``, the table's own rows, not augmented)
and the lists (``.npz``: ``centroids`` float32 ``[n_lists, d]``, ``offsets`` int64 ``[n_lists + 1]``,
``ids`` int32 ``[n_items]``, the item at each row of the vectors file).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SAMPLE_PER_LIST = 64
"""k-means is fitted on ``SAMPLE_PER_LIST * n_lists`` items (all of them in smaller catalogues): enough
to place the centroids (faiss fits on 39 to 256 per centroid), and it keeps the fit at 1M items to
seconds; the assignment of every item is a single pass afterwards."""

KMEANS_ITERATIONS = 20
_CHUNK_SCORES = 1 << 24  # scores held at once by the assignment (64 MiB of float32)


LISTS_PER_SQRT_N = 4
"""``n_lists = 4 sqrt(n_items)`` (docs/scale.md): at 1M synthetic items, 4,000 lists reached recall@100
0.992 scanning 16 lists (0.17 % of the items), where 1,000 lists needed 24 lists (1.4 %) for 0.96; the
centroids are still a small table (4,000 x 64 at 1M), but the k-means fit grows with the square."""

DEFAULT_NPROBE = 32
"""Lists scanned per query: recall@100 0.996 at 1M synthetic items and 0.998 at 100k (docs/scale.md)."""


def default_n_lists(n_items: int) -> int:
    """``4 sqrt(n_items)`` lists, at least 1 and at most ``n_items``."""
    return max(1, min(n_items, round(LISTS_PER_SQRT_N * float(np.sqrt(n_items)))))


def assign(data: FloatArray, centroids: FloatArray) -> npt.NDArray[np.int32]:
    """The nearest centroid (Euclidean) of each row of ``data``, computed in chunks: the argmax of
    ``x . c - |c|^2 / 2``."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(data.shape[0], dtype=np.int32)
    step = max(1024, _CHUNK_SCORES // max(centroids.shape[0], 1))
    for start in range(0, data.shape[0], step):
        scores = data[start : start + step] @ centroids.T
        scores -= half_norms
        labels[start : start + step] = np.argmax(scores, axis=1)
    return labels


def kmeans(
    data: FloatArray, n_lists: int, *, iterations: int = KMEANS_ITERATIONS, seed: int = 0
) -> FloatArray:
    """Lloyd's k-means of the rows of ``data`` into ``n_lists`` centroids, started from ``n_lists``
    distinct rows drawn with ``seed``; a centroid left without rows is moved to a random row (drawn
    from the same generator), so every list ends up non-empty on the sample."""
    n = data.shape[0]
    if not 1 <= n_lists <= n:
        raise ValueError(f"n_lists must lie in [1, {n}] (the rows to cluster), got {n_lists}")
    rng = np.random.default_rng(seed)
    centroids = data[np.sort(rng.choice(n, size=n_lists, replace=False))].copy()
    labels = np.full(n, -1, dtype=np.int32)
    for _ in range(iterations):
        new = assign(data, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=n_lists)
        sums = np.stack([np.bincount(labels, weights=column, minlength=n_lists) for column in data.T], axis=1)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if empty.size:
            centroids[empty] = data[rng.choice(n, size=empty.size, replace=False)]
    return centroids


@dataclass(frozen=True, eq=False)
class IvfLists:
    """What a built index holds: the centroids, the row offsets of each list in the list-ordered
    vectors, the item of each row, and the list-ordered vectors themselves."""

    centroids: FloatArray  # [n_lists, d]
    offsets: IntArray  # [n_lists + 1], offsets[0] == 0, offsets[-1] == n_items
    ids: npt.NDArray[np.int32]  # [n_items], a permutation of range(n_items)
    vectors: FloatArray  # [n_items, d], row r is the table's row ids[r]


def build_ivf(
    table: FloatArray,
    n_lists: int,
    *,
    sample_per_list: int = SAMPLE_PER_LIST,
    iterations: int = KMEANS_ITERATIONS,
    seed: int = 0,
) -> IvfLists:
    """The IVF lists of ``table`` (``[n_items, d]`` float32): k-means on a sample of the augmented rows,
    every row assigned to its nearest centroid, rows ordered by list (by item index within a list)."""
    from shoprec.recall.ann import augment

    n, d = table.shape
    data, _ = augment(table)
    rng = np.random.default_rng(seed)
    size = min(n, max(n_lists, sample_per_list * n_lists))
    sample = data if size == n else data[np.sort(rng.choice(n, size=size, replace=False))]
    centroids = kmeans(sample, n_lists, iterations=iterations, seed=seed)
    labels = assign(data, centroids)
    del data
    ids = np.argsort(labels, kind="stable").astype(np.int32)
    offsets = np.zeros(n_lists + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(labels, minlength=n_lists))
    return IvfLists(
        centroids=np.ascontiguousarray(centroids[:, :d]),
        offsets=offsets,
        ids=ids,
        vectors=np.ascontiguousarray(table[ids]),
    )


def write_ivf(lists: IvfLists, vectors_path: Path, lists_path: Path) -> None:
    """The two files of an index: the list-ordered vectors (``.npy``) and the lists (``.npz``,
    deterministic: uncompressed members with a fixed timestamp, as ``BundleWriter.add_npz`` writes)."""
    with vectors_path.open("wb") as f:
        np.save(f, lists.vectors, allow_pickle=False)
    arrays: dict[str, npt.NDArray[Any]] = {
        "centroids": lists.centroids,
        "ids": lists.ids,
        "offsets": lists.offsets,
    }
    with zipfile.ZipFile(lists_path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def read_ivf(vectors_path: Path, lists_path: Path) -> IvfLists:
    """The index written by :func:`write_ivf`, its vectors memory-mapped (read-only); ``ValueError``
    naming the file when either is malformed or the two disagree."""
    try:
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{vectors_path}: not a readable .npy array: {exc}") from None
    try:
        with np.load(lists_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("centroids", "offsets", "ids") if key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{lists_path}: not a readable .npz archive: {exc}") from None
    for key in ("centroids", "offsets", "ids"):
        if key not in arrays:
            raise ValueError(f"{lists_path}: lacks array '{key}'")
    centroids, offsets, ids = arrays["centroids"], arrays["offsets"], arrays["ids"]
    if vectors.ndim != 2 or vectors.dtype != np.float32:
        raise ValueError(
            f"{vectors_path}: expected float32 [n_items, d], got {vectors.dtype} {vectors.shape}"
        )
    n, d = vectors.shape
    if centroids.ndim != 2 or centroids.shape[1] != d or centroids.shape[0] < 1:
        raise ValueError(f"{lists_path}: 'centroids' has shape {centroids.shape}, expected (n_lists, {d})")
    n_lists = centroids.shape[0]
    if offsets.shape != (n_lists + 1,) or offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{lists_path}: 'offsets' must rise from 0 to {n} over {n_lists + 1} entries")
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{lists_path}: 'ids' must be {n} integers, got {ids.dtype} {ids.shape}")
    if n and (ids.min() < 0 or ids.max() >= n or np.bincount(ids, minlength=n).max() != 1):
        raise ValueError(f"{lists_path}: 'ids' is not a permutation of the {n} items")
    return IvfLists(
        centroids=np.ascontiguousarray(centroids, dtype=np.float32),
        offsets=offsets.astype(np.int64, copy=False),
        ids=ids.astype(np.int32, copy=False),
        # A plain ndarray over the mapping: slicing an np.memmap costs a Python-level __getitem__ and
        # __array_finalize__ per slice, a third of a query's time at 32 lists.
        vectors=vectors.view(np.ndarray),
    )


class IvfIndex:
    """The scan of the ``nprobe`` lists whose centroids score highest against a query."""

    def __init__(self, lists: IvfLists, *, nprobe: int) -> None:
        if nprobe < 1:
            raise ValueError(f"nprobe must be at least 1, got {nprobe}")
        self.lists = lists
        self.nprobe = min(nprobe, lists.centroids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.lists.vectors.shape[0])

    def probe(self, query: FloatArray, nprobe: int | None = None) -> IntArray:
        """The lists to scan for ``query``, in file order."""
        n_lists = self.lists.centroids.shape[0]
        k = min(nprobe or self.nprobe, n_lists)
        scores = self.lists.centroids @ query
        best = np.argpartition(-scores, k - 1)[:k] if k < n_lists else np.arange(n_lists)
        return np.sort(best).astype(np.int64, copy=False)

    def scan(self, query: FloatArray, nprobe: int | None = None) -> tuple[IntArray, FloatArray]:
        """Every item of the probed lists and its inner product with ``query`` (exact: the rows are the
        table's float32 rows)."""
        q = np.ascontiguousarray(query, dtype=np.float32)
        chosen = self.probe(q, nprobe)
        offsets = self.lists.offsets
        starts, stops = offsets[chosen], offsets[chosen + 1]
        # Lists that follow each other in the file are read as one slice.
        breaks = np.flatnonzero(starts[1:] != stops[:-1])
        run_starts = np.concatenate([starts[:1], starts[breaks + 1]]).tolist()
        run_stops = np.concatenate([stops[breaks], stops[-1:]]).tolist()
        total = int((stops - starts).sum())
        keys = np.empty(total, dtype=np.int64)
        scores = np.empty(total, dtype=np.float32)
        pos = 0
        vectors, ids = self.lists.vectors, self.lists.ids
        for lo, hi in zip(run_starts, run_stops, strict=True):
            end = pos + hi - lo
            np.dot(vectors[lo:hi], q, out=scores[pos:end])
            keys[pos:end] = ids[lo:hi]
            pos = end
        return keys, scores
