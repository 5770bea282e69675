"""Benchmark of batch recommendations (``shoprec batch``): wall time for every user of a dataset, and the
lists' agreement with what the API serves.

Each run is what ``shoprec batch`` does (:func:`shoprec.services.batch.run_batch`: verify and load the
bundle, load the dataset, build the pipeline with the in-process ONNX ranker, list every user and write the
file), timed as a whole and split into loading and listing. Runs alternate nothing and share the machine
with whatever else runs on it: read the spread, not the best run.

Parity: ``--parity-users`` users drawn at random get their histories imported into a temporary SQLite
state store (``shoprec state import``), and ``GET /v1/recommendations/{user}?k=K`` on the API built over it
(``build_container``, no latency budget to run out, no live counts blended: see docs/batch.md) must
return each user's line exactly.

Usage::

    .venv/bin/python bench/bench_batch.py [--artifacts artifacts/scientific] [--dataset amazon-scientific]
        [--k 20] [--repeats 3] [--threads 0] [--parity-users 200]

Prints a table and writes ``bench-results/bench_batch.json``. Benchmarks report; they assert nothing about
wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, load_dataset
from shoprec.pipeline import build_pipeline
from shoprec.services.batch import run_batch, user_histories, write_batch

RESULTS = Path("bench-results")


def timed_run(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One ``shoprec batch`` run as a whole, then its stages one by one."""
    t0 = time.perf_counter()
    summary = run_batch(args.artifacts, args.dataset, out, k=args.k, threads=args.threads)
    total = time.perf_counter() - t0

    t0 = time.perf_counter()
    bundle = load_bundle(args.artifacts)
    ds = load_dataset(args.dataset)
    catalog = CatalogIndex.from_bundle(bundle)
    pipeline = build_pipeline(bundle, catalog, LocalOnnxRanker.from_bundle(bundle, threads=args.threads))
    users = user_histories(ds, catalog)
    loading = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_batch(
        pipeline, users, out.with_suffix(".again.jsonl"), k=args.k, model_version=bundle.model_version
    )
    listing = time.perf_counter() - t0
    return {
        "users": summary.users,
        "total_s": total,
        "loading_s": loading,
        "listing_s": listing,
        "users_per_s": summary.users / listing,
        "degraded": summary.degraded,
    }


def parity(args: argparse.Namespace, lines: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    """How many of ``--parity-users`` random users' lines equal the API's answer."""
    from fastapi.testclient import TestClient

    from shoprec.api.app import create_app
    from shoprec.container import build_container
    from shoprec.services.importer import import_histories
    from shoprec.settings import Settings

    ds = load_dataset(args.dataset)
    rng = np.random.default_rng(0)
    rows = sorted(rng.choice(ds.n_users, size=min(args.parity_users, ds.n_users), replace=False).tolist())
    few = Dataset(
        name="parity",
        source="parity",
        item_ids=ds.item_ids,
        user_ids=[ds.user_ids[u] for u in rows],
        sequences=[ds.sequences[u] for u in rows],
    )
    # The batch lists the bundle's pipeline: the API blends no live counts of the imported events either.
    settings = Settings(
        artifacts=str(args.artifacts),
        state=f"sqlite:///{tmp / 'state.db'}",
        latency_budget_ms=30_000,
        online_updates=False,
    )
    container = build_container(settings)
    import_histories(container.events, few)
    client = TestClient(create_app(container))
    mismatches = []
    for u in rows:
        body = client.get(f"/v1/recommendations/{ds.user_ids[u]}", params={"k": args.k}).json()
        if [item["item_id"] for item in body["items"]] != lines[u]["items"] or body["degraded"]:
            mismatches.append(ds.user_ids[u])
    return {"users": len(rows), "identical": len(rows) - len(mismatches), "mismatched": mismatches[:20]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts/scientific"))
    p.add_argument("--dataset", default="amazon-scientific")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--parity-users", type=int, default=200)
    args = p.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out = tmp / "recs.jsonl"
        for r in range(args.repeats):
            runs.append(timed_run(args, out))
            print(
                f"run {r + 1}: {runs[-1]['users']} users in {runs[-1]['total_s']:.1f} s "
                f"(loading {runs[-1]['loading_s']:.1f} s, lists {runs[-1]['listing_s']:.1f} s)"
            )
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        agree = parity(args, lines, tmp) if args.parity_users > 0 else None

    totals = sorted(run["total_s"] for run in runs)
    print()
    print(f"| {'':<28} | {'median':>8} | {'min':>8} | {'max':>8} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    rows = (
        ("total_s", "shoprec batch, s"),
        ("loading_s", "  loading, s"),
        ("listing_s", "  lists, s"),
        ("users_per_s", "users / s (lists)"),
    )
    for key, label in rows:
        values = [run[key] for run in runs]
        print(f"| {label:<28} | {np.median(values):8.1f} | {min(values):8.1f} | {max(values):8.1f} |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mb:.0f} MiB; degraded lists {runs[-1]['degraded']}")
    if agree is not None:
        print(
            f"parity with GET /v1/recommendations: {agree['identical']} of {agree['users']} users identical"
        )

    RESULTS.mkdir(exist_ok=True)
    report = {
        "artifacts": str(args.artifacts),
        "dataset": args.dataset,
        "k": args.k,
        "threads": args.threads,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "runs": runs,
        "median_total_s": float(np.median(totals)),
        "peak_rss_mib": round(peak_mb),
        "parity": agree,
    }
    (RESULTS / "bench_batch.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
