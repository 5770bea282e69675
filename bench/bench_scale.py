"""Catalogue scale: a synthetic bundle of N items (bench/scale/synthetic.py), then its build time, size,
cold start, warm recommendation latency through the ASGI app, memory, and the ANN index's recall and
speed against exact search.

The bundle is written directly with ``BundleWriter``: power-law popularity, item-CF fitted on synthetic
histories, clustered item vectors, a catalogue, an untrained SASRec (its item table is the item vectors,
as after training) exported to ONNX, and the ANN index of the item vectors when the catalogue reaches
``shoprec.recall.ann.ANN_MIN_ITEMS``. Nothing is trained; the numbers are about size and speed.

Cold start and serving run in a fresh interpreter: import of the app, then ``build_container`` on the
bundle folder with the default settings (the bundle is verified as the artifact stores do it: against the
stamp ``BundleWriter.commit`` left, so no file is hashed again; ``details.hash_all_s`` is what hashing every
file costs, the first load of a bundle not stamped yet; the ONNX ranker is loaded in process), then users
seeded with synthetic histories through the events service and warm ``GET /v1/recommendations`` requests
(result cache off, so every request recalls and ranks). ``rss_mb`` is that interpreter's peak resident
memory (mapped pages that were read count too).

``ann_recall_at_100`` and ``ann_speedup`` compare the ANN index with exact search on the same queries
(recency-weighted means of the last 5 items of synthetic histories, as the embedding channel makes
them): the share of the exact top 100 that the index returns, and the exact search's time per query over
the index's (medians, one thread). Below the threshold the bundle has no index; one is built for the
measurement alone (``ann_in_bundle`` says which).

Usage::

    nice -n 10 .venv/bin/python bench/bench_scale.py --items 100000 [--json] [--out bench-results/scale]

Prints one JSON object (``--json``) or a table; benchmarks report, they assert nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# One BLAS thread, as in a Lambda of 1,769 MB (one vCPU); on a busy machine several threads make the
# exact search's time a matter of scheduling. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "scale"))
from synthetic import SyntheticCatalogue, synthetic_catalogue  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = 64
MAX_LEN = 50
K = 100


def build_bundle(cat: SyntheticCatalogue, out: Path, *, min_items: int) -> dict[str, float]:
    """Write the synthetic bundle to ``out``; seconds per step."""
    import torch

    from shoprec.artifacts import (
        CATALOG,
        ITEM_EMBEDDINGS,
        ITEM_IDS,
        ITEMCF,
        POPULARITY,
        RANKER_ONNX,
        BundleWriter,
        FusionSpec,
        PipelineSpec,
        RankerSpec,
    )
    from shoprec.artifacts.specs import ITEM_EMBEDDINGS_ANN, EmbeddingSpec
    from shoprec.recall import fit_itemcf
    from shoprec.recall.ann import build_vector_index
    from shoprec.training.export import export_onnx
    from shoprec.training.sasrec import SASRec, SASRecConfig

    steps: dict[str, float] = {}
    start = time.perf_counter()
    itemcf = fit_itemcf(cat.sequences, cat.n_items)
    steps["itemcf_s"] = time.perf_counter() - start
    torch.manual_seed(0)
    cfg = SASRecConfig(n_items=cat.n_items, hidden=HIDDEN, blocks=1, heads=1, max_len=MAX_LEN, dropout=0.0)
    model = SASRec(cfg).eval()
    with torch.no_grad():
        model.item_emb.weight[1:] = torch.from_numpy(cat.embeddings)
    with BundleWriter(out) as writer:
        t = time.perf_counter()
        export_onnx(model, writer.path_for(RANKER_ONNX))
        steps["onnx_s"] = time.perf_counter() - t
        writer.add_json(ITEM_IDS, cat.item_ids)
        writer.add_npy(POPULARITY, cat.popularity)
        writer.add_npz(ITEMCF, {"indices": itemcf.indices, "scores": itemcf.scores})
        writer.add_npy(ITEM_EMBEDDINGS, cat.embeddings)
        writer.add_jsonl(CATALOG, cat.catalog_rows())
        t = time.perf_counter()
        ann = build_vector_index(cat.embeddings, writer, ITEM_EMBEDDINGS_ANN, min_items=min_items)
        steps["ann_build_s"] = time.perf_counter() - t
        spec = PipelineSpec(
            embedding=EmbeddingSpec(ann=ann),
            ranker=RankerSpec(max_len=MAX_LEN, int8_file=None),
            fusion=FusionSpec(),
        )
        writer.commit(
            dataset={
                "name": f"synthetic-{cat.n_items}",
                "fingerprint": f"synthetic-{cat.n_items}-seed0",
                "format": "synthetic",
                "n_items": cat.n_items,
                "n_users": len(cat.sequences),
                "n_interactions": int(sum(s.size for s in cat.sequences)),
            },
            hyperparameters={"transformer": cfg.to_dict(), "trained": False, "synthetic": True},
            metrics={},
            pipeline=spec,
        )
    steps["build_s"] = time.perf_counter() - start
    return steps


def queries_of(cat: SyntheticCatalogue, n: int) -> np.ndarray:
    """The embedding channel's query vectors of ``n`` synthetic histories."""
    from shoprec.recall.channels import recency_mean

    return np.stack([recency_mean(cat.embeddings, s, 5, 0.7) for s in cat.sequences[:n]]).astype(np.float32)


