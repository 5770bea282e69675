"""Benchmark of the serving path: warm ``GET /v1/recommendations`` through the ASGI app, and the Lambda
API handler's cold start (import + artifact load) in a fresh interpreter.

Warm requests go through the whole app in process (httpx's ASGI transport: routing, validation,
serialisation) with the real services: sqlite user state seeded with real Amazon Scientific histories,
recall over the catalogue and in-process ONNX ranking of the merged candidates (300 by default). The
result cache is switched off for the main run so every request ranks; a second, smaller run measures
cache hits. Users vary from request to request.

Each cold start runs in a fresh interpreter with the environment of the deployed function: the
variables the Lambda runtime sets (so Powertools traces, as with the stack's Active tracing, and the X-Ray
SDK runs in its Lambda mode), the function's Powertools settings, a trace header per invocation and a
local UDP socket standing in for the X-Ray daemon, which counts the trace documents the handler sends.
Modes alternate run by run so that drift in the machine's load hits them alike.

Usage::

    .venv/bin/python bench/bench_api.py [--artifacts artifacts/scientific] [--requests 2000]
    .venv/bin/python bench/bench_api.py --cold-only [--cold-starts 15]

Prints tables, and writes ``bench-results/bench_api.json`` and ``bench-results/bench_api_latency.png``
(``--cold-only``: ``bench-results/bench_api_cold.json``). Benchmarks report; they assert nothing about
wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shoprec.api.app import create_app
from shoprec.artifacts import read_manifest
from shoprec.container import Container, build_container
from shoprec.data import load_dataset
from shoprec.domain import Event, EventType
from shoprec.pipeline import RecommendationPipeline
from shoprec.ranking.fusion import RankerFusion
from shoprec.services.experiments import ExperimentServices
from shoprec.services.recommendation import RecommendationService
from shoprec.services.results import ListResult
from shoprec.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "functions" / "api" / "handler.py"
COLD_START_TARGET_S = 1.0
COLD_START_MODES = {
    "lambda": "Lambda dependency set (no torch/scipy/matplotlib), bytecode cached",
    "lambda-no-pyc": "Lambda dependency set, no cached bytecode outside the standard library",
    "venv": "dev venv as installed",
}
STAGES = ("cache", "state", "recall", "rank", "fusion", "rerank")


@dataclass
class TimingRecorder:
    """Wraps the recommendation service to keep each result's ``timings_ms`` (not in API responses)."""

    inner: Any
    timings: list[dict[str, float]] = field(default_factory=list)

    def recommend(self, *args: Any, **kwargs: Any) -> ListResult:
        result: ListResult = self.inner.recommend(*args, **kwargs)
        self.timings.append(dict(result.timings_ms))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class CandidateCounter:
    """Wraps the ranker to count the candidates each request hands it."""

    inner: Any
    counts: list[int] = field(default_factory=list)

    def score(self, history: Any, candidates: Any, *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Any, *, timeout_s: float) -> list[list[float]]:
        self.counts.extend(len(candidates) for _, candidates in instances)
        scores: list[list[float]] = self.inner.score_many(instances, timeout_s=timeout_s)
        return scores

    def describe(self) -> str:
        return str(self.inner.describe())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "scientific")
    parser.add_argument("--dataset", default="amazon-scientific", help="Dataset whose users seed the state.")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1000, help="Distinct users with history.")
    parser.add_argument("--cached-requests", type=int, default=500)
    parser.add_argument("--search-requests", type=int, default=840, help="GET /v1/search requests.")
    parser.add_argument("--cold-starts", type=int, default=15, help="Fresh interpreters per mode.")
    parser.add_argument("--cold-only", action="store_true", help="Measure only the Lambda cold start.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()

    if not (args.artifacts / "manifest.json").is_file():
        print(
            f"no bundle at {args.artifacts}. Train one first:\n"
            "  .venv/bin/shoprec train --dataset amazon-scientific --out artifacts/scientific\n"
            "or pass --artifacts DIR.",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # other work on the machine inflates every number below
    manifest = read_manifest(args.artifacts)
    transformer = manifest.hyperparameters.get("transformer", {})
    print(f"bundle {args.artifacts} · model {manifest.short_version} · transformer {transformer}")

    report: dict[str, Any] = {"created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="shoprec-bench-") as tmp:
        if not args.cold_only:
            warm, cached, serving = serving_latency(args, Path(tmp))
            report.update(serving)
        cold: dict[str, list[dict[str, Any]]] = {mode: [] for mode in COLD_START_MODES}
        for mode in COLD_START_MODES:  # not counted: fills the bytecode cache and the page cache
            cold_start(args.artifacts, Path(tmp), mode)
        for _ in range(args.cold_starts):
            for mode in COLD_START_MODES:
                cold[mode].append(cold_start(args.artifacts, Path(tmp), mode))
        breakdown = import_breakdown(args.artifacts, Path(tmp))

    report.update(
        {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
            },
            "bundle": {
                "path": str(args.artifacts),
                "model_version": manifest.model_version,
                "transformer": transformer,
            },
            "cold_start": {mode: summarize_cold(runs) for mode, runs in cold.items()},
            "cold_start_import_ms_by_package": breakdown,
        }
    )
    print_machine(report)
    if not args.cold_only:
        print_serving(report)
        print_search(report)
    print_cold(report)
    print_breakdown(breakdown)
    if args.cold_only:
        (args.out / "bench_api_cold.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out / 'bench_api_cold.json'}")
        return 0
    (args.out / "bench_api.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(warm, cached, args.out / "bench_api_latency.png")
    print(f"\nwrote {args.out / 'bench_api.json'} and {args.out / 'bench_api_latency.png'}")
    return 0


def serving_latency(args: argparse.Namespace, tmp: Path) -> tuple[Run, Run, dict[str, Any]]:
    """Warm requests through the ASGI app: uncached (every request ranks), then cache hits."""
    settings = Settings(
        artifacts=str(args.artifacts), state=f"sqlite:///{tmp}/state.db", cache="memory://", cache_ttl_s=0
    )
    counter = CandidateCounter(build_container(settings).ranker)
    container = build_container(settings, ranker=counter)  # type: ignore[arg-type]
    users = seed_users(container, args.dataset, args.users)
    budget = container.pipeline.merge_policy.budget
    fusion = container.pipeline.fusion.spec
    print(f"seeded {len(users)} users with their real histories; {budget} candidates; fusion {fusion.kind}")

    warm = run_requests(container, users, args.requests)
    ranked = np.asarray(counter.counts[-args.requests :])
    # The same requests with the ranker's score alone (what was served before fusion): the cost of fusion.
    ranker_only = run_requests(
        with_service(container, container.pipeline.with_fusion(RankerFusion()), cache_ttl_s=0),
        users,
        args.requests,
    )
    cached_container = with_service(container, container.pipeline, cache_ttl_s=3600)
    cached = run_requests(cached_container, users[:50], args.cached_requests, warmup_all=True)
    search = search_latency(container, args.search_requests)
    serving = {
        "candidates": budget,
        "fusion": fusion.kind,
        "ranker_only_uncached": ranker_only.summary(),
        "ranked_candidates_per_request": {
            "mean": float(ranked.mean()) if ranked.size else 0.0,
            "min": int(ranked.min()) if ranked.size else 0,
            "max": int(ranked.max()) if ranked.size else 0,
        },
        "warm_uncached": warm.summary(),
        "warm_cached": cached.summary(),
        "search": search,
    }
    return warm, cached, serving


def search_latency(container: Container, n: int) -> dict[str, Any]:
    """``GET /v1/search`` through the ASGI app over the dev set's queries (bench/search/queries.tsv), no
    user: the first search (it builds the index and loads the text encoder), then ``n`` requests, each
    encoding its query (the semantic channel's query cache is emptied before every request)."""
    from shoprec.cli.search_eval import read_queries

    queries = [q.text for q in read_queries(ROOT / "bench" / "search" / "queries.tsv")]
    service = container.recommendations
    app = create_app(container)

    async def drive() -> tuple[float, list[float]]:
        latencies: list[float] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            start = time.perf_counter()
            (await client.get("/v1/search", params={"q": queries[0], "k": 10})).raise_for_status()
            first = (time.perf_counter() - start) * 1000.0
            semantic = getattr(service.search_index, "semantic", None)
            for i in range(n):
                if semantic is not None:
                    semantic.clear_cache()
                start = time.perf_counter()
                response = await client.get("/v1/search", params={"q": queries[i % len(queries)], "k": 10})
                latencies.append((time.perf_counter() - start) * 1000.0)
                response.raise_for_status()
        return first, latencies

    first, latencies = asyncio.run(drive())
    lat = np.asarray(latencies)
    return {
        "index": service.search_index.name,
        "first_search_ms": first,
        "requests": int(lat.size),
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
    }


def with_service(container: Container, pipeline: RecommendationPipeline, **service: Any) -> Container:
    """``container`` serving ``pipeline`` through a fresh recommendation service (same ports)."""
    recommendations = RecommendationService(
        pipeline,
        container.state,
        container.cache,
        model_version=container.bundle.model_version,
        version_tag=container.bundle.manifest.short_version,
        **service,
    )
    return replace(container, pipeline=pipeline, recommendations=recommendations)


def seed_users(container: Container, dataset: str, n: int) -> list[str]:
    """Store the histories (all but the last two items) of ``n`` real users through the event service."""
    ds = load_dataset(
        dataset, data_root=os.environ.get("SHOPREC_DATA_ROOT") or ROOT.parent / "shared" / "data"
    )
    known = set(container.catalog.item_ids)
    rng = np.random.default_rng(0)
    picked = rng.choice(ds.n_users, size=min(n, ds.n_users), replace=False)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    users: list[str] = []
    for u in picked.tolist():
        items = [ds.item_ids[i] for i in ds.sequences[u][:-2].tolist() if ds.item_ids[i] in known]
        if not items:
            continue
        user = f"bench-{ds.user_ids[u]}"
        events = [
            Event(f"{user}-{j}", user, item, EventType.VIEW, t0 + timedelta(seconds=j))
            for j, item in enumerate(items)
        ]
        for start in range(0, len(events), 100):
            container.events.ingest(events[start : start + 100])
        users.append(user)
    return users


@dataclass
class Run:
    latencies_ms: list[float]
    stage_ms: list[dict[str, float]]
    degraded: int
    cached: int

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms)
        service_total = np.asarray([t.get("total", 0.0) for t in self.stage_ms])
        present = [s for s in STAGES if any(s in t for t in self.stage_ms)]
        stages = {s: np.asarray([t.get(s, 0.0) for t in self.stage_ms]) for s in present}
        stages["api overhead"] = lat - service_total
        mean_total = float(lat.mean())
        return {
            "requests": int(lat.size),
            "p50_ms": float(np.percentile(lat, 50)),
            "p90_ms": float(np.percentile(lat, 90)),
            "p99_ms": float(np.percentile(lat, 99)),
            "mean_ms": mean_total,
            "max_ms": float(lat.max()),
            "throughput_rps": float(1000.0 / mean_total),
            "degraded": self.degraded,
            "cached": self.cached,
            "stages": {
                name: {
                    "p50_ms": float(np.percentile(v, 50)),
                    "p99_ms": float(np.percentile(v, 99)),
                    "mean_ms": float(v.mean()),
                    "share": float(v.mean() / mean_total),
                }
                for name, v in stages.items()
            },
        }


def run_requests(container: Container, users: list[str], n: int, *, warmup_all: bool = False) -> Run:
    recorder = TimingRecorder(container.recommendations)
    # Routes reach the service through the experiment's services (one, under "", without an experiment).
    services = ExperimentServices(None, {"": recorder})  # type: ignore[dict-item]
    app = create_app(replace(container, recommendations=recorder, experiments=services))  # type: ignore[arg-type]
    return asyncio.run(_drive(app, recorder, users, n, warmup=len(users) if warmup_all else 100))


async def _drive(app: Any, recorder: TimingRecorder, users: list[str], n: int, warmup: int) -> Run:
    latencies: list[float] = []
    degraded = cached = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(warmup):
            (await client.get(f"/v1/recommendations/{users[i % len(users)]}")).raise_for_status()
        recorder.timings.clear()
        for i in range(n):
            user = users[(i * 7919) % len(users)]  # a fixed, well-spread order of users
            start = time.perf_counter()
            response = await client.get(f"/v1/recommendations/{user}", params={"k": 10})
            latencies.append((time.perf_counter() - start) * 1000.0)
            response.raise_for_status()
            body = response.json()
            degraded += bool(body["degraded"])
            cached += bool(body["cached"])
    return Run(latencies, list(recorder.timings), degraded, cached)


COLD_START_SCRIPT = """
import importlib.util, json, os, sys, time
handler_path, mode = sys.argv[1], sys.argv[2]
if mode.startswith("lambda"):
    class NotPackaged:  # a meta path finder (importlib.abc is left out: the handler would find it imported)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "scipy", "matplotlib"):
                raise ImportError(f"{name} is not part of the Lambda package")
    sys.meta_path.insert(0, NotPackaged())
if mode == "lambda-no-pyc":
    import importlib._bootstrap_external as bootstrap, sysconfig
    stdlib, cache_path = sysconfig.get_paths()["stdlib"], bootstrap.cache_from_source
    def stdlib_cache_only(path, *args, **kwargs):
        if path.startswith(stdlib) and "site-packages" not in path:
            return cache_path(path, *args, **kwargs)
        raise NotImplementedError  # the loader then compiles the source and caches nothing
    bootstrap.cache_from_source = stdlib_cache_only
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("api_handler", handler_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()
container = module.app.state.containers.get()
t2 = time.perf_counter()
path = "/v1/recommendations/cold-user"
event = {
    "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "k=10",
    "headers": {"host": "api.example.com"}, "isBase64Encoded": False,
    "requestContext": {
        "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                 "userAgent": "bench"},
        "requestId": "cold", "routeKey": "$default", "stage": "$default",
    },
}
class Context:
    function_name = "shoprec-api"; memory_limit_in_mb = 1769; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:shoprec-api"
    def get_remaining_time_in_millis(self): return 10_000
# The runtime sets the invocation's trace header before calling the handler.
os.environ["_X_AMZN_TRACE_ID"] = "Root=1-6a2f3b10-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
response = module.handler(event, Context())
t3 = time.perf_counter()
heavy = sorted(m for m in ("torch", "scipy", "matplotlib") if m in sys.modules)
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_request_s": t3 - t2,
                  "status": response["statusCode"], "heavy_modules": heavy,
                  "tracer_enabled": not module.tracer.disabled}))
"""


def lambda_env(artifacts: Path, tmp: Path, daemon_port: int, mode: str) -> dict[str, str]:
    """The cold start's environment: what the Lambda runtime sets for the API function, the function's
    settings from ``template.yaml`` (backends swapped for local ones: the bundle folder, sqlite, the
    in-process cache), and the X-Ray daemon at ``127.0.0.1:daemon_port``.

    Bytecode is cached in a folder of ``tmp`` (``PYTHONPYCACHEPREFIX``) that the first run fills, so that
    every measured run finds all of it, whatever the checkout's ``__pycache__`` folders hold and even
    under ``PYTHONDONTWRITEBYTECODE``; mode ``"lambda-no-pyc"`` uses none outside the standard library.

    ``LAMBDA_TASK_ROOT`` is what makes Powertools trace (it disables the tracer outside Lambda) and puts
    the X-Ray SDK in its Lambda mode, where sampling follows the trace header; outside Lambda the SDK
    would instead create two botocore clients for centralised sampling at import, a cost (about 0.1 s)
    that a function never pays.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERTOOLS_", "SHOPREC_", "AWS_", "_X_AMZN", "LAMBDA_"))
        and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    if mode != "lambda-no-pyc":
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "bytecode")
    return env | {
        "LAMBDA_TASK_ROOT": str(HANDLER.parent),
        "AWS_LAMBDA_FUNCTION_NAME": "shoprec-api",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon_port}",
        "POWERTOOLS_SERVICE_NAME": "shoprec-api",
        "POWERTOOLS_METRICS_NAMESPACE": "shoprec",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "SHOPREC_ARTIFACTS": str(artifacts),
        "SHOPREC_STATE": f"sqlite:///{tmp}/cold-state.db",
        "SHOPREC_CACHE": "memory://",
        "SHOPREC_RANKER": "onnx",
    }


def cold_start(artifacts: Path, tmp: Path, mode: str) -> dict[str, Any]:
    """Import the API handler, build its container and answer one request, in a fresh interpreter.

    ``"lambda"`` makes torch, scipy and matplotlib unimportable, as in the Lambda package (the dev venv
    has them, and ``bm25s`` imports scipy when it finds it); ``"lambda-no-pyc"`` also ignores cached
    bytecode outside the standard library, as the layers are built today (``sam build`` unpacks wheels
    without compiling them, ``layers/shoprec/Makefile`` leaves ``__pycache__`` out, and ``/opt`` is
    read-only, so every cold start compiles them); ``"venv"`` imports what is there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", COLD_START_SCRIPT, str(HANDLER), mode],
            env=lambda_env(artifacts, tmp, daemon.getsockname()[1], mode),
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        documents = received_trace_documents(daemon)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = elapsed
    result["trace_documents"] = len(documents)
    result["handler_traced"] = any(d.get("name") == "## handler" for d in documents)
    return result


def received_trace_documents(daemon: socket.socket) -> list[dict[str, Any]]:
    """What the X-Ray SDK sent to the daemon address: UDP datagrams of a JSON header line and a segment."""
    daemon.setblocking(False)
    documents = []
    while True:
        try:
            datagram = daemon.recv(65536)
        except BlockingIOError:
            return documents
        _, _, body = datagram.decode().partition("\n")
        documents.append(json.loads(body))


def import_breakdown(artifacts: Path, tmp: Path, top: int = 12) -> dict[str, float]:
    """Milliseconds of the Lambda-mode cold start's imports by top-level package (``-X importtime``
    self times summed per package), largest first."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", COLD_START_SCRIPT, str(HANDLER), "lambda"],
            env=lambda_env(artifacts, tmp, daemon.getsockname()[1], "lambda"),
            capture_output=True,
            text=True,
            check=True,
        )
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(self_us) / 1000.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    return {name: round(ms, 1) for name, ms in ranked[:top]}


def summarize_cold(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("import_s", "load_s", "first_request_s", "process_s")
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    totals = [r["import_s"] + r["load_s"] for r in runs]
    return {
        "runs": runs,
        "median": median,
        "min": {k: min(r[k] for r in runs) for k in keys},
        "import_plus_load_s": statistics.median(totals),
        "import_plus_load_min_s": min(totals),
        "target_s": COLD_START_TARGET_S,
        "meets_target": statistics.median(totals) <= COLD_START_TARGET_S,
        "traced_runs": sum(bool(r["tracer_enabled"] and r["handler_traced"]) for r in runs),
        "heavy_modules_imported": sorted({m for r in runs for m in r["heavy_modules"]}),
    }


def print_machine(report: dict[str, Any]) -> None:
    load = report["machine"]["load_average_1m"]
    print(
        f"\n{report['machine']['cpus']} CPUs · load average (1 min) "
        f"{load['before']:.2f} → {load['after']:.2f}"
    )


def print_search(report: dict[str, Any]) -> None:
    s = report["search"]
    print(
        f"\nGET /v1/search · {s['index']} · every query encoded · {s['requests']} requests\n"
        f"  first search {s['first_search_ms']:.0f} ms (builds the index, loads the encoder)\n"
        f"  p50 {s['p50_ms']:.2f} ms · p90 {s['p90_ms']:.2f} ms · p99 {s['p99_ms']:.2f} ms · "
        f"max {s['max_ms']:.1f} ms"
    )


def print_serving(report: dict[str, Any]) -> None:
    print("'api overhead' = end-to-end time minus the service's own total: routing, validation,")
    print(
        "serialisation, the thread-pool hop of sync routes, and the in-process httpx client driving the app"
    )
    rc = report["ranked_candidates_per_request"]
    print(f"\ncandidates ranked per request: mean {rc['mean']:.0f} (min {rc['min']}, max {rc['max']})")
    fusion = report["fusion"]
    added = report["warm_uncached"]["p99_ms"] - report["ranker_only_uncached"]["p99_ms"]
    print(f"fusion {fusion}: p99 {added:+.2f} ms against the ranker's score alone")
    for key, title in (
        ("warm_uncached", f"warm, uncached (ranked, fusion {fusion})"),
        ("ranker_only_uncached", "warm, uncached (ranked, the ranker's score alone)"),
        ("warm_cached", "warm, cache hits"),
    ):
        s = report[key]
        print(f"\nGET /v1/recommendations · {title} · {s['requests']} requests")
        print(
            f"  p50 {s['p50_ms']:.2f} ms · p90 {s['p90_ms']:.2f} ms · p99 {s['p99_ms']:.2f} ms · "
            f"mean {s['mean_ms']:.2f} ms · max {s['max_ms']:.1f} ms · "
            f"{s['throughput_rps']:.0f} req/s (1 client)"
        )
        print(f"  degraded {s['degraded']} · cached {s['cached']}")
        print(f"  {'stage':<14}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'share':>9}")
        for name, st in s["stages"].items():
            print(
                f"  {name:<14}{st['p50_ms']:>10.3f}{st['p99_ms']:>10.3f}"
                f"{st['mean_ms']:>10.3f}{st['share']:>9.1%}"
            )


def print_cold(report: dict[str, Any]) -> None:
    for mode, cold in report["cold_start"].items():
        m = cold["median"]
        n = len(cold["runs"])
        print(f"\ncold start of functions/api/handler.py · {COLD_START_MODES[mode]} · median of {n}")
        print(
            f"  import {m['import_s']:.3f} s · artifact load {m['load_s']:.3f} s · "
            f"first request {m['first_request_s'] * 1000:.0f} ms · whole process {m['process_s']:.2f} s"
        )
        fastest = cold["min"]
        print(f"  fastest run: import {fastest['import_s']:.3f} s · artifact load {fastest['load_s']:.3f} s")
        verdict = "meets" if cold["meets_target"] else "MISSES"
        print(
            f"  import + load {cold['import_plus_load_s']:.3f} s, median of the per-run sums "
            f"(fastest {cold['import_plus_load_min_s']:.3f} s; {verdict} the {cold['target_s']:.1f} s target)"
        )
        print(
            f"  traced (tracer on, handler subsegment at the daemon): {cold['traced_runs']} of {n} runs"
            f" · torch/scipy/matplotlib imported: {cold['heavy_modules_imported'] or 'none'}"
        )


def print_breakdown(breakdown: dict[str, float]) -> None:
    print("\nwhere the Lambda-mode cold start's imports go (self time by top-level package, one run):")
    for name, ms in breakdown.items():
        print(f"  {name:<24}{ms:>8.1f} ms")


def plot(warm: Run, cached: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    hi = float(np.percentile(warm.latencies_ms, 99.5))
    bins = np.linspace(0, hi, 80)
    ax.hist(np.clip(warm.latencies_ms, 0, hi), bins=bins, alpha=0.75, label="uncached (ranked)")
    ax.hist(np.clip(cached.latencies_ms, 0, hi), bins=bins, alpha=0.75, label="cache hit")
    for q, style in ((50, "--"), (99, ":")):
        v = float(np.percentile(warm.latencies_ms, q))
        ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"uncached p{q} {v:.1f} ms")
    ax.set_xlabel("latency per request (ms, clipped at p99.5)")
    ax.set_ylabel("requests")
    ax.set_title("GET /v1/recommendations through the ASGI app, in process")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
