"""Compression study of the Transformer ranker (docs/compression.md): smaller or faster ONNX variants of a
trained bundle's ranker, each measured for size, latency and quality.

Variants (every one is an ONNX graph with the ranker's inputs and output, servable as a bundle variant):

``fp32``                 the bundle's ``ranker.onnx``.
``fp16``                 every float initialiser and op in fp16, inputs and output kept (onnxruntime's
                         ``float16.convert_float_to_float16``, ``keep_io_types``).
``int8-dynamic``         the bundle's ``ranker.int8.onnx`` (``quantize_dynamic``: int8 weights, activations
                         quantised per call from their observed range).
``int8-static``          ``quantize_static`` (QDQ, uint8 activations, int8 weights, min-max calibration) with
                         activation ranges calibrated on real training histories and candidates.
``pruned-unstructured``  the fp32 weights with the smallest-magnitude ``--prune`` fraction of every block
                         ``Linear`` weight and of the item table zeroed (L1, per tensor), then fine-tuned
                         ``--finetune-epochs`` epochs with the mask held; the graph stays dense.
``pruned-structured``    the ``--prune-structured`` fraction of each block's feed-forward hidden units with
                         the smallest L2 weight rows removed (``ff1`` rows and bias, ``ff2`` columns), then
                         fine-tuned as above; the exported graph is really narrower.
``distilled``            a student with ``--student-hidden`` dimensions trained ``--distill-epochs`` epochs
                         on ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE`` over the
                         full-softmax logits at every position, the bundle's model as the teacher.
``student-alone``        the same student trained as many epochs on the hard targets alone (the training
                         loss of ``shoprec train``): what the teacher adds.

For each: file size (and gzip size: pruning's zeros only compress), onnxruntime latency on one thread
(median) for 1 user x 300 candidates and 64 users x 300, full-ranking NDCG@10 of the ranker alone and
NDCG@10 of the served pipeline built around it (``build_pipeline``, the bundle's fusion), both on the same
fixed sample of test users. Writes ``compression.json``, ``compression.png`` and the variants' ONNX files to
``--out``, prints a markdown table, and with ``--bundle-out`` writes a copy of the bundle holding every
variant with ``--default`` as the one served.

Usage::

    .venv/bin/python bench/compression.py --artifacts bench-results/beauty \\
        --dataset amazon-beauty/sequences.txt --out bench-results/compression
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy import typing as npt
from torch import nn
from torch.nn.utils import prune

sys.path.insert(0, str(Path(__file__).resolve().parent / "load"))
from naive_service import sasrec_from_onnx

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle, load_bundle
from shoprec.artifacts.specs import RankerVariantKind
from shoprec.artifacts.variants import write_with_ranker_variants
from shoprec.catalog import CatalogIndex
from shoprec.data import leave_one_out, load_dataset
from shoprec.data.split import Split
from shoprec.evaluation.bundle_eval import remap_to_bundle
from shoprec.evaluation.pipeline_eval import evaluate_pipeline
from shoprec.evaluation.protocol import evaluate
from shoprec.pipeline import build_pipeline
from shoprec.ranking.onnx_ranker import OnnxRanker
from shoprec.ranking.tokens import left_pad
from shoprec.training.config import TrainConfig
from shoprec.training.export import export_onnx, quantize_int8
from shoprec.training.sasrec import SASRec
from shoprec.training.trainer import TrainingSteps, lr_factor

IntArray = npt.NDArray[np.int64]
CANDIDATES = 300
BATCH_USERS = 64


@dataclasses.dataclass
class Variant:
    """One ONNX file of the ranker and how it was made."""

    name: str
    kind: RankerVariantKind | None  # None: a reference that is not offered as a served variant
    path: Path
    how: str
    build_cpu_s: float = 0.0
    measured: dict[str, float] = dataclasses.field(default_factory=dict)


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    bundle = load_bundle(args.artifacts)
    spec = bundle.pipeline.ranker
    if spec is None:
        raise SystemExit(f"{bundle.path}: the bundle has no ranker")
    ds = remap_to_bundle(load_dataset(args.dataset), bundle)
    split = leave_one_out(ds)
    hp = bundle.manifest.hyperparameters["transformer"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in hp.items() if k in fields})
    teacher = sasrec_from_onnx(bundle.file(spec.file), config.model_config(ds.n_items))
    print(f"recovered the {config.hidden}-dim ranker from {spec.file}", flush=True)

    variants = [
        Variant("fp32", "fp32", bundle.file(spec.file), "the bundle's ranker.onnx"),
        _timed(lambda: _fp16(bundle.file(spec.file), models / "ranker.fp16.onnx")),
        _int8_dynamic(bundle, models),
        _timed(lambda: _int8_static(bundle.file(spec.file), models, split, ds.n_items, config, args)),
        _timed(lambda: _pruned_unstructured(teacher, split, ds.n_items, config, models, args)),
        _timed(lambda: _pruned_structured(teacher, split, ds.n_items, config, models, args)),
    ]
    if args.distill_epochs > 0:
        variants.append(_timed(lambda: _distilled(teacher, split, ds.n_items, config, models, args)))
        variants.append(_timed(lambda: _student_alone(split, ds.n_items, config, models, args)))

    test_hist = split.test_histories()
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(test_hist), size=min(args.users, len(test_hist)), replace=False))
    sample_hist = [test_hist[u] for u in sample.tolist()]
    sample_targets = np.asarray(split.test_targets)[sample]
    for variant in variants:
        variant.measured = _measure(variant.path, bundle, sample_hist, sample_targets, args)
        print(f"{variant.name}: {variant.measured}", flush=True)

    ref = variants[0].measured
    for variant in variants:
        m = variant.measured
        m["ranker_ndcg10_change"] = m["ranker_ndcg10"] - ref["ranker_ndcg10"]
        m["pipeline_ndcg10_change"] = m["pipeline_ndcg10"] - ref["pipeline_ndcg10"]
    report = {
        "artifacts": str(args.artifacts),
        "model_version": bundle.model_version,
        "dataset": str(args.dataset),
        "eval_users": int(sample.size),
        "seed": args.seed,
        "threads": args.threads,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "shared": args.shared_machine,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "args": vars(args),
        "total_wall_s": time.perf_counter() - started,
        "variants": [
            {
                "name": v.name,
                "kind": v.kind,
                "how": v.how,
                "file": v.path.name,
                "build_cpu_s": v.build_cpu_s,
                **v.measured,
            }
            for v in variants
        ],
    }
    (out / "compression.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _plot(variants, out / "compression.png")
    print(markdown_table(report["variants"]))
    if args.bundle_out:
        implied = {"fp32", "int8-dynamic"} if spec.int8_file else {"fp32"}
        served = {v.name: (v.path, v.kind) for v in variants if v.kind is not None and v.kind not in implied}
        manifest = write_with_ranker_variants(
            bundle, Path(args.bundle_out), served, default_variant=args.default
        )
        print(f"wrote {args.bundle_out} ({manifest.short_version}) serving {args.default} by default")


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="bench-results/beauty", help="A trained bundle.")
    p.add_argument("--dataset", default="amazon-beauty/sequences.txt", help="The dataset it was trained on.")
    p.add_argument("--out", default="bench-results/compression")
    p.add_argument("--users", type=int, default=5000, help="Test users evaluated (the same for all).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training (latency: 1).")
    p.add_argument("--eval-threads", type=int, default=2, help="onnxruntime threads of the evaluations.")
    p.add_argument("--calibration-users", type=int, default=512)
    p.add_argument("--prune", type=float, default=0.5, help="Unstructured pruning: fraction zeroed.")
    p.add_argument("--prune-structured", type=float, default=0.25, help="Structured: FFN units removed.")
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--student-hidden", type=int, default=32)
    p.add_argument("--distill-epochs", type=int, default=6)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.7, help="Weight of the soft targets.")
    p.add_argument("--max-batches", type=int, default=None, help="Cut every training epoch (smoke runs).")
    p.add_argument("--latency-runs", type=int, default=300, help="Runs of the 1-user shape (64 users: /5).")
    p.add_argument("--bundle-out", default=None, help="Write the bundle with every variant here.")
    p.add_argument("--default", default="int8", help="The variant that --bundle-out serves by default.")
    p.add_argument("--shared-machine", action="store_true", help="Record that others used the CPUs.")
    return p.parse_args()


def _timed(build: Callable[[], Variant]) -> Variant:
    start = time.process_time()
    variant = build()
    variant.build_cpu_s = time.process_time() - start
    print(f"built {variant.name} in {variant.build_cpu_s:.1f} s CPU", flush=True)
    return variant


# --- post-training conversions ---------------------------------------------------------------------------


def _fp16(src: Path, dst: Path) -> Variant:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Variant("fp16", "fp16", dst, "convert_float_to_float16(keep_io_types=True) of ranker.onnx")


def _int8_dynamic(bundle: Bundle, models: Path) -> Variant:
    """The bundle's int8 file, or the same quantisation (``shoprec train``'s) of its fp32 file."""
    spec = bundle.pipeline.ranker
    assert spec is not None
    how = "quantize_dynamic: int8 weights of MatMul and Gather, activations quantised per call"
    if spec.int8_file is not None:
        return Variant(
            "int8-dynamic", "int8-dynamic", bundle.file(spec.int8_file), f"the bundle's file ({how})"
        )
    path = quantize_int8(bundle.file(spec.file), models / "ranker.int8-dynamic.onnx")
    return Variant("int8-dynamic", "int8-dynamic", path, how)


def _windows(
    split: Split, n_items: int, max_len: int, users: int, seed: int
) -> Iterator[dict[str, IntArray]]:
    """Calibration feeds: real training histories (their last ``max_len`` items) with 300 candidates, the
    history's next item among random ones, 32 users a batch."""
    rng = np.random.default_rng(seed)
    train = [s for s in split.train if len(s) > 1]
    picked = rng.choice(len(train), size=min(users, len(train)), replace=False)
    for start in range(0, len(picked), 32):
        seqs = [train[u] for u in picked[start : start + 32].tolist()]
        cand = rng.integers(0, n_items, size=(len(seqs), CANDIDATES))
        cand[:, 0] = [s[-1] for s in seqs]
        yield {"item_seq": left_pad([s[:-1] for s in seqs], max_len), "candidates": cand + 1}