def ann_quality(cat: SyntheticCatalogue, bundle: Path, n_queries: int) -> dict[str, Any]:
    """Recall@100 of the ANN index against exact search and the ratio of their median query times."""
    from shoprec.artifacts import load_bundle
    from shoprec.artifacts.specs import ITEM_EMBEDDINGS_ANN
    from shoprec.recall.ann import build_vector_index, load_vector_index
    from shoprec.recall.channels import ExactDotProductIndex

    spec = load_bundle(bundle, verify=False).pipeline.embedding.ann
    in_bundle = spec is not None
    with tempfile.TemporaryDirectory(prefix="shoprec-ann-") as tmp:
        if spec is None:
            spec = build_vector_index(cat.embeddings, tmp, ITEM_EMBEDDINGS_ANN, min_items=0)
            assert spec is not None
            path = Path(tmp) / spec.file
        else:
            path = bundle / spec.file
        ann = load_vector_index(path, spec, cat.embeddings)
        exact = ExactDotProductIndex(cat.embeddings)
        queries = queries_of(cat, n_queries)
        ann.search(queries[0], K)
        hits, t_exact, t_ann = [], [], []
        for q in queries:  # alternating, so that the machine's load drifts over both alike
            t = time.perf_counter()
            want, _ = exact.search(q, K)
            t_exact.append(time.perf_counter() - t)
            t = time.perf_counter()
            got, _ = ann.search(q, K)
            t_ann.append(time.perf_counter() - t)
            hits.append(np.intersect1d(want, got).size / K)
    return {
        "ann_in_bundle": in_bundle,
        "ann_recall_at_100": float(np.mean(hits)),
        "ann_speedup": float(np.median(t_exact) / np.median(t_ann)),
        "exact_query_ms": float(np.median(t_exact) * 1000),
        "ann_query_ms": float(np.median(t_ann) * 1000),
    }


