"""Which ANN index for the embedding and content channels: graphs (hnswlib, faiss-cpu HNSW, usearch HNSW)
and inverted files (shoprec's numpy IVF, faiss-cpu IndexIVFFlat), measured on the synthetic catalogue
against exact inner-product search.

Each library indexes the same item vectors for maximum inner product search (the vectors are augmented
with one coordinate so that all have the same norm, which turns the inner product into a cosine: see
``shoprec.recall.ann``), with the same graph parameters (M = 32, ef_construction = 200), and answers the
same queries (recency-weighted means of the last 5 items of synthetic histories) on one thread, as a
Lambda would. The inverted files use the same lists (``--n-lists``, default ``4 sqrt(items)``) and scan
the same number of them (``--nprobe``). Reported per library: build time (both cores), file size, load
time, recall@100 against exact search, and the median query time next to the exact search's.

Usage::

    nice -n 10 .venv/bin/python bench/scale/compare_ann.py --items 100000 [--queries 500] [--json]
        [--only "numpy IVF,faiss IVFFlat"] [--n-lists 1265] [--nprobe 32]

Libraries that are not installed are skipped (``pip install hnswlib faiss-cpu usearch`` to compare all).
Benchmarks report; they assert nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One BLAS thread for the exact search, as in a one-vCPU Lambda (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import synthetic_catalogue  # noqa: E402

M, EF_CONSTRUCTION, K = 32, 200, 100
K_SEARCH = K
Array = npt.NDArray[np.float32]


def augment(vectors: Array) -> tuple[Array, float]:
    """``[x, sqrt(R^2 - |x|^2)]``: every row has norm ``R`` (the largest), so ``q' . x' = q . x`` for
    ``q' = [q, 0]`` and the inner product search becomes a cosine search the graph handles well."""
    norms = np.linalg.norm(vectors, axis=1)
    radius = float(norms.max()) if norms.size else 1.0
    extra = np.sqrt(np.maximum(radius**2 - norms**2, 0.0)).astype(np.float32)
    return np.hstack([vectors, extra[:, None]]), radius


def exact_top(table: Array, query: Array, k: int) -> npt.NDArray[np.int64]:
    scores = table @ query
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_usearch(data: Array, queries: Array, folder: Path, ef: int, dtype: str) -> dict[str, Any]:
    from usearch.index import Index

    def build() -> Any:
        index = Index(
            ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=M, expansion_add=EF_CONSTRUCTION
        )
        index.add(np.arange(data.shape[0], dtype=np.uint64), data, threads=2)
        return index

    index, build_s = timed(build)
    path = folder / f"usearch-{dtype}.usearch"
    index.save(str(path))
    del index
    view, load_s = timed(lambda: Index.restore(str(path), view=True))
    view.expansion_search = ef

    def search(q: Array) -> npt.NDArray[np.int64]:
        return np.asarray(view.search(q, K_SEARCH, threads=1).keys, dtype=np.int64)

    return {"build_s": build_s, "file_mb": path.stat().st_size / 2**20, "load_s": load_s, "search": search}


def run_faiss(data: Array, queries: Array, folder: Path, ef: int) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(2)

    def build() -> Any:
        index = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.add(data)
        return index

    index, build_s = timed(build)
    path = folder / "faiss.index"
    faiss.write_index(index, str(path))
    del index
    loaded, load_s = timed(lambda: faiss.read_index(str(path)))
    loaded.hnsw.efSearch = ef
    faiss.omp_set_num_threads(1)

    def search(q: Array) -> npt.NDArray[np.int64]:
        return np.asarray(loaded.search(q[None, :], K_SEARCH)[1][0], dtype=np.int64)

    return {"build_s": build_s, "file_mb": path.stat().st_size / 2**20, "load_s": load_s, "search": search}


