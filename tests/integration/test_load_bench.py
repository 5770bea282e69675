"""The load test's parts (bench/load): the naive baseline's weights and routes, and the locustfile driving
both the baseline and shoprec's API over HTTP for a few seconds without an error. No timing is asserted."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from tests.integration.bundle_factory import build_bundle

from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.data import load_dataset
from shoprec.services.importer import import_histories
from shoprec.settings import Settings
from shoprec.training.sasrec import SASRecConfig

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load"
ROUTES = {"recommendations", "search", "similar", "events"}


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_load_{name}", LOAD / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as an import would: pydantic resolves its models' annotations there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def naive() -> ModuleType:
    return _module("naive_service")


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> Path:
    """Amazon Scientific with an untrained one-block ranker and its catalogue (no text embeddings)."""
    out = tmp_path_factory.mktemp("load-bundle")
    build_bundle(out, dataset_dir=scientific_dir)
    return out


@pytest.fixture(scope="module")
def naive_app(naive: ModuleType, small_bundle: Path, scientific_dir: Path) -> Any:
    return naive.create_app(small_bundle, str(scientific_dir))


def test_the_torch_model_rebuilt_from_the_onnx_graph_scores_as_the_graph_does(
    naive: ModuleType, small_bundle: Path
) -> None:
    cfg = _bundle_cfg(small_bundle)
    model = naive.sasrec_from_onnx(small_bundle / "ranker.onnx", cfg)
    gen = torch.Generator().manual_seed(7)
    seq = torch.randint(0, cfg.n_items + 1, (8, cfg.max_len), generator=gen)
    cand = torch.randint(1, cfg.n_items + 1, (8, 50), generator=gen)
    session = ort.InferenceSession(str(small_bundle / "ranker.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"item_seq": seq.numpy(), "candidates": cand.numpy()})[0]
    with torch.no_grad():
        got = model(seq, cand).numpy()
    np.testing.assert_allclose(got, want, atol=naive.PARITY_TOL)
    # score_all (what the baseline serves) is the same scores over the whole catalogue.
    with torch.no_grad():
        full = model.score_all(seq).numpy()
    picked = np.take_along_axis(full, cand.numpy() - 1, axis=1)
    np.testing.assert_allclose(picked, want, atol=naive.PARITY_TOL)


def test_a_graph_of_another_shape_is_refused(naive: ModuleType, small_bundle: Path) -> None:
    cfg = _bundle_cfg(small_bundle)
    wrong = SASRecConfig(n_items=cfg.n_items, hidden=cfg.hidden, blocks=2, heads=1, max_len=cfg.max_len)
    with pytest.raises(ValueError, match="expected 2 qkv"):
        naive.sasrec_from_onnx(small_bundle / "ranker.onnx", wrong)


def test_the_naive_routes_answer_in_shoprecs_shapes(naive_app: Any, scientific_dir: Path) -> None:
    ds = load_dataset(scientific_dir)
    user = ds.user_ids[0]
    history = {ds.item_ids[i] for i in ds.sequences[0]}
    client = TestClient(naive_app)

    recs = client.get(f"/v1/recommendations/{user}", params={"k": 7}).json()
    assert len(recs["items"]) == 7
    assert not history & {it["item_id"] for it in recs["items"]}
    assert {"model_version", "request_id", "degraded", "cached"} <= recs.keys()

    viewed = recs["items"][0]["item_id"]
    event = {"event_id": "e-1", "user_id": user, "item_id": viewed, "type": "view"}
    first = client.post("/v1/events", json={"events": [event]}).json()
    again = client.post("/v1/events", json={"events": [event]}).json()
    assert (first["applied"], first["duplicates"], again["applied"], again["duplicates"]) == (1, 0, 0, 1)
    after = client.get(f"/v1/recommendations/{user}", params={"k": 7}).json()
    assert viewed not in {it["item_id"] for it in after["items"]}
    unknown = {**event, "event_id": "e-2", "item_id": "no-such-item"}
    assert client.post("/v1/events", json={"events": [unknown]}).status_code == 422

    similar = client.get(f"/v1/items/{viewed}/similar", params={"k": 5}).json()
    assert len(similar["items"]) == 5
    assert viewed not in {it["item_id"] for it in similar["items"]}
    assert client.get("/v1/items/no-such-item/similar").status_code == 404

    word = next(w for w in (recs["items"][0]["title"] or "").lower().split() if w.isalpha() and len(w) > 3)
    found = client.get("/v1/search", params={"q": word, "k": 5}).json()
    assert found["items"]
    assert all(word in (it["title"] or "").lower() for it in found["items"])
    assert "facets" in found


def test_the_locustfile_drives_the_baseline_and_shoprec_without_errors(
    naive: ModuleType, naive_app: Any, small_bundle: Path, scientific_dir: Path, tmp_path: Path
) -> None:
    run_load = _module("run_load")
    fixture = tmp_path / "fixture.json"
    run_load.write_fixture(str(scientific_dir), small_bundle, fixture, n_queries=20)
    settings = Settings(artifacts=str(small_bundle), state=f"sqlite:///{tmp_path / 'state.db'}")
    container = build_container(settings)
    import_histories(container.events, load_dataset(scientific_dir))
    for name, app in (("naive", naive_app), ("shoprec", create_app(container))):
        with _serving(app) as base:
            stats = _locust(base, fixture, tmp_path / name)
        assert set(stats) == ROUTES | {"Aggregated"}, name
        for route, row in stats.items():
            assert int(row["Request Count"]) > 0, (name, route)
            assert int(row["Failure Count"]) == 0, (name, route)


def test_the_best_step_is_the_fastest_without_errors_under_the_p99_limit() -> None:
    best_step = _module("run_load").best_step
    steps = [
        {"users": 1, "rps": 10.0, "p99_ms": 20.0, "errors": 0, "requests": 250},
        {"users": 2, "rps": 19.0, "p99_ms": 45.0, "errors": 0, "requests": 475},
        {"users": 4, "rps": 30.0, "p99_ms": 48.0, "errors": 3, "requests": 750},
        {"users": 8, "rps": 33.0, "p99_ms": 120.0, "errors": 0, "requests": 825},
    ]
    assert best_step(steps, 50.0)["users"] == 2
    assert best_step(steps, 10.0) is None
    assert best_step(steps, 200.0)["users"] == 8


def _bundle_cfg(bundle: Path) -> SASRecConfig:
    t = json.loads((bundle / "manifest.json").read_text())["hyperparameters"]["transformer"]
    return SASRecConfig(
        n_items=t["n_items"], hidden=t["hidden"], blocks=t["blocks"], heads=t["heads"], max_len=t["max_len"]
    )


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _locust(base: str, fixture: Path, prefix: Path) -> dict[str, dict[str, str]]:
    """Four seconds of the locustfile at four users against ``base``, the routes weighted alike so that
    each is called; its per-route stats rows."""
    cmd = [
        str(Path(sys.executable).parent / "locust"),
        *("-f", str(LOAD / "locustfile.py"), "--headless", "--only-summary", "-u", "4", "-r", "4"),
        *("-t", "4s", "--stop-timeout", "5", "--host", base, "--csv", str(prefix), "--loglevel", "WARNING"),
    ]
    env = {
        **os.environ,
        "SHOPREC_LOAD_FIXTURE": str(fixture),
        "SHOPREC_LOAD_MIX": "recommendations=1,search=1,similar=1,events=1",
    }
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    with Path(f"{prefix}_stats.csv").open() as f:
        return {row["Name"]: row for row in csv.DictReader(f)}
