"""Load test: ``shoprec serve`` against the naive PyTorch baseline (``naive_service.py``) under one locust
scenario (``locustfile.py``), both on loopback with the same number of uvicorn workers.

Setup: the dataset's users are imported into a fresh sqlite state store (``shoprec state import``, as
``make run`` does) and the shoppers' users, items and queries are written for the locustfile. Both services
start on free loopback ports; then each step runs locust headless for ``--step-seconds`` at a fixed user
count, against shoprec and the baseline in turn (so drift in the machine's load hits both alike). A
target's stepping stops after a step whose p99 exceeds four times ``--p99-ms`` (saturated).

Per step: throughput (requests/s over the step), p50/p99 (locust's, all routes together), errors, CPU per
request (the server processes' user+system CPU time over the step, parent and workers, from psutil, divided
by the requests), locust's own CPU, and the 1-minute load average at the end of the step: on a machine
shared with other work the figures move with it, so every figure is reported beside it.

Usage::

    .venv/bin/python bench/load/run_load.py [--users 1 2 4 8 16 32] [--step-seconds 25] [--workers 2]

Writes ``bench-results/load/load.json`` and prints a markdown table. Reports; asserts nothing on timing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = ("shoprec", "naive")
DEFAULT_MIX = "recommendations=4,search=3,similar=2,events=1"
GIVE_UP = 4.0
"""A target's stepping stops after a step whose p99 exceeds this many times ``--p99-ms``."""


def best_step(steps: Sequence[dict[str, Any]], p99_ms: float) -> dict[str, Any] | None:
    """The step with the highest throughput among those with no error and p99 ≤ ``p99_ms``; None if none."""
    ok = [s for s in steps if s["errors"] == 0 and s["requests"] > 0 and s["p99_ms"] <= p99_ms]
    return max(ok, key=lambda s: s["rps"]) if ok else None