def run_hnswlib(data: Array, queries: Array, folder: Path, ef: int) -> dict[str, Any]:
    import hnswlib

    def build() -> Any:
        index = hnswlib.Index(space="ip", dim=data.shape[1])
        index.init_index(max_elements=data.shape[0], M=M, ef_construction=EF_CONSTRUCTION)
        index.add_items(data, num_threads=2)
        return index

    index, build_s = timed(build)
    path = folder / "hnswlib.bin"
    index.save_index(str(path))
    del index

    def load() -> Any:
        loaded = hnswlib.Index(space="ip", dim=data.shape[1])
        loaded.load_index(str(path))
        return loaded

    loaded, load_s = timed(load)
    loaded.set_ef(ef)
    loaded.set_num_threads(1)

    def search(q: Array) -> npt.NDArray[np.int64]:
        return np.asarray(loaded.knn_query(q, k=K_SEARCH)[0][0], dtype=np.int64)

    return {"build_s": build_s, "file_mb": path.stat().st_size / 2**20, "load_s": load_s, "search": search}


def run_numpy_ivf(table: Array, folder: Path, n_lists: int, nprobe: int) -> dict[str, Any]:
    """shoprec's IVF (``shoprec.recall.ivf``): k-means on the augmented vectors, lists scanned exactly."""
    from shoprec.recall.ann import build_vector_index, load_vector_index

    spec, build_s = timed(
        lambda: build_vector_index(table, folder, "v.ivf.npy", min_items=0, n_lists=n_lists, nprobe=nprobe)
    )
    assert spec is not None
    index, load_s = timed(lambda: load_vector_index(folder / spec.file, spec, table))
    ivf = index.ivf  # type: ignore[attr-defined]
    d = table.shape[1]

    def search(q: Array) -> npt.NDArray[np.int64]:
        keys, scores = ivf.scan(q[:d])
        if keys.size <= K_SEARCH:
            return keys
        return keys[np.argpartition(-scores, K_SEARCH - 1)[:K_SEARCH]]

    size = sum(f.stat().st_size for f in folder.iterdir())
    return {"build_s": build_s, "file_mb": size / 2**20, "load_s": load_s, "search": search}


