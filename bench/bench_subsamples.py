"""Robustness of the defaults to the amount of data: train on user subsamples, compare the served list with
item-CF alone.

For each catalogue and seed, a seeded ``--fraction`` of the users (with their whole sequences) is written as
an S3-Rec-style sequence file (``u<index> item item ...``, oldest first), then ``shoprec train`` runs on it
with its defaults, as a user would, and the test metrics of its ``metrics.json`` are collected: the served
pipeline (the fusion chosen on validation) against the same bundle's item-CF under the full protocol.

Writes ``bench-results/subsamples/<catalogue>-<fraction>-<seed>/`` (the file and the bundle) and
``bench-results/subsamples/subsamples.json``, and prints a table. A benchmark: it asserts nothing. Run it
alone on the machine if the wall times matter (the metrics do not depend on them: a fixed number of epochs
and fixed seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = {"amazon-scientific": "scientific", "amazon-beauty/sequences.txt": "beauty"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalogues", nargs="+", default=list(CATALOGUES), choices=list(CATALOGUES))
    parser.add_argument("--fraction", type=float, default=0.5, help="Share of the users kept (0 < f < 1).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "subsamples")
    parser.add_argument("--train-arg", action="append", default=[], help="Extra `shoprec train` argument.")
    args = parser.parse_args()
    if not 0 < args.fraction < 1:
        parser.error(f"--fraction must be between 0 and 1, got {args.fraction}")
    data_root = os.environ.get("SHOPREC_DATA_ROOT") or str(ROOT.parent / "shared" / "data")
    rows: list[dict[str, Any]] = []
    for catalogue in args.catalogues:
        dataset = load_dataset(catalogue, data_root=data_root)
        for seed in args.seeds:
            name = f"{CATALOGUES[catalogue]}-{args.fraction:g}-{seed}"
            folder = args.out / name
            folder.mkdir(parents=True, exist_ok=True)
            users = write_subsample(dataset, args.fraction, seed, folder / "sequences.txt")
            start = time.monotonic()
            train(folder / "sequences.txt", folder / "bundle", args.train_arg, folder / "train.log")
            row = {"run": name, "users": users, "train_s": round(time.monotonic() - start, 1)}
            row.update(served_vs_itemcf(folder / "bundle" / "metrics.json"))
            rows.append(row)
            print_row(row)
    (args.out / "subsamples.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out / 'subsamples.json'}")


def write_subsample(dataset: Any, fraction: float, seed: int, path: Path) -> int:
    """Write a seeded ``fraction`` of ``dataset``'s users as ``u<index> item ...`` lines; returns how many."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(dataset.n_users, size=int(dataset.n_users * fraction), replace=False))
    with path.open("w", encoding="utf-8") as out:
        for u in picked.tolist():
            items = (dataset.item_ids[i] for i in dataset.sequences[u].tolist())
            out.write(" ".join([f"u{u}", *items]) + "\n")
    return int(picked.size)


def train(dataset: Path, out: Path, extra: list[str], log: Path) -> None:
    shoprec = Path(sys.executable).parent / "shoprec"
    command = [str(shoprec), "train", "--dataset", str(dataset), "--out", str(out), *extra]
    with log.open("wb") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"shoprec train failed ({done.returncode}); see {log}")


def served_vs_itemcf(metrics_path: Path) -> dict[str, Any]:
    metrics = json.loads(metrics_path.read_text())
    full = metrics["test"]["full"]
    served, itemcf, ranker = full["pipeline"], full["item-cf"], full["transformer"]
    return {
        "fusion": metrics["fusion"]["chosen"],
        "served_hr10": served["HR@10"],
        "served_ndcg10": served["NDCG@10"],
        "itemcf_hr10": itemcf["HR@10"],
        "itemcf_ndcg10": itemcf["NDCG@10"],
        "transformer_ndcg10": ranker["NDCG@10"],
        "ratio_ndcg10": served["NDCG@10"] / itemcf["NDCG@10"],
    }


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['run']:<22} users {row['users']:>6}  served ({row['fusion']}) HR@10 {row['served_hr10']:.4f} "
        f"NDCG@10 {row['served_ndcg10']:.4f} | item-cf {row['itemcf_hr10']:.4f} / {row['itemcf_ndcg10']:.4f} "
        f"| transformer NDCG@10 {row['transformer_ndcg10']:.4f} | ratio {row['ratio_ndcg10']:.3f} "
        f"| {row['train_s']} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
