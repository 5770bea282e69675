"""Offline evaluation: ranking metrics (``metrics``) and leave-one-out protocols (``protocol``)."""

from shoprec.evaluation.metrics import (
    auc_from_ranks,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    hits_from_ranks,
    mrr,
    mrr_from_ranks,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from shoprec.evaluation.protocol import EvalResult, Scorer, evaluate, top_k_items

__all__ = [
    "EvalResult",
    "Scorer",
    "auc_from_ranks",
    "coverage_at_k",
    "evaluate",
    "f1_at_k",
    "hit_rate_at_k",
    "hits_from_ranks",
    "mrr",
    "mrr_from_ranks",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "top_k_items",
]
