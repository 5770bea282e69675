"""``shoprec train``: load data, fit recall models and the Transformer ranker, evaluate, export, bundle."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import (
    CATALOG,
    FUSION,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    RANKER_INT8_ONNX,
    RANKER_ONNX,
    BundleWriter,
    ItemCFSpec,
    Manifest,
    PipelineSpec,
    RankerSpec,
    dataset_summary,
)
from shoprec.artifacts.specs import INT8_VARIANT
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, Split, leave_one_out, load_dataset
from shoprec.data.loaders import with_events
from shoprec.data.overlay import apply_overlay
from shoprec.evaluation import evaluate
from shoprec.evaluation.pipeline_eval import evaluate_fusions, evaluate_pipeline
from shoprec.evaluation.protocol import Scorer
from shoprec.items import CatalogItem
from shoprec.pipeline import Prepared, assemble_pipeline
from shoprec.ranking.fusion import Fused, RankerFusion
from shoprec.ranking.onnx_ranker import OnnxRanker
from shoprec.ranking.tokens import left_pad
from shoprec.recall.ann import add_vector_indexes
from shoprec.recall.itemcf import ItemCFNeighbours, fit_itemcf
from shoprec.recall.popularity import PopularityRecall, fit_popularity
from shoprec.search.build import write_search_index
from shoprec.training.config import TrainConfig
from shoprec.training.export import export_onnx, parity_max_abs_diff, quantize_int8
from shoprec.training.fusion import StackingModel, check_fitted_on_train, fit_fusions, pointwise_metrics
from shoprec.training.report_html import REPORT_HTML, file_sizes, render_html_report
from shoprec.training.sasrec import SASRec
from shoprec.training.text_encoder import embed_catalog, text_encoder_available
from shoprec.training.trainer import EpochLog, train_sasrec

REPORT_MD = "report.md"
INT8_EVAL_USERS = 5000
"""Test users on which the int8 ranker's quality is compared with the fp32 one's."""
METRICS_JSON = "metrics.json"
TRAINING_LOG = "training_log.json"
CURVES_PNG = "training_curves.png"

PIPELINE = "pipeline"
MODELS = (
    "popularity",
    "item-cf",
    "transformer",
    "pipeline:ranker",
    "pipeline:equal",
    "pipeline:weighted",
    "pipeline:stacking",
    PIPELINE,
)
"""Rows of the report's tables: the single models, the pipeline with each fusion, and the pipeline as
served (the fusion chosen on the validation targets)."""
PROTOCOLS = ("full", "sampled")
KS = (5, 10, 20)
TABLE_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR", "AUC", "Coverage@10")


class TrainingUI(Protocol):
    """What the pipeline reports while it runs (the CLI draws progress bars from it)."""

    def stage(self, name: str) -> None: ...

    def progress(self, task: str, done: int, total: int) -> None: ...

    def epoch(self, log: EpochLog, best: float) -> None: ...


class _StageClock:
    """Passes everything to ``ui`` and times each stage (from its ``stage`` call to the next one)."""

    def __init__(self, ui: TrainingUI) -> None:
        self.ui = ui
        self._stages: list[tuple[str, float]] = []

    def stage(self, name: str) -> None:
        self._stages.append((name, time.perf_counter()))
        self.ui.stage(name)

    def progress(self, task: str, done: int, total: int) -> None:
        self.ui.progress(task, done, total)

    def epoch(self, log: EpochLog, best: float) -> None:
        self.ui.epoch(log, best)

    def seconds(self) -> dict[str, float]:
        """Seconds per stage so far, the current one up to now."""
        ends = [t for _, t in self._stages[1:]] + [time.perf_counter()]
        return {name: round(end - start, 1) for (name, start), end in zip(self._stages, ends, strict=True)}


class _SilentUI:
    def stage(self, name: str) -> None:
        pass

    def progress(self, task: str, done: int, total: int) -> None:
        pass

    def epoch(self, log: EpochLog, best: float) -> None:
        pass


@dataclass
class TrainReport:
    out_dir: Path
    manifest: Manifest
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]  # split → protocol → model → metric
    train_seconds: float
    total_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def torch_scorer(model: SASRec, max_len: int) -> Scorer:
    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        # Drop the all-padding columns on the left: a batch is only as wide as its longest history.
        width = max(1, min(max_len, max(len(h) for h in histories)))
        # The model is on a GPU while a torchrun rank trains on one.
        device = next(model.parameters()).device
        tokens = torch.from_numpy(left_pad(histories, max_len)[:, -width:]).to(device)
        with torch.no_grad():
            return model.score_all(tokens).cpu().numpy()

    return score


def run_training(
    dataset: str | Path,
    out_dir: Path,
    config: TrainConfig | None = None,
    *,
    fmt: str = "auto",
    data_root: Path | None = None,
    checkpoint_dir: Path | None = None,
    ui: TrainingUI | None = None,
    text: bool | None = None,
    overlay: Sequence[CatalogItem] = (),
    events: str | Path | None = None,
) -> TrainReport:
    """Train every model on ``dataset``, fit the fusion on the validation targets, evaluate the single models
    and the whole served pipeline on the test targets, and write the bundle to ``out_dir``.

    ``events``: an event log whose events are appended to the dataset's (:func:`with_events`).
    ``text``: embed the items' texts for semantic search (:func:`embed_catalog`); ``None`` (default) does
    so when the catalogue has titles and the sentence encoder's package is installed, ``True`` requires it.
    """
    config = config or TrainConfig()
    ui = _StageClock(ui or _SilentUI())
    t_start = time.perf_counter()
    ui.stage("loading data")
    ds = load_dataset(dataset, fmt, data_root=data_root, progress=lambda d, t: ui.progress("load", d, t))
    if events is not None:  # an event log (docs/event-log.md): its events follow the dataset's
        ds = with_events(ds, load_dataset(events, "eventlog", data_root=data_root))
    if overlay:
        ds = apply_overlay(ds, overlay)
    split = leave_one_out(ds)
    n = ds.n_items
    catalog_rows = _catalog_rows(ds) if ds.catalog is not None else []
    catalog = CatalogIndex.build(ds.item_ids, {row["item_id"]: row for row in catalog_rows})
    if text is None:
        text = any(catalog.titles) and text_encoder_available()
    elif text and not any(catalog.titles):
        raise ValueError(f"{dataset}: --text needs item titles, and the dataset has no catalogue text")

    ui.stage("fitting popularity and item-CF")
    # Validation candidates use models fitted on seq[:-2]; test candidates (and the bundle) use seq[:-1],
    # the same history the test protocol feeds every model.
    train_plus_valid = split.train_with_valid()
    pop_valid = PopularityRecall(fit_popularity(split.train, n))
    pop_test = PopularityRecall(fit_popularity(train_plus_valid, n))
    cf_valid = fit_itemcf(split.train, n)
    cf_test = fit_itemcf(train_plus_valid, n)

    ui.stage("training the Transformer ranker")
    valid_h = split.valid_histories()
    # Validated in order of history length: a batch is as wide as its longest history, and the metrics do
    # not depend on the users' order.
    by_length = np.argsort([len(h) for h in valid_h], kind="stable")
    valid_h_sorted = [valid_h[i] for i in by_length]
    valid_t_sorted = np.asarray(split.valid_targets)[by_length]

    def validate(model: SASRec) -> float:
        result = evaluate(
            torch_scorer(model, config.max_len),
            valid_h_sorted,
            valid_t_sorted,
            n,
            "full",
            ks=(10,),
            progress=lambda d, t: ui.progress("validate", d, t),
        )
        return result.metrics["NDCG@10"]

    best = [-1.0]

    def on_epoch(log: EpochLog) -> None:
        best[0] = max(best[0], log.valid_ndcg10)
        ui.epoch(log, best[0])

    result = train_sasrec(
        split.train,
        n,
        config,
        validate,
        checkpoint_dir=checkpoint_dir,
        on_batch=lambda e, b, nb, loss: ui.progress(f"epoch {e}", b, nb),
        on_epoch=on_epoch,
    )
    model = result.model
    embeddings = model.item_table().detach().numpy().astype(np.float32)
    train_seconds = time.perf_counter() - t_start

    ui.stage("evaluating the single models")
    scorers: dict[str, dict[str, Scorer]] = {
        "valid": {
            "popularity": pop_valid.score_histories,
            "item-cf": _cf_scorer(cf_valid, n),
            "transformer": torch_scorer(model, config.max_len),
        },
        "test": {
            "popularity": pop_test.score_histories,
            "item-cf": _cf_scorer(cf_test, n),
            "transformer": torch_scorer(model, config.max_len),
        },
    }
    targets = {"valid": (valid_h, split.valid_targets), "test": (split.test_histories(), split.test_targets)}
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    # Validation figures are for the learning curve and model choice: the full protocol is enough there.
    for split_name, protocols in (("valid", ("full",)), ("test", PROTOCOLS)):
        hist, tgt = targets[split_name]
        for protocol in protocols:
            for model_name, scorer in scorers[split_name].items():
                res = evaluate(
                    scorer,
                    hist,
                    tgt,
                    n,
                    protocol,  # type: ignore[arg-type]
                    ks=KS,
                    progress=_progress_to(ui, f"{split_name}/{protocol}/{model_name}"),
                )
                metrics.setdefault(split_name, {}).setdefault(protocol, {})[model_name] = res.metrics

    with BundleWriter(out_dir) as writer:
        ui.stage("exporting ONNX")
        onnx_path = export_onnx(model, writer.path_for(RANKER_ONNX))
        int8_path = quantize_int8(onnx_path, writer.path_for(RANKER_INT8_ONNX))
        export_report = _check_export(model, config, split, ds, onnx_path, int8_path, ui)
        # The bundle serves the int8 variant (docs/compression.md: on Beauty 3.6x smaller and 18 % faster
        # for 64 users x 300 candidates, NDCG@10 unchanged), so the fusion is fitted and the served pipeline
        # evaluated with the file that serving loads.
        ranker_spec = RankerSpec(max_len=config.max_len, default_variant=INT8_VARIANT)
        spec = PipelineSpec(itemcf=ItemCFSpec(fit=_itemcf_params()), ranker=ranker_spec)
        ranker = LocalOnnxRanker(
            writer.path_for(ranker_spec.variant_file(None)),
            ds.item_ids,
            max_len=config.max_len,
            threads=config.threads,
        )
        text_report: dict[str, Any] = {}
        text_vectors = None
        if text:
            # Before the fusion fit: the content channel is one of the sources the fusion weighs.
            ui.stage("embedding the item texts")
            text_index = embed_catalog(catalog, writer, threads=config.threads)
            spec = spec.model_copy(update={"text": text_index.spec})
            text_vectors = text_index.vectors
            text_report = {k: v for k, v in vars(text_index).items() if k not in ("spec", "vectors")}

        ui.stage("fitting the fusion on the validation targets")
        check_fitted_on_train(split, split.train, "the Transformer")  # train_sasrec was given split.train
        valid_pipeline = assemble_pipeline(
            spec,
            catalog,
            popularity=pop_valid.popularity,
            itemcf=cf_valid,
            embeddings=embeddings,
            text_embeddings=text_vectors,
            ranker=ranker,
            fusion=RankerFusion(),
        )
        fusion = fit_fusions(
            valid_pipeline,
            split,
            fitted_on=split.train,
            seed=config.seed,
            threads=config.threads,
            progress=_progress_to(ui, "validation candidates"),
        )

        ui.stage("evaluating the served pipeline")
        test_pipeline = assemble_pipeline(
            spec,
            catalog,
            popularity=pop_test.popularity,
            itemcf=cf_test,
            embeddings=embeddings,
            text_embeddings=text_vectors,
            ranker=ranker,
            fusion=fusion.fusion,
        )
        pointwise = _Pointwise(fusion.stacker)
        variants = evaluate_fusions(
            test_pipeline,
            fusion.variants,
            split.test_histories(),
            split.test_targets,
            ks=KS,
            on_fused=pointwise.add,
            progress=_progress_to(ui, "test/full/pipeline"),
        )
        full = metrics["test"]["full"]
        for name, res in variants.items():
            full[f"{PIPELINE}:{name}"] = res.metrics
        full[PIPELINE] = variants[fusion.chosen].metrics
        sampled = evaluate_pipeline(
            test_pipeline,
            split.test_histories(),
            split.test_targets,
            "sampled",
            ks=KS,
            progress=_progress_to(ui, "test/sampled/pipeline"),
        )
        metrics["test"]["sampled"][PIPELINE] = sampled.metrics
        fusion_report = {**fusion.summary(), "stacking_pointwise_test": pointwise.metrics()}

        ui.stage("writing the bundle")
        if fusion.chosen == "stacking":
            writer.add_npz(FUSION, fusion.stacker.ensemble.to_arrays())
        writer.add_json(ITEM_IDS, ds.item_ids)
        writer.add_npy(POPULARITY, pop_test.popularity)
        writer.add_npz(ITEMCF, {"indices": cf_test.indices, "scores": cf_test.scores})
        writer.add_npy(ITEM_EMBEDDINGS, embeddings)
        # ANN indexes of the item and text vectors, from ANN_MIN_ITEMS items up (spec unchanged below).
        spec = add_vector_indexes(spec, writer, embeddings, text_vectors, threads=config.threads)
        if catalog_rows:
            writer.add_jsonl(CATALOG, catalog_rows)
            # Serving loads it instead of tokenising the catalogue on the first search.
            spec = spec.model_copy(update={"search": write_search_index(catalog, writer)})
        total_seconds = time.perf_counter() - t_start
        timings = {
            "train_seconds": round(result.seconds, 1),
            "total_seconds": round(total_seconds, 1),
        }
        training_log = {
            "epochs": [vars(e) for e in result.epochs],
            "best_epoch": result.best_epoch,
            "best_valid_ndcg10": result.best_valid_ndcg10,
            "stopped_by": result.stopped_by,
            "loss": result.loss,
            "device": result.device,
            **timings,
            "stage_seconds": ui.seconds(),
        }
        writer.add_json(TRAINING_LOG, training_log)
        writer.add_json(METRICS_JSON, {**metrics, "fusion": fusion_report})
        plot_training_curves(result.epochs, metrics, writer.path_for(CURVES_PNG))
        writer.add_bytes(
            REPORT_MD,
            render_report(ds, config, metrics, training_log, export_report, fusion_report).encode("utf-8"),
        )
        writer.add_bytes(
            REPORT_HTML,
            render_html_report(
                dataset=dataset_summary(ds),
                metrics={**metrics, "fusion": fusion_report},
                training_log=training_log,
                files=file_sizes(writer.staging),
            ).encode("utf-8"),
        )
        hyper = {"transformer": config.to_dict(), "item-cf": _itemcf_params()}
        manifest = writer.commit(
            dataset=dataset_summary(ds),
            hyperparameters=hyper,
            metrics={"test": metrics["test"], "valid": metrics["valid"], "fusion": fusion_report},
            pipeline=spec.model_copy(update={"fusion": fusion.fusion.spec}),
            extra={
                "export": export_report,
                **({"text": text_report} if text_report else {}),
                "training": {k: v for k, v in training_log.items() if k != "epochs"},
            },
        )
    return TrainReport(
        out_dir=out_dir,
        manifest=manifest,
        metrics=metrics,
        train_seconds=result.seconds,
        total_seconds=time.perf_counter() - t_start,
        extra={**export_report, "fusion": fusion_report, "setup_and_training_seconds": train_seconds},
    )


class _Pointwise:
    """The stacker's predicted relevance against the labels of every (test user, candidate) pair, summed
    batch by batch while the pipeline is evaluated (the seed's accuracy, MSE, MAE and RMSE). It reads the
    stacking fusion's scores of each batch (its ensemble's output) instead of predicting them again."""

    def __init__(self, stacker: StackingModel, fusion: str = "stacking") -> None:
        self.stacker = stacker
        self.fusion = fusion
        self.n = 0
        self.sums = {"accuracy": 0.0, "MSE": 0.0, "MAE": 0.0}

    def add(
        self, name: str, prepared: Prepared, fused: Sequence[Fused], targets: npt.NDArray[np.int64]
    ) -> None:
        if name != self.fusion or prepared.fallback:
            return  # another fusion's scores, or a batch the stacker did not score
        sets = [
            (s, f.scores, t)
            for s, f, t in zip(prepared.signals(), fused, targets.tolist(), strict=True)
            if s.ranker is not None  # cold-start users are fused by popularity, not by the stacker
        ]
        if not sets:
            return
        labels = np.concatenate([s.items == t for s, _, t in sets])
        part = pointwise_metrics(self.stacker.calibrated(np.concatenate([f for _, f, _ in sets])), labels)
        rows = int(labels.size)
        for key in self.sums:
            self.sums[key] += part[key] * rows
        self.n += rows

    def metrics(self) -> dict[str, float]:
        if not self.n:
            return {}
        out = {key: value / self.n for key, value in self.sums.items()}
        out["RMSE"] = math.sqrt(out["MSE"])
        out["pairs"] = float(self.n)
        return out


def train_replica(
    dataset: str | Path,
    config: TrainConfig,
    *,
    fmt: str = "auto",
    data_root: Path | None = None,
    checkpoint_dir: Path | None = None,
) -> None:
    """What every ``torchrun`` rank but 0 runs beside :func:`run_training`: the same data, split and
    training steps (rank 0 validates, evaluates and writes the bundle; this rank only contributes gradients).
    """
    ds = load_dataset(dataset, fmt, data_root=data_root)
    split = leave_one_out(ds)

    def rank_zero_validates(model: SASRec) -> float:
        raise RuntimeError("only rank 0 validates")

    train_sasrec(split.train, ds.n_items, config, rank_zero_validates, checkpoint_dir=checkpoint_dir)


def _progress_to(ui: TrainingUI, task: str) -> Callable[[int, int], None]:
    return lambda done, total: ui.progress(task, done, total)


def _cf_scorer(cf: ItemCFNeighbours, n_items: int) -> Scorer:
    return lambda histories: cf.score_histories(histories, n_items)


def _itemcf_params() -> dict[str, Any]:
    from shoprec.recall import itemcf

    return {
        "k": itemcf.DEFAULT_K,
        "alpha": itemcf.DEFAULT_ALPHA,
        "backward_weight": itemcf.DEFAULT_BACKWARD_WEIGHT,
        "distance_power": itemcf.DEFAULT_DISTANCE_POWER,
        "decay": itemcf.DEFAULT_DECAY,
        "max_history": itemcf.DEFAULT_MAX_HISTORY,
    }


def _catalog_rows(ds: Dataset) -> list[dict[str, Any]]:
    assert ds.catalog is not None
    rows = []
    for item_id in ds.item_ids:
        meta = ds.catalog.get(item_id)
        if meta is None:
            continue
        rows.append(
            {
                "item_id": item_id,
                "title": meta.title,
                "brand": meta.brand,
                "categories": list(meta.categories),
                "description": meta.description,
                "price": meta.price,
                # Delisted or out of stock in the live catalogue: the interactions are real and stay in
                # the data, the item is never served (CatalogIndex.build reads this).
                **({} if meta.available else {"available": False}),
            }
        )
    return rows


def _check_export(
    model: SASRec,
    config: TrainConfig,
    split: Split,
    ds: Dataset,
    onnx_path: Path,
    int8_path: Path,
    ui: TrainingUI,
) -> dict[str, Any]:
    """Parity of ONNX vs torch on real test sequences; size, latency and quality of the int8 variant."""
    n = ds.n_items
    hist = split.test_histories()
    rng = np.random.default_rng(config.seed)
    users = rng.choice(len(hist), size=min(256, len(hist)), replace=False)
    seq = torch.from_numpy(left_pad([hist[u] for u in users], config.max_len))
    cand = torch.from_numpy(rng.integers(1, n + 1, size=(len(users), min(300, n))))
    parity = parity_max_abs_diff(model, onnx_path, seq, cand)
    if parity > 1e-4:
        raise RuntimeError(f"ONNX export differs from torch by {parity:.2e} (> 1e-4)")

    report: dict[str, Any] = {"parity_max_abs_diff": parity}
    rankers = {}
    for label, path in (("fp32", onnx_path), ("int8", int8_path)):
        rankers[label] = OnnxRanker(path, n_items=n, max_len=config.max_len)
        report[f"{label}_bytes"] = path.stat().st_size
        report[f"{label}_latency_ms_1x300"] = _latency_ms(rankers[label], hist, n)
    # The int8 variant's quality change, on a fixed sample of test users scored by both ONNX files (the
    # whole test set cost Beauty a minute and a half).
    sample = np.sort(rng.choice(len(hist), size=min(INT8_EVAL_USERS, len(hist)), replace=False))
    sample_hist = [hist[u] for u in sample.tolist()]
    for label, ranker in rankers.items():
        res = evaluate(
            ranker.score_all,
            sample_hist,
            split.test_targets[sample],
            n,
            "full",
            ks=(10,),
            batch_size=32,
            progress=_progress_to(ui, f"{label} evaluation"),
        )
        report[f"{label}_test_full_NDCG@10"] = res.metrics["NDCG@10"]
    report["int8_eval_users"] = int(sample.size)
    report["int8_ndcg10_change"] = report["int8_test_full_NDCG@10"] - report["fp32_test_full_NDCG@10"]
    return report


def _latency_ms(ranker: OnnxRanker, hist: Sequence[np.ndarray], n: int, repeats: int = 200) -> float:
    """Median latency of scoring 300 candidates for one user (the online request shape)."""
    rng = np.random.default_rng(0)
    cand = rng.integers(0, n, size=(1, min(300, n)))
    times = []
    for i in range(repeats):
        h = [hist[i % len(hist)]]
        t = time.perf_counter()
        ranker.score(h, cand)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def plot_training_curves(
    epochs: Sequence[EpochLog], metrics: dict[str, dict[str, dict[str, dict[str, float]]]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [e.epoch for e in epochs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(xs, [e.train_loss for e in epochs], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (softmax cross-entropy)")
    ax1.set_title("Transformer training loss")
    ax2.plot(xs, [e.valid_ndcg10 for e in epochs], marker="o", label="transformer")
    for name, style in (("item-cf", "--"), ("popularity", ":")):
        ax2.axhline(metrics["valid"]["full"][name]["NDCG@10"], linestyle=style, color="gray", label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation NDCG@10 (full ranking)")
    ax2.set_title("Validation NDCG@10")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metrics_table(
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]], split: str, protocol: str
) -> list[list[str]]:
    """Rows ``[model, HR@5, NDCG@5, ...]`` formatted to 4 decimals ("-" where a protocol has no value)."""
    return [
        [model, *(_fmt(metrics[split][protocol][model].get(m)) for m in TABLE_METRICS)]
        for model in MODELS
        if model in metrics[split][protocol]
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_report(
    ds: Dataset,
    config: TrainConfig,
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]],
    training_log: dict[str, Any],
    export_report: dict[str, Any],
    fusion_report: dict[str, Any],
) -> str:
    served = metrics["test"]["full"][PIPELINE]
    lines = [
        f"# shoprec training report: {ds.name}",
        "",
        f"Dataset: `{ds.source}` ({ds.fmt}), {ds.n_users} users, {ds.n_items} items, "
        f"{ds.n_interactions} interactions. Leave-one-out split.",
        f"Transformer: {json.dumps(config.to_dict())}",
        f"Best epoch {training_log['best_epoch']} (valid NDCG@10 {training_log['best_valid_ndcg10']:.4f}), "
        f"stopped by {training_log['stopped_by']}, {training_log['loss']} softmax on "
        f"{training_log['device']}; training {training_log['train_seconds']} s, "
        f"whole run {training_log['total_seconds']} s ("
        + ", ".join(f"{name} {sec:g} s" for name, sec in training_log.get("stage_seconds", {}).items())
        + ").",
        "",
        f"**Served pipeline** (fusion `{fusion_report['chosen']}`), test, full ranking: "
        f"HR@10 {served['HR@10']:.4f}, NDCG@10 {served['NDCG@10']:.4f}.",
        "",
        "`pipeline:<fusion>` rows are the list the API serves (recall, ranking, that fusion, re-rank with",
        "the serving defaults), scored under the full protocol (a target not in the list is a miss);",
        "`pipeline` is the fusion chosen on the validation targets. MRR and AUC need a score for every",
        "item: the pipeline has them under the sampled protocol only (see the pipeline table for MRR@20).",
        "",
    ]
    for split, protocols in (("test", PROTOCOLS), ("valid", ("full",))):
        for protocol in protocols:
            label = " (inflated: target vs 99 sampled negatives)" if protocol == "sampled" else ""
            lines += [f"## {split}, {protocol} ranking{label}", ""]
            lines.append("| model | " + " | ".join(TABLE_METRICS) + " |")
            lines.append("|---" * (len(TABLE_METRICS) + 1) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in metrics_table(metrics, split, protocol)]
            lines.append("")
    full = metrics["test"]["full"]
    recall_key = next((k for k in served if k.startswith("Recall@")), "")
    mrr_key = next((k for k in served if k.startswith("MRR@")), "")
    lines += [
        "## The pipeline's fusions (test, full ranking)",
        "",
        f"| fusion | HR@10 | NDCG@10 | {mrr_key} | {recall_key} (candidates) | degraded | compare NDCG@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, score in fusion_report["holdout_ndcg10"].items():
        row = full.get(f"{PIPELINE}:{name}", {})
        mark = " (chosen)" if name == fusion_report["chosen"] else ""
        cells = [_fmt(row.get(key)) for key in ("HR@10", "NDCG@10", mrr_key, recall_key, "Degraded")]
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {score:.4f} |")
    weights = ", ".join(f"{k} {v:g}" for k, v in fusion_report["weights"].items())
    importance = sorted(fusion_report["stacking_feature_importance"].items(), key=lambda kv: -kv[1])
    pointwise = fusion_report["stacking_pointwise_test"]
    lines += [
        "",
        f"Fusions are fitted on {fusion_report['examples']} validation users whose target was recalled "
        f"({fusion_report['valid_recall']:.1%} of them) and compared by NDCG@10 within the candidates of "
        f"{fusion_report['compare_users']} of them held out from fitting (`compare NDCG@10`); test targets "
        "are never used.",
        f"Tuned weights: {weights}. Stacking: {fusion_report['stacking_rounds']} LambdaRank rounds; "
        "top features by gain " + ", ".join(f"{name} {share:.0%}" for name, share in importance[:6]) + ".",
        "",
        "Stacking's predicted relevance (Platt-scaled) on the test (user, candidate) pairs: "
        + ", ".join(f"{k} {v:.4g}" for k, v in pointwise.items()),
        "",
        "## ONNX export",
        "",
    ]
    lines += [f"- {k}: {v:.6g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in export_report.items()]
    lines.append("")
    return "\n".join(lines)
