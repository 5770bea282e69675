"""Offline evaluation of the served list: the whole recommendation pipeline, run exactly as the API runs it.

For every test user the pipeline (:class:`~shoprec.pipeline.RecommendationPipeline`, the object the API
serves) gets the user's history, cut to the ``MAX_RECENT_ITEMS`` the state store keeps, and returns its
list with the serving defaults: the candidate budget, seen items excluded, filters and diversity re-rank.
Users are batched (one ranker call per batch), which changes no user's list.

``full`` protocol: for every ``k`` the list a request for ``k`` items gets is scored as is (the diversity
cap grows with ``k``, so the top 10 of a 20-item list is not the 10-item list); a target that is not in it is
a miss, whether recall never found it or ranking put it lower. Beside HR/NDCG/P/R/F1 and coverage at every
``k`` it reports ``Recall@<budget>``, the share of targets among the candidates handed to ranking (the
ceiling recall puts on ranking), ``MRR@<largest k>`` (0 beyond the list) and ``Degraded``, the share of
users served a fallback list.

``sampled`` protocol: the target and the same 99 negatives as the single models' sampled protocol
(:func:`shoprec.evaluation.protocol.sample_negatives`) are ranked by the pipeline's ranking and fusion
(``rank_items``, what ``POST /v1/rank`` serves). Inflated, as for the single models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from shoprec.domain import MAX_RECENT_ITEMS
from shoprec.evaluation.metrics import (
    auc_from_ranks,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    hits_from_ranks,
    mrr_from_ranks,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from shoprec.evaluation.protocol import EvalResult, Protocol, sample_negatives
from shoprec.pipeline import Prepared, RecommendationPipeline, Request
from shoprec.pipeline.core import Listed
from shoprec.ranking.fusion import Fused, Fusion

IntArray = npt.NDArray[np.int64]
MISS = -1


def evaluate_pipeline(
    pipeline: RecommendationPipeline,
    histories: Sequence[IntArray],
    targets: npt.ArrayLike,
    protocol: Protocol = "full",
    *,
    ks: Iterable[int] = (5, 10, 20),
    n_negatives: int = 99,
    seed: int = 0,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Metrics of the pipeline's lists for ``histories`` (item indices, oldest first) and ``targets``."""
    if protocol == "full":
        results = evaluate_fusions(
            pipeline,
            {"pipeline": pipeline.fusion},
            histories,
            targets,
            ks=ks,
            batch_size=batch_size,
            progress=progress,
        )
        return results["pipeline"]
    if protocol != "sampled":
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    ks_t, tgt, recent, in_history = _inputs(histories, targets, ks)
    negatives = sample_negatives(histories, tgt, pipeline.catalog.n_items, n_negatives=n_negatives, seed=seed)
    metrics = _sampled(pipeline, recent, tgt, negatives, ks_t, batch_size, progress)
    return EvalResult(
        "sampled", len(recent), metrics, in_history, inflated=True, n_negatives=n_negatives, seed=seed
    )