def _int8_static(
    src: Path, models: Path, split: Split, n_items: int, config: TrainConfig, args: argparse.Namespace
) -> Variant:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.feeds = _windows(split, n_items, config.max_len, args.calibration_users, args.seed)

        def get_next(self) -> dict[str, IntArray] | None:
            return next(self.feeds, None)

    dst = models / "ranker.int8-static.onnx"
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return Variant(
        "int8-static",
        "int8-static",
        dst,
        f"quantize_static QDQ u8/s8, min-max ranges over {args.calibration_users} training histories x "
        f"{CANDIDATES} candidates",
    )


# --- pruning ----------------------------------------------------------------------------------------------


def _finetune_steps(
    teacher: SASRec, split: Split, n_items: int, config: TrainConfig, lr: float
) -> TrainingSteps:
    steps = TrainingSteps.create(split.train, n_items, dataclasses.replace(config, lr=lr))
    steps.model.load_state_dict(teacher.state_dict())
    return steps


def _run_epochs(steps: TrainingSteps, epochs: int, max_batches: int | None) -> None:
    for epoch in range(1, epochs + 1):
        loss = steps.run_epoch(epoch, epochs, max_batches=max_batches)
        print(f"  epoch {epoch}/{epochs}: loss {loss:.4f}", flush=True)


