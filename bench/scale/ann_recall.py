"""The ANN index alone at a catalogue size: build time, file size, load time, recall@100 against exact
search and the speed-up, for given graph parameters (no bundle, no serving: ``bench/bench_scale.py`` does
those). For sizes whose whole bundle takes too long to build here, and for tuning.

Usage::

    nice -n 10 .venv/bin/python bench/scale/ann_recall.py --items 1000000 [--connectivity 16]
        [--expansion-add 100] [--expansion-search 500] [--queries 300]

Prints a JSON line when the vectors are generated, one when the index is built, and the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread for the exact search, as in a one-vCPU Lambda

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import synthetic_catalogue  # noqa: E402

from shoprec.recall.ann import build_vector_index, load_vector_index  # noqa: E402
from shoprec.recall.channels import ExactDotProductIndex, recency_mean  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--connectivity", type=int, default=32)
    parser.add_argument("--expansion-add", type=int, default=200)
    parser.add_argument("--expansion-search", type=int, default=500)
    parser.add_argument("--dtype", default="f16")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    t = time.perf_counter()
    cat = synthetic_catalogue(args.items, dim=64, n_users=args.queries)
    print(json.dumps({"stage": "generated", "s": time.perf_counter() - t}), flush=True)
    with tempfile.TemporaryDirectory(prefix="shoprec-ann-") as tmp:
        t = time.perf_counter()
        spec = build_vector_index(
            cat.embeddings,
            tmp,
            "v.usearch",
            min_items=0,
            dtype=args.dtype,
            connectivity=args.connectivity,
            expansion_add=args.expansion_add,
            expansion_search=args.expansion_search,
        )
        build_s = time.perf_counter() - t
        assert spec is not None
        print(json.dumps({"stage": "built", "s": build_s}), flush=True)
        path = Path(tmp) / spec.file
        t = time.perf_counter()
        ann = load_vector_index(path, spec, cat.embeddings)
        load_s = time.perf_counter() - t
        exact = ExactDotProductIndex(cat.embeddings)
        queries = [recency_mean(cat.embeddings, s, 5, 0.7) for s in cat.sequences]
        ann.search(queries[0], 100)
        hits, t_exact, t_ann = [], [], []
        for q in queries:  # alternating, so that the machine's load drifts over both alike
            t = time.perf_counter()
            want, _ = exact.search(q, 100)
            t_exact.append(time.perf_counter() - t)
            t = time.perf_counter()
            got, _ = ann.search(q, 100)
            t_ann.append(time.perf_counter() - t)
            hits.append(np.intersect1d(want, got).size / 100)
        report = {
            "items": args.items,
            **{k: v for k, v in vars(args).items() if k not in ("items", "queries")},
            "ann_build_s": build_s,
            "ann_load_s": load_s,
            "file_mb": path.stat().st_size / 2**20,
            "ann_recall_at_100": float(np.mean(hits)),
            "exact_query_ms": float(np.median(t_exact) * 1000),
            "ann_query_ms": float(np.median(t_ann) * 1000),
            "ann_speedup": float(np.median(t_exact) / np.median(t_ann)),
            "load_average_1m": os.getloadavg()[0],
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
