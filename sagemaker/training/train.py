"""SageMaker script-mode entry point: the same training as ``shoprec train``.

SageMaker starts it as ``python train.py --hidden 64 ...`` (hyper-parameters as command-line arguments)
with the input channel in ``SM_CHANNEL_TRAIN``, and uploads ``SM_MODEL_DIR`` (the artifact bundle) and
``SM_OUTPUT_DATA_DIR`` (report, metrics, plot) when it exits. ``shoprec sagemaker train`` stages the
``shoprec`` package into ``src/`` beside this file; a local checkout works as well.

Started by ``torchrun --nproc_per_node=N`` (as ``shoprec sagemaker train`` does, one process per GPU and
instance) it trains data-parallel: NCCL on GPUs, gloo on CPUs. Rank 0 validates, evaluates and writes the
bundle and the reports; the other ranks train with it and then wait for it at a barrier.
Hyper-parameters are accepted as ``--max-len`` and ``--max_len`` alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for candidate in (HERE / "src", HERE.parents[1] / "src"):
    if (candidate / "shoprec").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))
        break

from shoprec.training.config import TrainConfig  # noqa: E402
from shoprec.training.distributed import barrier, init_from_env, shutdown  # noqa: E402
from shoprec.training.pipeline import (  # noqa: E402
    CURVES_PNG,
    METRICS_JSON,
    REPORT_MD,
    TRAINING_LOG,
    run_training,
    train_replica,
)

REPORT_FILES = (REPORT_MD, METRICS_JSON, TRAINING_LOG, CURVES_PNG)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--train", type=Path, default=Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    )
    p.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")))
    p.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
    )
    p.add_argument(
        "--checkpoint-dir", type=Path, default=None, help="e.g. /opt/ml/checkpoints for spot training"
    )
    p.add_argument(
        "--dataset-path",
        "--dataset_path",
        default="",
        help="file or folder inside the train channel (default: the channel)",
    )
    p.add_argument("--format", default="auto")
    for name, value in defaults.to_dict().items():
        # SageMaker passes hyper-parameters as ``--key value`` with the key as given; accept both spellings.
        spellings = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])
        p.add_argument(*spellings, dest=name, type=type(value), default=value)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrainConfig(**{k: getattr(args, k) for k in TrainConfig().to_dict()})
    dataset = args.train / args.dataset_path if args.dataset_path else args.train
    checkpoint_dir = args.checkpoint_dir
    if checkpoint_dir is None and Path("/opt/ml/checkpoints").is_dir():
        checkpoint_dir = Path("/opt/ml/checkpoints")
    ctx = init_from_env()
    try:
        if ctx.is_main:
            _train_and_write(args, config, dataset, checkpoint_dir)
        else:
            train_replica(dataset, config, fmt=args.format, checkpoint_dir=checkpoint_dir)
        barrier(ctx)
    finally:
        shutdown()
    return 0


def _train_and_write(
    args: argparse.Namespace, config: TrainConfig, dataset: Path, checkpoint_dir: Path | None
) -> None:
    # The bundle is written (atomically) next to a temp folder, then copied into SM_MODEL_DIR: that folder
    # belongs to SageMaker and must not be renamed away.
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        report = run_training(dataset, bundle, config, fmt=args.format, checkpoint_dir=checkpoint_dir)
        shutil.copytree(bundle, args.model_dir, dirs_exist_ok=True)
    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        shutil.copy2(args.model_dir / name, args.output_data_dir / name)
    summary = {
        "model_version": report.manifest.model_version,
        "train_seconds": round(report.train_seconds, 1),
        "test_full": report.metrics["test"]["full"],
    }
    # SageMaker captures stdout in CloudWatch; metric definitions can regex these lines.
    for model, values in report.metrics["test"]["full"].items():
        print(f"metric {model} test_full_NDCG@10={values['NDCG@10']:.4f} HR@10={values['HR@10']:.4f}")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