def serve(bundle: Path, users_file: Path, requests: int) -> dict[str, Any]:
    """In a fresh interpreter: import, build the container, seed users, warm requests; the measurements.

    torch, scipy and matplotlib are refused, as in ``bench/bench_api.py``'s Lambda mode: the functions
    do not ship them, and an import of one would be counted in the cold start."""

    class NotPackaged:
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            if name.split(".")[0] in ("torch", "scipy", "matplotlib"):
                raise ImportError(f"{name} is not part of the Lambda package")

    sys.meta_path.insert(0, NotPackaged())  # type: ignore[arg-type]
    t0 = time.perf_counter()
    import httpx

    from shoprec.api.app import create_app
    from shoprec.artifacts import verify_bundle
    from shoprec.container import build_container
    from shoprec.domain import Event, EventType
    from shoprec.settings import Settings

    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shoprec-scale-") as tmp:
        settings = Settings(
            artifacts=str(bundle), state=f"sqlite:///{tmp}/state.db", cache="memory://", cache_ttl_s=0
        )
        container = build_container(settings)
        t2 = time.perf_counter()
        rss_loaded = peak_rss_mb()
        verify_start = time.perf_counter()
        verify_bundle(bundle)
        verify_s = time.perf_counter() - verify_start
        verify_start = time.perf_counter()
        verify_bundle(bundle, use_stamp=False)
        hash_all_s = time.perf_counter() - verify_start
        histories: list[list[str]] = json.loads(users_file.read_text())
        base = datetime(2026, 1, 1, tzinfo=UTC)
        users = []
        for u, items in enumerate(histories):
            user = f"u{u}"
            container.events.ingest(
                [
                    Event(f"{user}-{j}", user, item, EventType.VIEW, base + timedelta(seconds=j))
                    for j, item in enumerate(items)
                ]
            )
            users.append(user)
        app = create_app(container)

        async def drive() -> list[float]:
            latencies = []
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench"
            ) as client:
                for i in range(min(100, requests)):
                    (await client.get(f"/v1/recommendations/{users[i % len(users)]}")).raise_for_status()
                for i in range(requests):
                    user = users[(i * 7919) % len(users)]
                    t = time.perf_counter()
                    response = await client.get(f"/v1/recommendations/{user}", params={"k": 10})
                    latencies.append((time.perf_counter() - t) * 1000)
                    response.raise_for_status()
            return latencies

        lat = np.asarray(asyncio.run(drive()))
    return {
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "verify_s": verify_s,
        "hash_all_s": hash_all_s,
        "cold_start_s": t2 - t0,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "rss_loaded_mb": rss_loaded,
        "rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` (the high-water mark of its own address space, new
    at exec). ``ru_maxrss`` is not: Linux carries it across fork and exec, so a child started by this
    script reported the parent's peak (the generator's and item-CF fit's gigabytes at 1M items)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=1000, help="warm requests")
    parser.add_argument("--users", type=int, default=300, help="users with a history")
    parser.add_argument("--queries", type=int, default=300, help="ANN recall / speed queries")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the bundle here (default: a temp folder)"
    )
    parser.add_argument("--min-items", type=int, default=None, help="ANN threshold (default: ANN_MIN_ITEMS)")
    parser.add_argument(
        "--no-ann",
        action="store_true",
        help="no ANN index in the bundle and no ANN measurement (serving at exact search; a faster build)",
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("BUNDLE", "USERS_JSON", "REQUESTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(serve(Path(args.serve[0]), Path(args.serve[1]), int(args.serve[2]))))
        return 0

    from shoprec.recall.ann import ANN_MIN_ITEMS

    min_items = ANN_MIN_ITEMS if args.min_items is None else args.min_items
    if args.no_ann:
        min_items = args.items + 1
    with tempfile.TemporaryDirectory(prefix="shoprec-scale-") as tmp:
        bundle = args.out or Path(tmp) / "bundle"
        t = time.perf_counter()
        cat = synthetic_catalogue(args.items, dim=HIDDEN)
        generate_s = time.perf_counter() - t
        steps = build_bundle(cat, bundle, min_items=min_items)
        histories = [[cat.item_ids[i] for i in s[-20:].tolist()] for s in cat.sequences[: args.users]]
        users_file = Path(tmp) / "users.json"
        users_file.write_text(json.dumps(histories))
        served = subprocess.run(
            [sys.executable, __file__, "--serve", str(bundle), str(users_file), str(args.requests)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        serving = json.loads(served.stdout.strip().splitlines()[-1])
        quality: dict[str, Any] = (
            {"ann_in_bundle": False, "ann_recall_at_100": None, "ann_speedup": None}
            if args.no_ann
            else ann_quality(cat, bundle, args.queries)
        )
        report = {
            "items": args.items,
            "bundle_mb": folder_mb(bundle),
            "build_s": steps["build_s"],
            "cold_start_s": serving["cold_start_s"],
            "p50_ms": serving["p50_ms"],
            "p99_ms": serving["p99_ms"],
            "ann_recall_at_100": quality["ann_recall_at_100"],
            "ann_speedup": quality["ann_speedup"],
            "rss_mb": serving["rss_mb"],
            "details": {
                "generate_s": generate_s,
                **{k: v for k, v in steps.items() if k != "build_s"},
                **{
                    k: v
                    for k, v in serving.items()
                    if k not in ("cold_start_s", "p50_ms", "p99_ms", "rss_mb")
                },
                **{k: v for k, v in quality.items() if k not in ("ann_recall_at_100", "ann_speedup")},
                "ann_min_items": min_items,
                "files_mb": {
                    f.relative_to(bundle).as_posix(): f.stat().st_size / 2**20
                    for f in sorted(bundle.iterdir())
                    if f.is_file()
                },
                "catalog_columns_mb": folder_mb(bundle / "catalog") if (bundle / "catalog").is_dir() else 0.0,
                "load_average_1m": os.getloadavg()[0],
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        }
    if args.json:
        print(json.dumps(report))
        return 0
    for key, value in report.items():
        if key != "details":
            print(f"{key:18} {value:.4g}" if isinstance(value, float) else f"{key:18} {value}")
    print(json.dumps(report["details"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