def _pruned_unstructured(
    teacher: SASRec, split: Split, n_items: int, config: TrainConfig, models: Path, args: argparse.Namespace
) -> Variant:
    steps = _finetune_steps(teacher, split, n_items, config, args.finetune_lr)
    model = steps.model
    targets: list[tuple[nn.Module, str]] = [(model.item_emb, "weight")]
    for block in model.blocks:
        targets += [(getattr(block, name), "weight") for name in ("qkv", "proj", "ff1", "ff2")]
    for module, name in targets:
        prune.l1_unstructured(module, name, amount=args.prune)
    # The padding row must stay zero and the pruned weights stay pruned while fine-tuning (the masks do it).
    _run_epochs(steps, args.finetune_epochs, args.max_batches)
    for module, name in targets:
        prune.remove(module, name)
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
    total = sum(getattr(m, n).numel() for m, n in targets)
    dst = export_onnx(model.eval(), models / "ranker.pruned-unstructured.onnx")
    return Variant(
        "pruned-unstructured",
        "pruned-unstructured",
        dst,
        f"L1 unstructured {args.prune:.0%} of the item table and every block Linear weight "
        f"({zeros / total:.1%} of those weights zero), fine-tuned {args.finetune_epochs} epochs at "
        f"lr {args.finetune_lr}",
    )


