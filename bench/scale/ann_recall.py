"""The ANN index alone at a catalogue size: build time, file size, load time, the memory its queries
touch, and recall@100 against exact search with the speed-up, for one build and a sweep of its query
setting (no bundle, no serving: ``bench/bench_scale.py`` does those). For sizes whose whole bundle takes
too long to build here, and for tuning.

Usage::

    nice -n 10 .venv/bin/python bench/scale/ann_recall.py --items 1000000 --kind ivf
        [--n-lists 4000] [--nprobe 8,16,32] [--queries 300]
    nice -n 10 .venv/bin/python bench/scale/ann_recall.py --items 100000 --kind hnsw
        [--connectivity 32] [--expansion-add 200] [--expansion-search 100,500] [--oversample 1,2,3]

``--kind ivf`` (the index training builds): ``--nprobe`` lists scanned per query, swept.
``--kind hnsw`` (usearch, the index of earlier bundles): ``--expansion-search`` (ef) swept, each with
every ``--oversample`` factor (ask the graph for that many times 100 candidates, keep the exact top 100).
Prints a JSON line when the vectors are generated, one when the index is built, then one per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread for the exact search, as in a one-vCPU Lambda

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import synthetic_catalogue  # noqa: E402

from shoprec.recall.ann import (  # noqa: E402
    AnnIndex,
    HnswAnnIndex,
    IvfAnnIndex,
    build_vector_index,
    lists_file_name,
    load_vector_index,
)
from shoprec.recall.channels import ExactDotProductIndex, recency_mean  # noqa: E402

K = 100


def rss_mb() -> float:
    """The resident set now (not the peak), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def measure(
    ann: AnnIndex, exact: ExactDotProductIndex, queries: list[np.ndarray], oversample: float
) -> dict[str, float]:
    ask = round(K * oversample)
    ann.search(queries[0], ask)
    hits, t_exact, t_ann = [], [], []
    for q in queries:  # alternating, so that the machine's load drifts over both alike
        t = time.perf_counter()
        want, _ = exact.search(q, K)
        t_exact.append(time.perf_counter() - t)
        t = time.perf_counter()
        got, _ = ann.search(q, ask)
        t_ann.append(time.perf_counter() - t)
        hits.append(np.intersect1d(want, got[:K]).size / K)
    return {
        "ann_recall_at_100": float(np.mean(hits)),
        "ann_recall_min": float(np.min(hits)),
        "exact_query_ms": float(np.median(t_exact) * 1000),
        "ann_query_ms": float(np.median(t_ann) * 1000),
        "ann_query_p99_ms": float(np.percentile(t_ann, 99) * 1000),
        "ann_speedup": float(np.median(t_exact) / np.median(t_ann)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=("ivf", "hnsw"), default="ivf")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="the IVF's k-means seed")
    parser.add_argument("--n-lists", type=int, default=None, help="IVF lists (default 4 sqrt(items))")
    parser.add_argument("--nprobe", type=ints, default=[32], help="IVF lists scanned, comma-separated")
    parser.add_argument("--connectivity", type=int, default=32)
    parser.add_argument("--expansion-add", type=int, default=200)
    parser.add_argument("--expansion-search", type=ints, default=[500], help="HNSW ef, comma-separated")
    parser.add_argument("--oversample", type=floats, default=[1.0], help="HNSW: ask for x * 100")
    parser.add_argument("--dtype", default="f16", help="HNSW vector storage")
    args = parser.parse_args()
    t = time.perf_counter()
    cat = synthetic_catalogue(args.items, dim=64, n_users=args.queries)
    print(json.dumps({"stage": "generated", "s": time.perf_counter() - t}), flush=True)
    exact = ExactDotProductIndex(cat.embeddings)
    queries = [recency_mean(cat.embeddings, s, 5, 0.7) for s in cat.sequences]
    with tempfile.TemporaryDirectory(prefix="shoprec-ann-") as tmp:
        name = "v.ivf.npy" if args.kind == "ivf" else "v.usearch"
        t = time.perf_counter()
        if args.kind == "ivf":
            spec = build_vector_index(
                cat.embeddings, tmp, name, min_items=0, n_lists=args.n_lists, seed=args.seed
            )
            files = [name, lists_file_name(name)]
        else:
            spec = build_vector_index(
                cat.embeddings,
                tmp,
                name,
                kind="usearch-hnsw",
                min_items=0,
                dtype=args.dtype,
                connectivity=args.connectivity,
                expansion_add=args.expansion_add,
            )
            files = [name]
        build_s = time.perf_counter() - t
        assert spec is not None
        built: dict[str, Any] = {
            "items": args.items,
            "kind": args.kind,
            "spec": spec.model_dump(exclude={"file", "lists_file"}),
            "ann_build_s": build_s,
            "file_mb": sum((Path(tmp) / f).stat().st_size for f in files) / 2**20,
        }
        print(json.dumps({"stage": "built", **built}), flush=True)
        rss_before = rss_mb()
        t = time.perf_counter()
        ann = load_vector_index(Path(tmp) / spec.file, spec, cat.embeddings)
        built["ann_load_s"] = time.perf_counter() - t
        if isinstance(ann, IvfAnnIndex):
            settings = [({"nprobe": p}, 1.0) for p in args.nprobe]
        else:
            settings = [
                ({"expansion_search": ef, "oversample": o}, o)
                for ef in args.expansion_search
                for o in args.oversample
            ]
        for setting, oversample in settings:
            if isinstance(ann, IvfAnnIndex):
                ann.ivf.nprobe = setting["nprobe"]
            elif isinstance(ann, HnswAnnIndex):
                ann.expansion_search = setting["expansion_search"]
            result = measure(ann, exact, queries, oversample)
            report = {
                **built,
                **setting,
                **result,
                "index_rss_mb": rss_mb() - rss_before,
                "load_average_1m": os.getloadavg()[0],
            }
            print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
