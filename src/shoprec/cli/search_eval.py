"""``shoprec search-eval``: score the served search of a bundle on a judged query set.

The query set is two files (bench/search/ holds the Scientific one, and its README how it was built):

* queries, tab-separated with the header ``query_id<TAB>kind<TAB>query``; ``kind`` is one of
  ``keyword``, ``natural``, ``typo`` and ``attribute``;
* qrels, TREC format: ``query_id 0 item_id grade`` per line, grades 0..3 (3: exactly what was asked,
  2: a good substitute, 1: related, 0: judged not relevant); unjudged items count as 0.

Each query goes through the recommendation service's ``search`` as the API runs it without a user or
filters, asked for ``max(k, 50)`` items. Reported, overall and per kind (means over queries): nDCG@k
(graded, linear gains, log2 discount, ideal from the qrels), Recall@50 and MRR, both with grade >= 2 as
relevant (:mod:`shoprec.evaluation.search_metrics`). A malformed file is an error naming the file and line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from shoprec.cli.common import cli_errors, progress_bars, stdout_console

if TYPE_CHECKING:
    from shoprec.services.recommendation import RecommendationService

KINDS = ("keyword", "natural", "typo", "attribute")
RECALL_DEPTH = 50
QUERIES_HEADER = ("query_id", "kind", "query")


@dataclass(frozen=True)
class Query:
    """One judged query of the set."""

    query_id: str
    kind: str
    text: str


Qrels = dict[str, dict[str, int]]
"""query id -> item id -> grade."""


def read_queries(path: Path) -> list[Query]:
    """The queries of ``path`` (module docstring); ``ValueError`` naming ``path:line`` when malformed."""
    lines = _read_lines(path)
    if not lines or tuple(f.strip() for f in lines[0].split("\t")) != QUERIES_HEADER:
        raise ValueError(f"{path}:1: the first line must be the header {chr(9).join(QUERIES_HEADER)!r}")
    queries: list[Query] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(fields)}")
        query_id, kind, text = (f.strip() for f in fields)
        if not query_id or not text:
            raise ValueError(f"{path}:{lineno}: empty query id or query")
        if kind not in KINDS:
            raise ValueError(f"{path}:{lineno}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        if query_id in seen:
            raise ValueError(f"{path}:{lineno}: duplicate query id {query_id!r}")
        seen.add(query_id)
        queries.append(Query(query_id, kind, text))
    if not queries:
        raise ValueError(f"{path}: no queries")
    return queries


def read_qrels(path: Path, query_ids: Sequence[str], item_ids: Sequence[str] | None = None) -> Qrels:
    """The judgments of ``path`` (``query_id 0 item_id grade``) for the queries ``query_ids``, checked
    against the catalogue's ``item_ids`` when given; ``ValueError`` naming ``path:line`` when malformed,
    and naming the query when one of ``query_ids`` has no judgment."""
    known_queries = set(query_ids)
    known_items = set(item_ids) if item_ids is not None else None
    qrels: Qrels = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4:
            raise ValueError(
                f"{path}:{lineno}: expected 4 fields 'query_id 0 item_id grade', got {len(fields)}"
            )
        query_id, _iteration, item_id, grade_text = fields
        if query_id not in known_queries:
            raise ValueError(f"{path}:{lineno}: query id {query_id!r} is not in the queries file")
        if known_items is not None and item_id not in known_items:
            raise ValueError(f"{path}:{lineno}: item {item_id!r} is not in the bundle's catalogue")
        try:
            grade = int(grade_text)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: grade must be an integer 0..3, got {grade_text!r}") from None
        if not 0 <= grade <= 3:
            raise ValueError(f"{path}:{lineno}: grade must be an integer 0..3, got {grade}")
        judged = qrels.setdefault(query_id, {})
        if item_id in judged:
            raise ValueError(f"{path}:{lineno}: item {item_id!r} judged twice for query {query_id!r}")
        judged[item_id] = grade
    missing = [q for q in query_ids if q not in qrels]
    if missing:
        raise ValueError(f"{path}: no judgments for {len(missing)} query id(s): {', '.join(missing[:10])}")
    return qrels


def evaluate_search(
    search: Callable[[str, int], list[str]],
    queries: Sequence[Query],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    k: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``search(query, n)`` (item ids, best first) for every query and score it: the JSON document
    ``shoprec search-eval --json`` prints (overall and per-kind means, and every query's scores)."""
    from shoprec.evaluation.search_metrics import (
        RELEVANT_GRADE,
        grades_of,
        mean,
        ndcg_at_k,
        recall_at_k,
        reciprocal_rank,
    )

    if k < 1:
        raise ValueError(f"--k must be >= 1, got {k}")
    ndcg_key, recall_key = f"nDCG@{k}", f"Recall@{RECALL_DEPTH}"
    depth = max(k, RECALL_DEPTH)
    rows: list[dict[str, Any]] = []
    for done, query in enumerate(queries, start=1):
        judged = qrels[query.query_id]
        gains = grades_of(search(query.text, depth)[:depth], judged)
        n_relevant = sum(1 for g in judged.values() if g >= RELEVANT_GRADE)
        rows.append(
            {
                "query_id": query.query_id,
                "kind": query.kind,
                "query": query.text,
                ndcg_key: ndcg_at_k(gains, list(judged.values()), k),
                recall_key: recall_at_k(gains, n_relevant, RECALL_DEPTH),
                "RR": reciprocal_rank(gains),
                "relevant": n_relevant,
            }
        )
        if progress is not None:
            progress(done, len(queries))

    def summary(selected: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "queries": len(selected),
            ndcg_key: mean([r[ndcg_key] for r in selected]),
            recall_key: mean([r[recall_key] for r in selected]),
            "MRR": mean([r["RR"] for r in selected]),
        }

    return {
        "k": k,
        "relevant_grade": RELEVANT_GRADE,
        "overall": summary(rows),
        "per_kind": {kind: summary([r for r in rows if r["kind"] == kind]) for kind in KINDS},
        "per_query": rows,
    }


