"""Choose the hybrid search's fusion parameters with half of the dev set held out.

The dev set's queries are split into two fixed halves, stratified by kind (within each kind, the 1st, 3rd,
5th, ... query of ``queries.tsv`` in half A, the others in half B). For every configuration of the grid
(the pseudo-relevance feedback's items and weight, the semantic weights of short and long queries) the
served ``HybridSearch`` is scored per query (nDCG@10); then, for each half, the configuration best on it
is reported with its score on the *other* half, next to the served configuration and the search without
feedback on both halves.

Usage::

    .venv/bin/python bench/search/tune.py ARTIFACTS [--json]

ARTIFACTS must have text embeddings. Uses the same catalogue, queries and judgments as ``shoprec
search-eval`` (so the served configuration's "all" equals its nDCG@10 there).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from shoprec.artifacts import load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.cli.search_eval import KINDS, Query, read_qrels, read_queries
from shoprec.evaluation.search_metrics import grades_of, ndcg_at_k
from shoprec.search.build import build_search
from shoprec.search.hybrid import HybridSearch

HERE = Path(__file__).resolve().parent
Config = tuple[int, float, float, float]
"""(feedback items, feedback weight, semantic weight of short queries, of long queries)."""
FEEDBACK_ITEMS = (5, 10, 20, 30)
FEEDBACK_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0)
WEIGHTS = ((0.6, 0.9), (0.5, 0.9), (0.7, 0.9), (0.6, 0.8))


def halves(queries: list[Query]) -> dict[str, int]:
    """Query id -> half (0: A, 1: B), alternating within each kind in file order."""
    half: dict[str, int] = {}
    for kind in KINDS:
        for j, q in enumerate(q for q in queries if q.kind == kind):
            half[q.query_id] = j % 2
    return half


def summary(scores: dict[str, float], queries: list[Query], keep: set[str]) -> dict[str, float]:
    """Mean nDCG@10 per kind and overall over the queries in ``keep``."""
    row = {
        kind: float(np.mean([scores[q.query_id] for q in queries if q.kind == kind and q.query_id in keep]))
        for kind in KINDS
    }
    row["all"] = float(np.mean([scores[q.query_id] for q in queries if q.query_id in keep]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--queries", type=Path, default=HERE / "queries.tsv")
    parser.add_argument("--qrels", type=Path, default=HERE / "qrels.txt")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bundle = load_bundle(args.artifacts)
    catalog = CatalogIndex.from_bundle(bundle)
    hybrid = build_search(bundle, catalog)
    if not isinstance(hybrid, HybridSearch):
        raise SystemExit(f"{args.artifacts}: the bundle has no text embeddings")
    queries = read_queries(args.queries)
    qrels = read_qrels(args.qrels, [q.query_id for q in queries], catalog.item_ids)
    served: Config = (
        hybrid.feedback_items,
        hybrid.feedback_weight,
        hybrid.semantic_weight,
        hybrid.long_query_weight,
    )
    no_feedback: Config = (served[0], 0.0, served[2], served[3])
    grid = sorted(
        {
            (k if fw else served[0], fw, s, lw)
            for k, fw, (s, lw) in itertools.product(FEEDBACK_ITEMS, FEEDBACK_WEIGHTS, WEIGHTS)
        }
        | {served, no_feedback}
    )
    per_query: dict[Config, dict[str, float]] = {}
    for config in grid:
        hybrid.feedback_items, hybrid.feedback_weight, hybrid.semantic_weight, hybrid.long_query_weight = (
            config
        )
        scores = {}
        for q in queries:
            judged = qrels[q.query_id]
            ranked = [catalog.item_ids[i] for i in hybrid.match(q.text)[0][:10].tolist()]
            scores[q.query_id] = ndcg_at_k(grades_of(ranked, judged), list(judged.values()), 10)
        per_query[config] = scores
    half = halves(queries)
    parts = [{qid for qid, h in half.items() if h == k} for k in (0, 1)]
    everything = set(half)
    rows: list[dict[str, object]] = []
    for name, config in (("no feedback", no_feedback), ("served", served)):
        for k, label in enumerate("AB"):
            rows.append(
                {
                    "system": name,
                    "config": config,
                    "half": label,
                    **summary(per_query[config], queries, parts[k]),
                }
            )
        rows.append(
            {
                "system": name,
                "config": config,
                "half": "all",
                **summary(per_query[config], queries, everything),
            }
        )
    for k, label in enumerate("AB"):
        best = max(grid, key=lambda c: (summary(per_query[c], queries, parts[k])["all"], c == served))
        other = "AB"[1 - k]
        rows.append(
            {
                "system": f"best on {label}",
                "config": best,
                "half": f"{label} (fitted)",
                **summary(per_query[best], queries, parts[k]),
            }
        )
        rows.append(
            {
                "system": f"best on {label}",
                "config": best,
                "half": f"{other} (held out)",
                **summary(per_query[best], queries, parts[1 - k]),
            }
        )
    feedback = [c for c in grid if c[2:] == served[2:]]
    if args.json:
        grid_rows = [
            {
                "config": c,
                **{
                    label: summary(per_query[c], queries, p)["all"]
                    for label, p in zip("AB", parts, strict=True)
                },
            }
            for c in feedback
        ]
        print(json.dumps({"halves": rows, "feedback_grid": grid_rows}))
        return
    print("config = (feedback items, feedback weight, semantic weight short, long); nDCG@10")
    print("| system | config | half | " + " | ".join((*KINDS, "all")) + " |")
    print("|---|---|---|" + "---|" * (len(KINDS) + 1))
    for row in rows:
        config = ", ".join(f"{v:g}" for v in row["config"])  # type: ignore[attr-defined]
        cells = " | ".join(f"{row[c]:.4f}" for c in (*KINDS, "all"))
        print(f"| {row['system']} | {config} | {row['half']} | {cells} |")
    print("\nThe feedback's items and weight at the served semantic weights; nDCG@10 of all kinds")
    print("| feedback items | feedback weight | half A | half B | all |")
    print("|---|---|---|---|---|")
    for c in feedback:
        a, b, total = (summary(per_query[c], queries, p)["all"] for p in (*parts, everything))
        print(f"| {c[0]} | {c[1]:g} | {a:.4f} | {b:.4f} | {total:.4f} |")


if __name__ == "__main__":
    main()