def write_fixture(dataset: str, artifacts: Path, path: Path, n_queries: int = 200, seed: int = 0) -> None:
    """The locustfile's users (the dataset's), items (the bundle's) and queries (one or two words of the
    titles of the bundle's most popular items, as shoppers type them)."""
    from shoprec.data import load_dataset

    ds = load_dataset(dataset)
    item_ids: list[str] = json.loads((artifacts / "item_ids.json").read_text())
    popularity = np.load(artifacts / "popularity.npy")
    titles: dict[str, str] = {}
    with (artifacts / "catalog.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            titles[row["item_id"]] = row.get("title") or ""
    rng = random.Random(seed)
    queries: list[str] = []
    for i in np.argsort(-popularity, kind="stable")[: n_queries * 2]:
        words = [w.lower() for w in titles.get(item_ids[int(i)], "").split() if w.isalpha() and len(w) > 3]
        if words:
            start = rng.randrange(len(words))
            queries.append(" ".join(words[start : start + rng.choice((1, 2))]))
    if not queries:
        raise ValueError(f"{artifacts}/catalog.jsonl: no title gives a query")
    path.write_text(json.dumps({"users": ds.user_ids, "items": item_ids, "queries": queries[:n_queries]}))


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(
    cmd: list[str], port: int, log: Path, env: dict[str, str], timeout_s: float
) -> Iterator[tuple[str, int]]:
    """Run ``cmd`` until its ``/v1/health`` answers 200; yields its base URL and pid (uvicorn's supervisor,
    whose children are the workers), then stops it and its workers."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{base}/v1/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base} not healthy after {timeout_s:.0f} s; see {log}")
            time.sleep(1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_cpu_s(pid: int) -> float:
    """User+system CPU seconds of process ``pid`` and its live descendants (the uvicorn workers)."""
    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def run_step(
    base: str, users: int, seconds: int, fixture: Path, workdir: Path, server_pid: int, mix: str
) -> dict[str, Any]:
    """One headless locust run at ``users`` users; its figures (see the module docstring)."""
    prefix = workdir / f"{urllib.parse.urlsplit(base).port}-{users}"
    cmd = [
        str(Path(sys.executable).parent / "locust"),
        *("-f", str(HERE / "locustfile.py"), "--headless", "--only-summary"),
        *("-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "5"),
        *("--host", base, "--csv", str(prefix), "--loglevel", "WARNING"),
    ]
    env = {**os.environ, "SHOPREC_LOAD_FIXTURE": str(fixture), "SHOPREC_LOAD_MIX": mix}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = server_cpu_s(server_pid)
    subprocess.run(cmd, env=env, cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu = server_cpu_s(server_pid) - cpu_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    with Path(f"{prefix}_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    agg = rows.pop("Aggregated")
    requests = int(agg["Request Count"])
    return {
        "users": users,
        "seconds": seconds,
        "requests": requests,
        "errors": int(agg["Failure Count"]),
        "rps": float(agg["Requests/s"]),
        "p50_ms": float(agg["50%"]),
        "p99_ms": float(agg["99%"]),
        "server_cpu_s": round(cpu, 3),
        "cpu_ms_per_request": round(1000 * cpu / requests, 3) if requests else None,
        "locust_cpu_s": round(locust_cpu, 3),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "routes": {
            name: {
                "requests": int(r["Request Count"]),
                "errors": int(r["Failure Count"]),
                "p99_ms": float(r["99%"]),
            }
            for name, r in rows.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the load test; returns what it writes to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "scientific")
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument(
        "--users", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="User count of each step."
    )
    parser.add_argument("--step-seconds", type=int, default=25)
    parser.add_argument(
        "--warmup-seconds", type=int, default=10, help="Unrecorded run at the first step's users."
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument(
        "--mix",
        default=DEFAULT_MIX,
        help="Route weights (SHOPREC_LOAD_MIX), e.g. recommendations=4,similar=2,events=1.",
    )
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "load" / "load.json")
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, help="Seconds for a service to be healthy."
    )
    args = parser.parse_args(argv)
    artifacts = args.artifacts.resolve()

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shoprec-load-")))
        fixture = workdir / "fixture.json"
        write_fixture(args.dataset, artifacts, fixture)
        state = f"sqlite:///{workdir / 'state.db'}"
        shoprec = shutil.which("shoprec", path=str(Path(sys.executable).parent)) or "shoprec"
        subprocess.run(
            [
                shoprec,
                "state",
                "import",
                "--dataset",
                args.dataset,
                "--artifacts",
                str(artifacts),
                "--state",
                state,
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        commands = {
            "shoprec": [shoprec, "serve", "--artifacts", str(artifacts), "--state", state, "--workers"],
            "naive": [sys.executable, str(HERE / "naive_service.py"), "--artifacts", str(artifacts)],
        }
        bases: dict[str, str] = {}
        pids: dict[str, int] = {}
        for target in args.targets:
            port = free_port()
            cmd = commands[target] + (
                [str(args.workers)] if target == "shoprec" else ["--workers", str(args.workers)]
            )
            cmd += ["--port", str(port)] + (["--dataset", args.dataset] if target == "naive" else [])
            bases[target], pids[target] = stack.enter_context(
                service(cmd, port, workdir / f"{target}.log", dict(os.environ), args.startup_timeout)
            )
        for target in args.targets:
            run_step(
                bases[target], args.users[0], args.warmup_seconds, fixture, workdir, pids[target], args.mix
            )
        steps: dict[str, list[dict[str, Any]]] = {t: [] for t in args.targets}
        for users in args.users:
            for target in args.targets:
                done = steps[target]
                # A p99 far past the limit means the service is saturated: more users only queue longer.
                if done and done[-1]["p99_ms"] > GIVE_UP * args.p99_ms:
                    continue
                done.append(
                    run_step(
                        bases[target], users, args.step_seconds, fixture, workdir, pids[target], args.mix
                    )
                )
                print(f"{target:>8} {users:>3} users: {_line(done[-1])}", file=sys.stderr)

    result = {
        "p99_limit_ms": args.p99_ms,
        "workers": args.workers,
        "step_seconds": args.step_seconds,
        "mix": args.mix,
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "dataset": args.dataset,
        "artifacts": str(artifacts),
        "targets": {
            t: {"steps": s, "best": best_step(s, args.p99_ms), "errors": sum(x["errors"] for x in s)}
            for t, s in steps.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return result


def _line(step: dict[str, Any]) -> str:
    cpu = step["cpu_ms_per_request"]
    return (
        f"{step['rps']:.1f} req/s, p50 {step['p50_ms']:.0f} ms, p99 {step['p99_ms']:.0f} ms, "
        f"{step['errors']} errors, {cpu if cpu is not None else '-'} ms CPU/request, "
        f"load {step['loadavg_1m']}"
    )


def markdown(result: dict[str, Any]) -> str:
    """The side-by-side table: best step under the p99 limit per target, then every step."""
    limit = result["p99_limit_ms"]
    lines = [
        f"| service | users | throughput at p99 ≤ {limit:.0f} ms (req/s) | p50 / p99 (ms) "
        "| errors (all steps) | server CPU per request (ms) | load average (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target, r in result["targets"].items():
        best = r["best"]
        if best is None:
            first = r["steps"][0] if r["steps"] else None
            p = f"{first['p50_ms']:.0f} / {first['p99_ms']:.0f}" if first else "-"
            lines.append(
                f"| {target} | - | none (p99 over the limit at every step) | {p} | {r['errors']} | - | - |"
            )
            continue
        lines.append(
            f"| {target} | {best['users']} | {best['rps']:.1f} | {best['p50_ms']:.0f} / {best['p99_ms']:.0f} "
            f"| {r['errors']} | {best['cpu_ms_per_request']} | {best['loadavg_1m']} |"
        )
    lines += [
        "",
        "| service | users | req/s | p50 (ms) | p99 (ms) | errors | CPU/request (ms) | load (1 min) |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for target, r in result["targets"].items():
        for s in r["steps"]:
            lines.append(
                f"| {target} | {s['users']} | {s['rps']:.1f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} "
                f"| {s['errors']} | {s['cpu_ms_per_request']} | {s['loadavg_1m']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
