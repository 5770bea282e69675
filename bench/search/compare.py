"""Compare the search systems of a bundle on the judged dev set: BM25 alone, the semantic channel alone
(with and without its category prior), and fusions of the two (rank and score fusion, with and without
the pseudo-relevance feedback; the served default among them).

Usage::

    .venv/bin/python bench/search/compare.py ARTIFACTS [--json]

ARTIFACTS must have text embeddings (``shoprec train`` with a catalogue). Every system sees the same
catalogue, queries and judgments as ``shoprec search-eval``; nDCG@10 per query kind and overall.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shoprec.artifacts import load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.cli.search_eval import KINDS, read_qrels, read_queries
from shoprec.evaluation.search_metrics import grades_of, ndcg_at_k
from shoprec.search.build import build_search
from shoprec.search.hybrid import HybridSearch

HERE = Path(__file__).resolve().parent
Ranker = Callable[[str], np.ndarray]


def rrf(first: Ranker, second: Ranker, k: int = 60, depth: int = 100) -> Ranker:
    """Reciprocal-rank fusion of two rankings (the usual k = 60)."""

    def rank(query: str) -> np.ndarray:
        scores: dict[int, float] = {}
        for ranking in (first(query)[:depth], second(query)[:depth]):
            for r, item in enumerate(ranking.tolist(), start=1):
                scores[item] = scores.get(item, 0.0) + 1.0 / (k + r)
        return np.asarray(sorted(scores, key=lambda i: (-scores[i], i)), dtype=np.int64)

    return rank


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
    lexical, semantic = hybrid.lexical, hybrid.semantic
    prior = semantic.category_weight
    short, long, feedback = hybrid.semantic_weight, hybrid.long_query_weight, hybrid.feedback_weight

    def semantic_rank(weight: float) -> Ranker:
        def rank(query: str) -> np.ndarray:
            semantic.category_weight = weight
            try:
                return semantic.search(query, 100)[0]
            finally:
                semantic.category_weight = prior

        return rank

    def hybrid_rank(short: float, long: float, feedback: float) -> Ranker:
        def rank(query: str) -> np.ndarray:
            saved = hybrid.semantic_weight, hybrid.long_query_weight, hybrid.feedback_weight
            hybrid.semantic_weight, hybrid.long_query_weight, hybrid.feedback_weight = short, long, feedback
            try:
                return hybrid.match(query)[0]
            finally:
                hybrid.semantic_weight, hybrid.long_query_weight, hybrid.feedback_weight = saved

        return rank

    systems: dict[str, Ranker] = {
        "bm25": lambda q: lexical.match(q)[0],
        "semantic, no category prior": semantic_rank(0.0),
        f"semantic (prior {prior:g})": semantic_rank(prior),
        "rrf(bm25, semantic), k=60": rrf(lambda q: lexical.match(q)[0], semantic_rank(prior)),
        "linear, one weight 0.7": hybrid_rank(0.7, 0.7, 0.0),
        f"linear, {short:g} / {long:g} by query length": hybrid_rank(short, long, 0.0),
        f"+ feedback ({hybrid.feedback_items} items, weight {feedback:g}; served)": hybrid_rank(
            short, long, feedback
        ),
    }
    table: dict[str, dict[str, float]] = {}
    for name, rank in systems.items():
        per_kind: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for q in queries:
            judged = qrels[q.query_id]
            ranked = [catalog.item_ids[i] for i in rank(q.text)[:10].tolist()]
            per_kind[q.kind].append(ndcg_at_k(grades_of(ranked, judged), list(judged.values()), 10))
        row = {kind: float(np.mean(v)) for kind, v in per_kind.items()}
        row["all"] = float(np.mean([x for v in per_kind.values() for x in v]))
        table[name] = row
    if args.json:
        print(json.dumps(table))
        return
    print("| system | " + " | ".join((*KINDS, "all")) + " |")
    print("|---|" + "---|" * (len(KINDS) + 1))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in (*KINDS, "all")) + " |")


if __name__ == "__main__":
    main()
