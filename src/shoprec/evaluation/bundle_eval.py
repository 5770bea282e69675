"""Evaluate an artifact bundle on a dataset's leave-one-out test targets (``shoprec evaluate``).

Uses what serving uses: ``pipeline`` (the default) is the whole recommendation pipeline as the API builds
it from the bundle (:mod:`shoprec.evaluation.pipeline_eval`); the single models are the exported ONNX
ranker through onnxruntime and the bundle's recall arrays. The figures describe the shipped artifacts, not
the training-time torch model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, leave_one_out, load_dataset
from shoprec.errors import ArtifactError
from shoprec.evaluation.pipeline_eval import evaluate_pipeline
from shoprec.evaluation.protocol import EvalResult, Scorer, evaluate
from shoprec.pipeline import build_pipeline
from shoprec.ranking.onnx_ranker import OnnxRanker
from shoprec.recall.itemcf import ItemCFNeighbours
from shoprec.recall.popularity import PopularityRecall

BUNDLE_MODELS = ("pipeline", "transformer", "transformer-int8", "item-cf", "popularity")


def evaluate_bundle(
    artifacts: str | Path,
    dataset: str | Path,
    *,
    protocol: str = "full",
    model: str = "pipeline",
    fmt: str = "auto",
    data_root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Metrics of one of the bundle's models (see ``BUNDLE_MODELS``) on the dataset's test targets."""
    if model not in BUNDLE_MODELS:
        raise ValueError(f"--model must be one of {', '.join(BUNDLE_MODELS)}, got '{model}'")
    if protocol not in ("full", "sampled"):
        raise ValueError(f"--protocol must be 'full' or 'sampled', got '{protocol}'")
    bundle = load_bundle(artifacts)
    ds = remap_to_bundle(load_dataset(dataset, fmt, data_root=data_root), bundle)
    split = leave_one_out(ds)
    if model == "pipeline":
        pipeline = build_pipeline(
            bundle, CatalogIndex.from_bundle(bundle), LocalOnnxRanker.from_bundle(bundle, threads=0)
        )
        return evaluate_pipeline(
            pipeline,
            split.test_histories(),
            split.test_targets,
            protocol,  # type: ignore[arg-type]
            progress=progress,
        )
    scorer, batch_size = bundle_scorer(bundle, model)
    return evaluate(
        scorer,
        split.test_histories(),
        split.test_targets,
        bundle.n_items,
        protocol,  # type: ignore[arg-type]
        batch_size=batch_size,
        progress=progress,
    )


def bundle_scorer(bundle: Bundle, model: str) -> tuple[Scorer, int]:
    """A full-catalogue scorer for ``model`` and the batch size that keeps its memory modest."""
    n = bundle.n_items
    if model in ("transformer", "transformer-int8"):
        spec = bundle.pipeline.ranker
        if spec is None or (model == "transformer-int8" and spec.int8_file is None):
            raise ArtifactError(f"{bundle.path}: the bundle has no {model} ranker")
        name = spec.file if model == "transformer" else spec.int8_file
        assert name is not None
        ranker = OnnxRanker(bundle.file(name), n_items=n, max_len=spec.max_len)
        # score_all gathers [batch, n_items, hidden] float32 candidate embeddings: keep that near 64 MB.
        hidden = int(bundle.item_embeddings.shape[1])
        return ranker.score_all, max(1, min(256, 16_000_000 // max(n * hidden, 1)))
    if model == "item-cf":
        cf_spec = bundle.pipeline.itemcf
        itemcf = ItemCFNeighbours(indices=bundle.itemcf_indices, scores=bundle.itemcf_scores)
        return (
            lambda histories: itemcf.score_histories(
                histories, n, max_history=cf_spec.max_history, decay=cf_spec.decay
            )
        ), 256
    return PopularityRecall(bundle.popularity).score_histories, 256


def remap_to_bundle(ds: Dataset, bundle: Bundle) -> Dataset:
    """The dataset with its item indices renumbered to the bundle's item order (matched by item id)."""
    if ds.item_ids == bundle.item_ids:
        return ds
    index = {item_id: i for i, item_id in enumerate(bundle.item_ids)}
    unknown = [item_id for item_id in ds.item_ids if item_id not in index]
    if unknown:
        shown = ", ".join(unknown[:5])
        raise ValueError(
            f"{ds.source}: {len(unknown)} item ids are not in the bundle {bundle.path} (e.g. {shown}); "
            "evaluate a bundle trained on this dataset"
        )
    mapping = np.array([index[item_id] for item_id in ds.item_ids], dtype=np.int64)
    return Dataset(
        name=ds.name,
        source=ds.source,
        item_ids=list(bundle.item_ids),
        user_ids=ds.user_ids,
        sequences=[mapping[s] for s in ds.sequences],
        catalog=ds.catalog,
        fmt=ds.fmt,
    )