def run_faiss_ivf(data: Array, folder: Path, n_lists: int, nprobe: int) -> dict[str, Any]:
    """faiss IndexIVFFlat over the augmented vectors, inner product to the centroids as to the items."""
    import faiss

    faiss.omp_set_num_threads(2)

    def build() -> Any:
        quantizer = faiss.IndexFlatIP(data.shape[1])
        index = faiss.IndexIVFFlat(quantizer, data.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0
        index.train(data)
        index.add(data)
        return index

    index, build_s = timed(build)
    path = folder / "faiss-ivf.index"
    faiss.write_index(index, str(path))
    del index
    loaded, load_s = timed(lambda: faiss.read_index(str(path)))
    loaded.nprobe = nprobe
    faiss.omp_set_num_threads(1)

    def search(q: Array) -> npt.NDArray[np.int64]:
        return np.asarray(loaded.search(q[None, :], K_SEARCH)[1][0], dtype=np.int64)

    return {"build_s": build_s, "file_mb": path.stat().st_size / 2**20, "load_s": load_s, "search": search}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef", type=int, default=200, help="ef_search (expansion) of every library")
    parser.add_argument("--plain-ip", action="store_true", help="index the raw vectors (no augmentation)")
    parser.add_argument(
        "--oversample", type=float, default=1.0, help="ask for K x this, keep the exact top K"
    )
    parser.add_argument("--n-lists", type=int, default=None, help="IVF lists (default 4 sqrt(items))")
    parser.add_argument("--nprobe", type=int, default=32, help="IVF lists scanned per query")
    parser.add_argument("--only", default="", help="comma-separated names of the rows to run (default all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n_lists = args.n_lists or max(1, round(4 * float(np.sqrt(args.items))))

    cat = synthetic_catalogue(args.items, dim=args.dim, n_users=args.queries)
    table = cat.embeddings
    weights = 0.7 ** np.arange(4, -1, -1, dtype=np.float32)
    queries = np.stack(
        [(weights[-len(s[-5:]) :] @ table[s[-5:]]) / weights[-len(s[-5:]) :].sum() for s in cat.sequences]
    )
    queries = queries.astype(np.float32)
    if args.plain_ip:
        data, q_aug = table, queries
    else:
        data, _ = augment(table)
        q_aug = np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)])
    global K_SEARCH
    K_SEARCH = int(K * args.oversample)

    truth, exact_times = [], []
    for q in queries:
        top, seconds = timed(lambda q=q: exact_top(table, q, K))
        truth.append(top)
        exact_times.append(seconds)
    exact_ms = float(np.median(exact_times) * 1000)

    candidates: dict[str, Callable[[Path], dict[str, Any]]] = {}
    if importlib.util.find_spec("usearch"):
        candidates["usearch f32"] = lambda d: run_usearch(data, q_aug, d, args.ef, "f32")
        candidates["usearch f16"] = lambda d: run_usearch(data, q_aug, d, args.ef, "f16")
        candidates["usearch i8"] = lambda d: run_usearch(data, q_aug, d, args.ef, "i8")
    if importlib.util.find_spec("faiss"):
        candidates["faiss HNSWFlat"] = lambda d: run_faiss(data, q_aug, d, args.ef)
    if importlib.util.find_spec("hnswlib"):
        candidates["hnswlib"] = lambda d: run_hnswlib(data, q_aug, d, args.ef)
    if not args.plain_ip:
        candidates["numpy IVF"] = lambda d: run_numpy_ivf(table, d, n_lists, args.nprobe)
        if importlib.util.find_spec("faiss"):
            candidates["faiss IVFFlat"] = lambda d: run_faiss_ivf(data, d, n_lists, args.nprobe)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        candidates = {name: run for name, run in candidates.items() if name in wanted}

    rows: dict[str, dict[str, Any]] = {}
    for name, run in candidates.items():
        with tempfile.TemporaryDirectory(prefix="shoprec-ann-") as tmp:
            out = run(Path(tmp))
            search = out.pop("search")
            search(q_aug[0])  # first query pages the index in
            hits, times = [], []
            for q, t in zip(q_aug, truth, strict=True):

                def rerank(q: Array = q, search: Callable[[Array], Any] = search) -> npt.NDArray[np.int64]:
                    found = search(q)
                    found = found[found >= 0]
                    if found.size <= K:
                        return found
                    return found[np.argsort(-(table[found] @ q[: table.shape[1]]), kind="stable")[:K]]

                found, seconds = timed(rerank)
                hits.append(np.intersect1d(found, t).size / K)
                times.append(seconds)
            ann_ms = float(np.median(times) * 1000)
            rows[name] = {
                **out,
                "recall_at_100": float(np.mean(hits)),
                "query_p50_ms": ann_ms,
                "query_p99_ms": float(np.percentile(times, 99) * 1000),
                "speedup": exact_ms / ann_ms,
            }
    report = {
        "items": args.items,
        "augmented": not args.plain_ip,
        "oversample": args.oversample,
        "dim": args.dim,
        "queries": len(queries),
        "ef": args.ef,
        "n_lists": n_lists,
        "nprobe": args.nprobe,
        "load_average_1m": os.getloadavg()[0],
        "exact_p50_ms": exact_ms,
        "libraries": rows,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{args.items:,} items x {args.dim}, {len(queries)} queries, "
        f"M={M}, ef_construction={EF_CONSTRUCTION}, ef={args.ef}; IVF {n_lists} lists, nprobe {args.nprobe}"
    )
    print(f"augmented to equal norms: {not args.plain_ip}; oversample {args.oversample}")
    print(f"exact numpy search: {exact_ms:.2f} ms per query (p50)")
    print(
        f"{'library':16} {'build s':>8} {'file MB':>8} {'load s':>7} {'recall@100':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'speedup':>8}"
    )
    for name, r in rows.items():
        print(
            f"{name:16} {r['build_s']:8.1f} {r['file_mb']:8.1f} {r['load_s']:7.3f} "
            f"{r['recall_at_100']:10.4f} "
            f"{r['query_p50_ms']:7.3f} {r['query_p99_ms']:7.3f} {r['speedup']:8.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