def evaluate_fusions(
    pipeline: RecommendationPipeline,
    fusions: Mapping[str, Fusion],
    histories: Sequence[IntArray],
    targets: npt.ArrayLike,
    *,
    ks: Iterable[int] = (5, 10, 20),
    batch_size: int = 256,
    on_fused: Callable[[str, Prepared, Sequence[Fused], IntArray], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, EvalResult]:
    """Full-protocol metrics of the pipeline finished with each of ``fusions``.

    Every batch is recalled and ranked once (:meth:`RecommendationPipeline.prepare`, with a ranker call if
    any fusion needs one) and finished by each fusion; ``recommend`` is exactly ``finish(prepare(...))``, so
    each result is the one a pipeline built with that fusion would get. ``on_fused(name, prepared, fused,
    targets)`` sees every batch's fused scores under each fusion (training reads the stacker's pointwise
    metrics from them instead of predicting a second time).
    """
    ks_t, tgt, recent, in_history = _inputs(histories, targets, ks)
    asker = next((f for f in fusions.values() if f.uses_ranker), None)
    preparer = pipeline.with_fusion(asker) if asker is not None else pipeline
    finishers = {name: pipeline.with_fusion(fusion) for name, fusion in fusions.items()}
    collectors = {(name, k): _FullCollector(len(recent), k) for name in fusions for k in ks_t}
    for start in range(0, len(recent), batch_size):
        stop = min(start + batch_size, len(recent))
        requests = [Request(history=recent[u], k=ks_t[-1]) for u in range(start, stop)]
        prepared = preparer.prepare(requests, deadline=False)
        for name, finisher in finishers.items():
            fused = finisher.fuse(prepared)
            if on_fused is not None:
                on_fused(name, prepared, fused, tgt[start:stop])
            for k, recs in finisher.finish_each_k(prepared, ks_t, fused=fused).items():
                collectors[name, k].add(start, recs, tgt)
        if progress is not None:
            progress(stop, len(recent))
    budget = pipeline.merge_policy.budget
    results = {}
    for name in fusions:
        metrics: dict[str, float] = {}
        for k in ks_t:
            metrics.update(collectors[name, k].metrics(k, pipeline.catalog.n_items, budget))
        results[name] = EvalResult("full", len(recent), _ordered(metrics, ks_t), in_history, inflated=False)
    return results


def _inputs(
    histories: Sequence[IntArray], targets: npt.ArrayLike, ks: Iterable[int]
) -> tuple[tuple[int, ...], IntArray, list[IntArray], int]:
    ks_t = tuple(sorted(set(ks)))
    if not ks_t or ks_t[0] < 1:
        raise ValueError(f"ks must hold ints >= 1, got {ks!r}")
    tgt = np.asarray(targets, dtype=np.int64)
    if tgt.shape != (len(histories),):
        raise ValueError(f"targets has shape {tgt.shape}, expected ({len(histories)},)")
    if len(histories) == 0:
        raise ValueError("histories is empty: no users to evaluate")
    recent = [np.asarray(h, dtype=np.int64)[-MAX_RECENT_ITEMS:] for h in histories]
    in_history = sum(int(t in h) for h, t in zip(histories, tgt.tolist(), strict=True))
    return ks_t, tgt, recent, in_history


class _FullCollector:
    """Per-user outcomes of lists of ``k`` items under the full protocol, turned into metrics at the end."""

    def __init__(self, n: int, k: int) -> None:
        self.ranks = np.full(n, MISS, dtype=np.int64)
        self.lists = np.full((n, k), -1, dtype=np.int64)
        self.in_candidates = np.zeros(n, dtype=np.bool_)
        self.degraded = np.zeros(n, dtype=np.bool_)

    def add(self, start: int, recs: Sequence[Listed], tgt: IntArray) -> None:
        for u, rec in enumerate(recs, start=start):
            items = rec.items
            self.lists[u, : items.size] = items
            at = np.flatnonzero(items == tgt[u])
            if at.size:
                self.ranks[u] = int(at[0])
            self.in_candidates[u] = bool(np.any(rec.candidates == tgt[u]))
            self.degraded[u] = rec.degraded

    def metrics(self, k: int, n_items: int, budget: int) -> dict[str, float]:
        """The @k metrics of these k-item lists (the list a request for k items gets, diversity included);
        MRR, candidate recall and the degraded share come with them."""
        hits = _hits(self.ranks, k)
        n_relevant = np.ones(hits.shape[0], dtype=np.int64)
        found = self.ranks != MISS
        return {
            f"HR@{k}": hit_rate_at_k(hits, k),
            f"NDCG@{k}": ndcg_at_k(hits, n_relevant, k),
            f"P@{k}": precision_at_k(hits, k),
            f"R@{k}": recall_at_k(hits, n_relevant, k),
            f"F1@{k}": f1_at_k(hits, n_relevant, k),
            f"Coverage@{k}": coverage_at_k(self.lists, n_items, k),
            f"MRR@{k}": float((1.0 / (np.maximum(self.ranks, 0) + 1.0))[found].sum() / found.size),
            f"Recall@{budget}": float(self.in_candidates.mean()),
            "Degraded": float(self.degraded.mean()),
        }


def _ordered(metrics: dict[str, float], ks: tuple[int, ...]) -> dict[str, float]:
    """The metrics in a stable order: per k the list metrics, then MRR@k_max, recall and degraded."""
    names = ("HR", "NDCG", "P", "R", "F1", "Coverage")
    out = {f"{name}@{k}": metrics[f"{name}@{k}"] for k in ks for name in names}
    out.update({key: value for key, value in metrics.items() if key not in out and not key.startswith("MRR")})
    out[f"MRR@{ks[-1]}"] = metrics[f"MRR@{ks[-1]}"]
    return out


def _sampled(
    pipeline: RecommendationPipeline,
    recent: Sequence[IntArray],
    tgt: IntArray,
    negatives: IntArray,
    ks: tuple[int, ...],
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, float]:
    n = len(recent)
    ranks = np.empty(n, dtype=np.int64)
    degraded = np.zeros(n, dtype=np.bool_)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        pairs = [
            (Request(history=recent[u]), np.concatenate(([tgt[u]], negatives[u]))) for u in range(start, stop)
        ]
        for u, (ranked, fallback) in enumerate(pipeline.rank_items(pairs, deadline=False), start=start):
            ranks[u] = [c.item for c in ranked].index(int(tgt[u]))
            degraded[u] = fallback
        if progress is not None:
            progress(stop, n)
    metrics = _list_metrics(hits_from_ranks(ranks, ks[-1]), ks)
    metrics["MRR"] = mrr_from_ranks(ranks)
    metrics["AUC"] = auc_from_ranks(ranks, negatives.shape[1] + 1)
    metrics["Degraded"] = float(degraded.mean())
    return metrics


def _hits(ranks: IntArray, k_max: int) -> npt.NDArray[np.bool_]:
    return np.asarray(ranks[:, None] == np.arange(k_max)[None, :], dtype=np.bool_)


def _list_metrics(hits: npt.NDArray[np.bool_], ks: tuple[int, ...]) -> dict[str, float]:
    n_relevant = np.ones(hits.shape[0], dtype=np.int64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate_at_k(hits, k)
        out[f"NDCG@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"P@{k}"] = precision_at_k(hits, k)
        out[f"R@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"F1@{k}"] = f1_at_k(hits, n_relevant, k)
    return out
