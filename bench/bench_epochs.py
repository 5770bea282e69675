"""Benchmark of the ranker's training epoch: full vs sampled softmax as the catalogue grows.

Full softmax scores every item at every position of a batch, so its epoch time grows linearly with the
catalogue; sampled softmax scores each position's target against ``--negatives`` items shared by the batch.
This times the optimiser steps of one training epoch (no validation, no data loading) for both losses, on
the real catalogues and on synthetic ones larger than any shipped dataset, through the same
``TrainingSteps`` that ``train_sasrec`` runs, with the default hyper-parameters of ``shoprec train``.

Catalogues:

* ``amazon-scientific`` (4.3k items) and ``amazon-beauty`` (12k items, ``amazon-beauty/sequences.txt``),
  loaded with ``load_dataset`` from ``$SHOPREC_DATA_ROOT`` and split leave-one-out as training does;
* ``synthetic-18k`` (18k items, 35k users) and ``synthetic-100k`` (100k items, 100k users) from
  :func:`synthetic_dataset`: item popularity is Zipf-like (p ∝ 1 / (rank + 50) ** 0.8: at Beauty's size
  this reproduces Beauty's most popular and median item counts), a user's sequence length is
  ``min(50, 4 + Geometric(0.25))`` (at least 5 as in the 5-core Amazon data, median 7, mean about 8), and
  items are drawn independently from the popularity (sequence order does not change the cost of a step).
  The generator's seed is fixed, so every run times the same data.

The first batch of every run is a warm-up and is not timed. ``--max-batches N`` times the first N batches of
each epoch and extrapolates to a whole epoch, so a 100k-item full-softmax epoch need not run to the end.
Peak RSS is the process's high-water mark (``getrusage``), so with several catalogues it is the largest so
far; the catalogues run in the order given. Usage::

    SHOPREC_DATA_ROOT=../shared/data .venv/bin/python bench/bench_epochs.py
    .venv/bin/python bench/bench_epochs.py --catalogues synthetic-100k --max-batches 50
    .venv/bin/python bench/bench_epochs.py --losses sampled --negatives 512 --negative-power 0.75

Prints a table and writes ``bench-results/epochs/epochs.json`` and ``bench-results/epochs/epochs.png``.
Benchmarks report; they assert nothing about wall time.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shoprec.data import Dataset, leave_one_out, load_dataset
from shoprec.training.config import BATCHINGS, TrainConfig
from shoprec.training.distributed import DistContext
from shoprec.training.trainer import TrainingSteps, resolve_device

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("full", "sampled")
SYNTHETIC_SEED = 20_240_601
ZIPF_EXPONENT = 0.8
ZIPF_OFFSET = 50
MIN_LENGTH, MAX_LENGTH, LENGTH_GEOMETRIC_P = 5, 50, 0.25


def synthetic_dataset(n_items: int, n_users: int, seed: int = SYNTHETIC_SEED) -> Dataset:
    """A catalogue of ``n_items`` with Zipf-like popularity and ``n_users`` sequences of real-data lengths."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(n_items) + ZIPF_OFFSET) ** ZIPF_EXPONENT
    # Popular items are spread over the index range, as in a real catalogue's ids.
    popularity = np.empty(n_items)
    popularity[rng.permutation(n_items)] = weights / weights.sum()
    lengths = np.minimum(MAX_LENGTH, MIN_LENGTH - 1 + rng.geometric(LENGTH_GEOMETRIC_P, size=n_users))
    items = rng.choice(n_items, size=int(lengths.sum()), p=popularity).astype(np.int64)
    sequences = np.split(items, np.cumsum(lengths)[:-1])
    return Dataset(
        name=f"synthetic-{n_items}",
        source=f"bench_epochs.synthetic_dataset(seed={seed})",
        item_ids=[str(i) for i in range(n_items)],
        user_ids=[str(u) for u in range(n_users)],
        sequences=sequences,
        fmt="synthetic",
    )


CATALOGUES: dict[str, Callable[[], Dataset]] = {
    "amazon-scientific": lambda: load_dataset("amazon-scientific"),
    "amazon-beauty": lambda: load_dataset("amazon-beauty/sequences.txt"),
    "synthetic-18k": lambda: synthetic_dataset(18_000, 35_000),
    "synthetic-100k": lambda: synthetic_dataset(100_000, 100_000),
}


