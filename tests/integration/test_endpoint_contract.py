"""The ranking endpoint over real HTTP, as SageMaker and the adapters call it: /ping, /invocations, errors,
micro-batching of a concurrent burst, and the container's own entry points (``serve`` and
``shoprec endpoint serve``) started as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.processes import free_port, stop

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import Bundle
from shoprec.endpoint import create_endpoint_app
from shoprec.endpoint.batcher import BatchingConfig
from shoprec.endpoint.server import serve_in_thread
from shoprec.errors import ArtifactError

REPO = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO / "sagemaker" / "inference" / "serve"
BURST = 64
# A request waits up to 20 ms for others: generous, so that 64 threads released together share calls even
# on a loaded machine. Equality of the scores does not depend on how the burst is split.
BATCHING = BatchingConfig(max_batch_instances=512, max_wait_ms=20.0, max_queue=256)


@pytest.fixture(scope="module")
def endpoint(bundle_dir: Path) -> Iterator[str]:
    url, stop = serve_in_thread(bundle_dir, batching=BATCHING)
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="module")
def http(endpoint: str) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    with httpx.Client(base_url=endpoint, timeout=60, limits=limits) as client:
        yield client


@pytest.fixture(scope="module")
def unbatched(bundle: Bundle) -> LocalOnnxRanker:
    return LocalOnnxRanker.from_bundle(bundle)


def test_ping_answers_200_with_the_model_version(http: httpx.Client, bundle: Bundle) -> None:
    response = http.get("/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": bundle.model_version}


def test_invocations_return_one_score_per_candidate_in_order(
    http: httpx.Client, bundle: Bundle, unbatched: LocalOnnxRanker
) -> None:
    ids = bundle.item_ids
    body = {"instances": [{"history": ids[:5], "candidates": ids[100:130]}, {"candidates": ids[7:9]}]}
    response = http.post("/invocations", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["model_version"] == bundle.model_version
    expected = unbatched.score_many([(ids[:5], ids[100:130]), ([], ids[7:9])])
    for prediction, scores in zip(answer["predictions"], expected, strict=True):
        np.testing.assert_allclose(prediction["scores"], scores, atol=1e-5)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b'{"instances": []}', "instances"),
        (b'{"instances": [{"history": ["1"]}]}', "instances[0].candidates"),
        (b'{"instances": [{"candidates": ["1"], "extra": 1}]}', "instances[0].extra"),
    ],
)
def test_malformed_payloads_are_a_400_with_a_message(http: httpx.Client, content: bytes, field: str) -> None:
    response = http.post("/invocations", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert field in body["message"]


def test_unknown_candidates_are_a_400_listing_them(http: httpx.Client, bundle: Bundle) -> None:
    body = {"instances": [{"candidates": [bundle.item_ids[0], "no-such-item"]}]}
    response = http.post("/invocations", json=body)
    assert response.status_code == 400
    assert response.json()["unknown"] == ["no-such-item"]
    assert "no-such-item" in response.json()["message"]


def test_a_concurrent_burst_is_batched_and_scores_like_unbatched_calls(
    http: httpx.Client, bundle: Bundle, unbatched: LocalOnnxRanker
) -> None:
    ids = bundle.item_ids
    # Every request differs in history and candidate count, so a mix-up between requests would show.
    bodies = [
        {"instances": [{"history": ids[n : n + 1 + n % 12], "candidates": ids[500 + n : 520 + 3 * n]}]}
        for n in range(BURST)
    ]
    expected = [
        unbatched.score_many([(b["instances"][0]["history"], b["instances"][0]["candidates"])])[0]
        for b in bodies
    ]
    before = http.get("/stats").json()["counters"]
    start = threading.Barrier(BURST)

    def call(body: dict[str, Any]) -> httpx.Response:
        start.wait(timeout=30)
        return http.post("/invocations", json=body)

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        responses = list(pool.map(call, bodies))
    after = http.get("/stats").json()["counters"]

    assert [r.status_code for r in responses] == [200] * BURST
    for response, scores in zip(responses, expected, strict=True):
        np.testing.assert_allclose(response.json()["predictions"][0]["scores"], scores, atol=1e-5)
    assert after["requests"] - before["requests"] == BURST
    onnx_calls = after["batches"] - before["batches"]
    assert 1 <= onnx_calls < BURST
    assert after["largest_batch_instances"] > 1


def test_stats_name_the_execution_providers_and_knobs(http: httpx.Client) -> None:
    stats = http.get("/stats").json()
    assert stats["providers"] == ["CPUExecutionProvider"]
    assert stats["batching"] == {"max_batch_instances": 512, "max_wait_ms": 20.0, "max_queue": 256}


def test_a_bundle_other_than_the_expected_version_is_refused(bundle_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="not the expected"):
        create_endpoint_app(bundle_dir, expected_version="sha256:" + "0" * 64)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["container serve script", "shoprec endpoint serve"])
def test_the_container_entry_points_serve_the_same_app(bundle_dir: Path, bundle: Bundle, entry: str) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SHOPREC_ENDPOINT_HOST": "127.0.0.1",
        "SHOPREC_ENDPOINT_DEVICE": "cpu",
        "SHOPREC_ENDPOINT_THREADS": "1",
    }
    if entry == "container serve script":
        # What SageMaker runs (`docker run IMAGE serve`), configured like the image and deploy configure it.
        command = [str(SERVE_SCRIPT)]
        env |= {
            "SHOPREC_ENDPOINT_MODEL_DIR": str(bundle_dir),
            "SHOPREC_ENDPOINT_PORT": str(port),
            "SHOPREC_ENDPOINT_MODEL_VERSION": bundle.model_version,
        }
    else:
        command = [
            str(bin_dir / "shoprec"),
            "endpoint",
            "serve",
            "--model-dir",
            str(bundle_dir),
            "--port",
            str(port),
        ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ping = _wait_for_ping(f"http://127.0.0.1:{port}", proc)
        assert ping == {"status": "ok", "model_version": bundle.model_version}
        body = {"instances": [{"history": bundle.item_ids[:3], "candidates": bundle.item_ids[3:6]}]}
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", content=json.dumps(body), timeout=30)
        assert answer.status_code == 200
        assert len(answer.json()["predictions"][0]["scores"]) == 3
    finally:
        stop(proc)


def _wait_for_ping(base_url: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"endpoint exited with {proc.returncode}: {output[-2000:]}")
        try:
            response = httpx.get(f"{base_url}/ping", timeout=1)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no answer on {base_url}/ping within {timeout_s} s")