def _pruned_structured(
    teacher: SASRec, split: Split, n_items: int, config: TrainConfig, models: Path, args: argparse.Namespace
) -> Variant:
    steps = _finetune_steps(teacher, split, n_items, config, args.finetune_lr)
    model = steps.model
    kept: list[torch.Tensor] = []
    for block in model.blocks:
        prune.ln_structured(block.ff1, "weight", amount=args.prune_structured, n=2, dim=0)
        rows = block.ff1.weight_mask[:, 0].clone()
        # A removed unit's bias is removed too, so gelu(0) = 0 reaches ff2 and the unit is truly absent.
        prune.custom_from_mask(block.ff1, "bias", mask=rows)
        kept.append(rows.nonzero().flatten())
    _run_epochs(steps, args.finetune_epochs, args.max_batches)
    for block, idx in zip(model.blocks, kept, strict=True):
        prune.remove(block.ff1, "weight")
        prune.remove(block.ff1, "bias")
        ff1, ff2 = block.ff1, block.ff2
        slim1, slim2 = nn.Linear(ff1.in_features, idx.numel()), nn.Linear(idx.numel(), ff2.out_features)
        with torch.no_grad():
            slim1.weight.copy_(ff1.weight[idx])
            slim1.bias.copy_(ff1.bias[idx])
            slim2.weight.copy_(ff2.weight[:, idx])
            slim2.bias.copy_(ff2.bias)
        block.ff1, block.ff2 = slim1, slim2
    dst = export_onnx(model.eval(), models / "ranker.pruned-structured.onnx")
    width = kept[0].numel()
    return Variant(
        "pruned-structured",
        "pruned-structured",
        dst,
        f"L2 structured: {args.prune_structured:.0%} of each block's feed-forward units removed "
        f"({config.hidden} -> {width}), fine-tuned {args.finetune_epochs} epochs at lr {args.finetune_lr}",
    )


# --- distillation -----------------------------------------------------------------------------------------