def search_eval(
    artifacts: Annotated[Path, typer.Argument(help="Artifact bundle folder written by `shoprec train`.")],
    queries_file: Annotated[
        Path, typer.Option("--queries", help="Queries: TSV with the header query_id, kind, query.")
    ],
    qrels_file: Annotated[Path, typer.Option("--qrels", help="Judgments, TREC format: qid 0 item_id grade.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    k: Annotated[int, typer.Option("--k", min=1, help="Cut-off of nDCG.")] = 10,
    semantic: Annotated[
        bool,
        typer.Option(
            "--semantic/--no-semantic",
            help="Fuse the semantic channel when the bundle has text embeddings (as served by default); "
            "--no-semantic: BM25 alone.",
        ),
    ] = True,
) -> None:
    """Score the bundle's search (no user, no filters) on a judged query set: nDCG@k, Recall@50 and MRR,
    overall and per query kind."""
    with cli_errors():
        queries = read_queries(queries_file)
    with cli_errors(), tempfile.TemporaryDirectory(prefix="shoprec-search-eval-") as state_dir:
        service = _search_service(artifacts, Path(state_dir), semantic=semantic)
        qrels = read_qrels(qrels_file, [q.query_id for q in queries], service.catalog.item_ids)

        def search(text: str, n: int) -> list[str]:
            return [item.item_id for item in service.search(text, k=n).items]

        with progress_bars() as progress:
            task = progress.add_task("searching", total=len(queries))
            result = evaluate_search(
                search,
                queries,
                qrels,
                k=k,
                progress=lambda d, t: progress.update(task, completed=d, total=t),
            )
        result["model_version"] = service.model_version
        result["search"] = service.search_index.name
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    ndcg_key, recall_key = f"nDCG@{k}", f"Recall@{RECALL_DEPTH}"
    table = Table(title=f"search · {result['overall']['queries']} queries · relevant: grade >= 2")
    table.add_column("kind")
    for column in ("queries", ndcg_key, recall_key, "MRR"):
        table.add_column(column, justify="right")
    summaries = [*result["per_kind"].items(), ("all", result["overall"])]
    for name, s in summaries:
        table.add_row(
            name, str(s["queries"]), f"{s[ndcg_key]:.4f}", f"{s[recall_key]:.4f}", f"{s['MRR']:.4f}"
        )
    stdout_console().print(table)


def _search_service(artifacts: Path, state_dir: Path, *, semantic: bool = True) -> RecommendationService:
    """The recommendation service as the container builds it for ``artifacts`` (local ONNX ranker, an
    in-process cache, a throw-away SQLite state that search without a user never reads). Without
    merchandising rules: the figures score the search itself, never a pinned or blocked item."""
    from shoprec.container import build_container
    from shoprec.settings import Settings

    settings = Settings(
        artifacts=str(artifacts),
        state=f"sqlite:///{state_dir / 'state.db'}",
        cache="memory://",
        ranker="onnx",
        model_version_parameter=None,
        search_semantic=semantic,
    )
    return build_container(settings, merchandising=False).recommendations


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
