"""The ranking endpoint app: SageMaker's container contract (/ping, /invocations) and its error answers."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
from shoprec.artifacts import ITEM_IDS, Bundle
from shoprec.endpoint import create_endpoint_app
from shoprec.endpoint.app import MAX_CANDIDATES, MAX_INSTANCES
from shoprec.errors import CorruptBundleError


@pytest.fixture(scope="module")
def client(bundle_dir: Path) -> TestClient:
    return TestClient(create_endpoint_app(bundle_dir))


@pytest.fixture(scope="module")
def local(bundle: Bundle) -> LocalOnnxRanker:
    return LocalOnnxRanker.from_bundle(bundle)


def invoke(client: TestClient, body: Any, path: str = "/invocations") -> httpx.Response:
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def test_ping_answers_with_the_model_version(client: TestClient, bundle: Bundle) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": bundle.model_version}


def test_invocations_score_every_instance_like_the_local_ranker(
    client: TestClient, bundle: Bundle, local: LocalOnnxRanker
) -> None:
    ids = bundle.item_ids
    instances = [
        {"history": ids[0:8], "candidates": ids[100:400]},
        {"history": [], "candidates": ids[7:9]},
        {"history": ids[50:52], "candidates": ids[1000:1050]},
    ]
    response = invoke(client, {"instances": instances})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == bundle.model_version
    assert len(body["predictions"]) == 3
    for instance, prediction in zip(instances, body["predictions"], strict=True):
        expected = local.score(instance["history"], instance["candidates"], timeout_s=5)
        np.testing.assert_allclose(prediction["scores"], expected, atol=1e-5)


def test_the_sagemaker_runtime_path_answers_the_same(client: TestClient, bundle: Bundle) -> None:
    body = {"instances": [{"history": bundle.item_ids[:3], "candidates": bundle.item_ids[3:6]}]}
    direct = invoke(client, body).json()
    assert invoke(client, body, "/endpoints/shoprec-ranker/invocations").json() == direct


def test_any_content_type_is_read_as_json(client: TestClient, bundle: Bundle) -> None:
    body = json.dumps({"instances": [{"history": [], "candidates": bundle.item_ids[:2]}]})
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200


def test_unknown_candidates_are_listed_in_a_400(client: TestClient, bundle: Bundle) -> None:
    candidates = [bundle.item_ids[0], "ghost-1", bundle.item_ids[1], "ghost-2", "ghost-1"]
    response = invoke(
        client,
        {
            "instances": [
                {"history": [], "candidates": bundle.item_ids[:2]},
                {"history": [], "candidates": candidates},
            ]
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "instances[1].candidates"
    assert body["unknown"] == ["ghost-1", "ghost-2"]


def test_unknown_history_items_are_ignored(client: TestClient, bundle: Bundle) -> None:
    ids = bundle.item_ids
    plain = invoke(client, {"instances": [{"history": ids[:4], "candidates": ids[10:20]}]}).json()
    noisy = invoke(
        client, {"instances": [{"history": ["new-item", *ids[:4]], "candidates": ids[10:20]}]}
    ).json()
    assert noisy == plain


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": [{"history": []}]}, "instances[0].candidates"),
        ({"instances": [{"candidates": []}]}, "instances[0].candidates"),
        ({"instances": [{"candidates": "1"}]}, "instances[0].candidates"),
        ({"instances": [{"candidates": ["1", 2]}]}, "instances[0].candidates[1]"),
        ({"instances": [{"candidates": ["1"], "histroy": []}]}, "instances[0].histroy"),
        ({"instances": [{"candidates": ["1"], "history": None}]}, "instances[0].history"),
        ([1, 2], "body"),
    ],
)
def test_malformed_payloads_are_a_400_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    response = invoke(client, body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["message"]


def test_invalid_json_is_a_400(client: TestClient) -> None:
    response = client.post("/invocations", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_too_many_candidates_or_instances_are_refused(client: TestClient, bundle: Bundle) -> None:
    ids = bundle.item_ids
    too_many_candidates = {"instances": [{"candidates": ids[: MAX_CANDIDATES + 1]}]}
    response = invoke(client, too_many_candidates)
    assert (response.status_code, response.json()["field"]) == (400, "instances[0].candidates")
    assert invoke(client, {"instances": [{"candidates": ids[:MAX_CANDIDATES]}]}).status_code == 200
    too_many_instances = {"instances": [{"candidates": ids[:1]}] * (MAX_INSTANCES + 1)}
    response = invoke(client, too_many_instances)
    assert (response.status_code, response.json()["field"]) == (400, "instances")


def test_a_burst_of_concurrent_requests_is_answered_consistently(
    ranking_endpoint: str, bundle: Bundle
) -> None:
    ids = bundle.item_ids

    def body(n: int) -> dict[str, Any]:
        return {"instances": [{"history": ids[n : n + 10], "candidates": ids[2000 : 2000 + 50 + n]}]}

    with httpx.Client(base_url=ranking_endpoint, timeout=30) as http:
        expected = {n: http.post("/invocations", json=body(n)).json() for n in range(5)}
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(lambda k: (k % 5, http.post("/invocations", json=body(k % 5))), range(20))
            )
    assert all(r.status_code == 200 for _, r in responses)
    for n, response in responses:
        assert response.json() == expected[n]


def test_a_corrupted_bundle_is_refused_at_startup(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    (copy / ITEM_IDS).write_text('["tampered"]\n')
    with pytest.raises(CorruptBundleError, match=ITEM_IDS):
        create_endpoint_app(copy)
