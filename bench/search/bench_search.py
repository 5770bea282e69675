"""Search latency in process and the cost of the first search, for one bundle.

* **first search**: ``GET /v1/search`` once in a fresh process: makes the search index (loads the
  bundle's prebuilt BM25 index, or builds one when the bundle has none) and loads the text encoder;
* **index**: the lexical index alone, ``shoprec.search.build.lexical_search`` (load or build), the
  median of ``--repeats``;
* **warm requests**: ``GET /v1/search`` through the ASGI app over the dev set's queries, each one encoding
  its query (the query-vector cache emptied before every request): ``bench/bench_api.py``'s
  ``search_latency``, which ``make bench-api`` runs too.

Usage::

    .venv/bin/python bench/search/bench_search.py ARTIFACTS [--requests 840] [--repeats 5]
        [--feedback-weight W] [--json]

Other work on the machine inflates every figure (the load average is printed with them).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import search_latency  # noqa: E402  (a script beside this one, not a package)

from shoprec.artifacts import load_bundle  # noqa: E402
from shoprec.catalog import CatalogIndex  # noqa: E402
from shoprec.container import build_container  # noqa: E402
from shoprec.search.build import lexical_search  # noqa: E402
from shoprec.search.hybrid import HybridSearch  # noqa: E402
from shoprec.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--requests", type=int, default=840)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--feedback-weight",
        type=float,
        help="serve this pseudo-relevance feedback weight (0: none); the index is then made before the "
        "first search, so first_search_ms leaves it out",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shoprec-bench-search-") as tmp:
        settings = Settings(
            artifacts=str(args.artifacts), state=f"sqlite:///{tmp}/state.db", cache="memory://"
        )
        container = build_container(settings)
        if args.feedback_weight is not None:
            index = container.recommendations.live.base_search()
            if not isinstance(index, HybridSearch):
                raise SystemExit(f"{args.artifacts}: the bundle has no text embeddings")
            index.feedback_weight = args.feedback_weight
        search = search_latency(container, args.requests)
    bundle = load_bundle(args.artifacts)
    catalog = CatalogIndex.from_bundle(bundle)
    index_ms = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        lexical_search(bundle, catalog)
        index_ms.append((time.perf_counter() - start) * 1000.0)
    report: dict[str, Any] = {
        "artifacts": str(args.artifacts),
        "prebuilt_index": bundle.pipeline.search is not None,
        "feedback_weight": args.feedback_weight,
        "index_ms_median": float(np.median(index_ms)),
        **search,
        "load_average": [load_before, os.getloadavg()[0]],
    }
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