def _distilled(
    teacher: SASRec, split: Split, n_items: int, config: TrainConfig, models: Path, args: argparse.Namespace
) -> Variant:
    student_config = dataclasses.replace(config, hidden=args.student_hidden)
    steps = TrainingSteps.create(split.train, n_items, student_config)
    student, opt = steps.model, steps.optimizer
    teacher.eval()
    t, alpha = args.temperature, args.alpha
    for epoch in range(1, args.distill_epochs + 1):
        batches = steps.epoch_batches()
        n_steps = len(batches) if args.max_batches is None else min(args.max_batches, len(batches))
        student.train()
        total = 0.0
        for b in range(n_steps):
            idx = batches[b]
            for group in opt.param_groups:
                group["lr"] = student_config.lr * lr_factor(
                    (epoch - 1) * len(batches) + b, args.distill_epochs * len(batches), student_config
                )
            width = int(steps.lengths[idx].max())
            seq, target = steps.inputs[idx, -width:], steps.targets[idx, -width:]
            mask = target > 0
            with torch.no_grad():
                soft = F.log_softmax((teacher.encode(seq)[mask] @ teacher.item_table().T) / t, dim=1)
            logits = student.encode(seq)[mask] @ student.item_table().T
            kd = F.kl_div(F.log_softmax(logits / t, dim=1), soft, log_target=True, reduction="batchmean")
            loss = alpha * t * t * kd + (1 - alpha) * F.cross_entropy(logits, target[mask] - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(loss.detach())
        print(f"  distillation epoch {epoch}: loss {total / max(n_steps, 1):.4f}", flush=True)
    dst = export_onnx(student.eval(), models / "ranker.distilled.onnx")
    return Variant(
        "distilled",
        "distilled",
        dst,
        f"hidden {args.student_hidden} student, {args.distill_epochs} epochs of {alpha} * T^2 * KL "
        f"(T = {t}) to the {config.hidden}-dim teacher's full-softmax logits + {1 - alpha:.1f} * CE",
    )


def _student_alone(
    split: Split, n_items: int, config: TrainConfig, models: Path, args: argparse.Namespace
) -> Variant:
    steps = TrainingSteps.create(
        split.train, n_items, dataclasses.replace(config, hidden=args.student_hidden)
    )
    _run_epochs(steps, args.distill_epochs, args.max_batches)
    dst = export_onnx(steps.model.eval(), models / "ranker.student-alone.onnx")
    return Variant(
        "student-alone",
        None,
        dst,
        f"the hidden {args.student_hidden} student trained {args.distill_epochs} epochs without the teacher "
        f"({steps.loss_kind} softmax, as shoprec train)",
    )


# --- measurements -----------------------------------------------------------------------------------------


def _measure(
    path: Path,
    bundle: Bundle,
    histories: Sequence[IntArray],
    targets: npt.NDArray[np.int64],
    args: argparse.Namespace,
) -> dict[str, float]:
    assert bundle.pipeline.ranker is not None
    max_len, n = bundle.pipeline.ranker.max_len, bundle.n_items
    ranker = OnnxRanker(path, n_items=n, max_len=max_len, threads=1)
    # Quality does not depend on threads: the evaluations use every core they are given.
    evaluator = OnnxRanker(path, n_items=n, max_len=max_len, threads=args.eval_threads)
    rng = np.random.default_rng(1)
    result: dict[str, float] = {
        "bytes": path.stat().st_size,
        "gzip_bytes": len(gzip.compress(path.read_bytes(), compresslevel=6)),
    }
    for users, runs in ((1, args.latency_runs), (BATCH_USERS, max(10, args.latency_runs // 5))):
        cand = rng.integers(0, n, size=(users, CANDIDATES))
        times = []
        for r in range(runs + 5):
            batch = [histories[(r * users + u) % len(histories)] for u in range(users)]
            start = time.perf_counter()
            ranker.score(batch, cand)
            if r >= 5:  # the first calls warm onnxruntime's arenas
                times.append(time.perf_counter() - start)
        result[f"latency_ms_{users}x{CANDIDATES}"] = float(np.median(times) * 1000)
        result[f"latency_p90_ms_{users}x{CANDIDATES}"] = float(np.percentile(times, 90) * 1000)
    hidden = int(bundle.item_embeddings.shape[1])
    full = evaluate(
        evaluator.score_all,
        histories,
        targets,
        n,
        "full",
        ks=(10,),
        batch_size=max(1, 16_000_000 // (n * hidden)),
    )
    result["ranker_ndcg10"] = full.metrics["NDCG@10"]
    result["ranker_hr10"] = full.metrics["HR@10"]
    local = LocalOnnxRanker(path, bundle.item_ids, max_len=max_len, threads=args.eval_threads)
    pipeline = build_pipeline(bundle, CatalogIndex.from_bundle(bundle), local)
    served = evaluate_pipeline(pipeline, histories, targets, "full", ks=(10,))
    result["pipeline_ndcg10"] = served.metrics["NDCG@10"]
    result["pipeline_hr10"] = served.metrics["HR@10"]
    return result


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The study's table: one row per variant, changes relative to fp32."""
    lines = [
        "| variant | size (KB) | gzip (KB) | 1x300 (ms) | 64x300 (ms) | ranker NDCG@10 | change | "
        "pipeline NDCG@10 | change | build CPU (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['bytes'] / 1024:.0f} | {r['gzip_bytes'] / 1024:.0f} | "
            f"{r['latency_ms_1x300']:.3f} | {r['latency_ms_64x300']:.2f} | {r['ranker_ndcg10']:.4f} | "
            f"{r['ranker_ndcg10_change']:+.4f} | {r['pipeline_ndcg10']:.4f} | "
            f"{r['pipeline_ndcg10_change']:+.4f} | {r['build_cpu_s']:.0f} |"
        )
    return "\n".join(lines)


def _plot(variants: Sequence[Variant], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, latency, title in (
        (axes[0], "latency_ms_1x300", "1 user x 300 candidates"),
        (axes[1], "latency_ms_64x300", "64 users x 300 candidates"),
    ):
        for v in variants:
            m = v.measured
            ax.scatter(m[latency], m["ranker_ndcg10"], s=m["bytes"] / 6000, alpha=0.6)
            ax.scatter(m[latency], m["pipeline_ndcg10"], marker="x", color="black")
            ax.annotate(
                v.name,
                (m[latency], m["ranker_ndcg10"]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set_xlabel(f"median latency, ms (onnxruntime, 1 thread): {title}")
        ax.set_ylabel("NDCG@10 (dots: ranker, full ranking; x: served pipeline)")
        ax.grid(alpha=0.3)
    fig.suptitle("Ranker variants: latency vs quality (dot area ~ file size)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