@dataclass
class Timing:
    catalogue: str
    items: int
    users: int
    windows: int
    batches_per_epoch: int
    loss: str
    batching: str
    batches_timed: int
    seconds_per_batch: float
    cpu_seconds_per_batch: float
    epoch_seconds: float
    extrapolated: bool
    peak_rss_mib: float
    peak_gpu_mib: float | None


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_epochs(name: str, ds: Dataset, config: TrainConfig, epochs: int, max_batches: int | None) -> Timing:
    """Seconds of one training epoch's optimiser steps for ``config``, measured over ``epochs`` epochs
    (``max_batches`` each, extrapolated to the whole epoch)."""
    split = leave_one_out(ds)
    device = resolve_device(config.device, DistContext(), cuda_available=torch.cuda.is_available())
    steps = TrainingSteps.create(split.train, ds.n_items, config, device=device)
    steps.run_epoch(1, config.max_epochs, max_batches=1)  # warm-up: allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timed_batches = 0
    seconds = cpu_seconds = 0.0
    for epoch in range(1, epochs + 1):
        t, c = time.perf_counter(), time.process_time()
        steps.run_epoch(epoch, config.max_epochs, max_batches=max_batches)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t
        cpu_seconds += time.process_time() - c
        timed_batches += steps.n_batches if max_batches is None else min(max_batches, steps.n_batches)
    per_batch = seconds / max(timed_batches, 1)
    return Timing(
        catalogue=name,
        items=ds.n_items,
        users=ds.n_users,
        windows=int(steps.inputs.shape[0]),
        batches_per_epoch=steps.n_batches,
        loss=steps.loss_kind,
        batching=config.batching,
        batches_timed=timed_batches,
        seconds_per_batch=per_batch,
        cpu_seconds_per_batch=cpu_seconds / max(timed_batches, 1),
        epoch_seconds=per_batch * steps.n_batches,
        extrapolated=timed_batches < epochs * steps.n_batches,
        peak_rss_mib=_peak_rss_mib(),
        peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    )


def markdown_table(timings: list[Timing]) -> str:
    full = {(t.catalogue, t.batching): t.epoch_seconds for t in timings if t.loss == "full"}
    lines = [
        "| catalogue | items | users | batches/epoch | loss | batching | batches timed | ms/batch "
        "| CPU ms/batch | epoch s | full/sampled | peak RSS MiB |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        key = (t.catalogue, t.batching)
        ratio = f"{full[key] / t.epoch_seconds:.1f}x" if t.loss == "sampled" and key in full else ""
        epoch = f"{t.epoch_seconds:.1f}{' (extrapolated)' if t.extrapolated else ''}"
        lines.append(
            f"| {t.catalogue} | {t.items} | {t.users} | {t.batches_per_epoch} | {t.loss} | {t.batching} "
            f"| {t.batches_timed} | {t.seconds_per_batch * 1000:.0f} | {t.cpu_seconds_per_batch * 1000:.0f} "
            f"| {epoch} | {ratio} | {t.peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def plot(timings: list[Timing], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (loss, marker), batching in itertools.product(zip(LOSSES, ("o", "s"), strict=True), BATCHINGS):
        points = sorted(
            (t.items, t.epoch_seconds, t.catalogue)
            for t in timings
            if t.loss == loss and t.batching == batching
        )
        if not points:
            continue
        style = "-" if batching == TrainConfig.batching else "--"
        label = f"{loss} softmax, {batching} batching"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker=marker, label=label)
        for x, y, name in points:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items in the catalogue")
    ax.set_ylabel("seconds per training epoch")
    ax.set_title("Training epoch time: full vs sampled softmax")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalogues", nargs="+", choices=list(CATALOGUES), default=list(CATALOGUES))
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    p.add_argument("--epochs-to-time", type=int, default=1, help="epochs timed per run (default 1)")
    p.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="time only the first N batches of each epoch, extrapolate",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--negatives", type=int, default=TrainConfig.negatives)
    p.add_argument("--negative-power", type=float, default=TrainConfig.negative_power)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument(
        "--batchings", nargs="+", choices=BATCHINGS, default=[TrainConfig.batching], help="batchings to time"
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "epochs")
    args = p.parse_args()
    if args.epochs_to_time < 1 or (args.max_batches is not None and args.max_batches < 1):
        p.error("--epochs-to-time and --max-batches must be at least 1")

    timings: list[Timing] = []
    for name in args.catalogues:
        ds = CATALOGUES[name]()
        for batching, loss in itertools.product(args.batchings, args.losses):
            config = TrainConfig(
                loss=loss,
                batching=batching,
                batch_size=args.batch_size,
                negatives=args.negatives,
                negative_power=args.negative_power,
                threads=args.threads,
                device=args.device,
            )
            timing = time_epochs(name, ds, config, args.epochs_to_time, args.max_batches)
            timings.append(timing)
            print(
                f"{name:18s} {loss:8s} {batching:7s} {timing.seconds_per_batch * 1000:8.0f} ms/batch "
                f"{timing.cpu_seconds_per_batch * 1000:8.0f} CPU ms/batch "
                f"{timing.epoch_seconds:8.1f} s/epoch",
                flush=True,
            )
            gc.collect()

    print()
    print(markdown_table(timings))
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        # Every run's configuration but its loss.
        "config": TrainConfig(
            batch_size=args.batch_size,
            negatives=args.negatives,
            negative_power=args.negative_power,
            threads=args.threads,
            device=args.device,
        ).to_dict(),
        "timings": [asdict(t) for t in timings],
    }
    (args.out / "epochs.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(timings, args.out / "epochs.png")
    print(f"\nwrote {args.out / 'epochs.json'} and {args.out / 'epochs.png'}")


if __name__ == "__main__":
    main()
