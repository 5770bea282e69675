"""``GET /v1/health/ready`` reports each dependency as it is now; ``GET /v1/health`` stays a liveness check.

Required dependencies (state store, artifacts) down → ``503 unavailable``; optional ones (cache, ranker)
down → ``200 degraded``. Every answer comes within the readiness timeout, whatever hangs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.faults.measure import MARGIN_MS, Tally
from tests.faults.proxy import FaultProxy

from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.settings import Settings

READINESS_TIMEOUT_S = 0.5
LIMIT_MS = READINESS_TIMEOUT_S * 1000 + MARGIN_MS


def app(bundle_dir: Path, tmp_path: Path, redis: FaultProxy, ranker: FaultProxy, **extra: Any) -> TestClient:
    settings: dict[str, Any] = {
        "artifacts": str(bundle_dir),
        "state": f"sqlite:///{tmp_path / 'state.db'}",
        "cache": f"redis://127.0.0.1:{redis.port}/0",
        "ranker": ranker.url(),
        "readiness_timeout_s": READINESS_TIMEOUT_S,
        # Generous timeouts (a probe is "degraded" past half of its timeout): these tests are about states,
        # not about how fast a busy machine answers. Both still end before the readiness timeout.
        "cache_timeout_s": 0.2,
        "latency_budget_ms": 300,
        **extra,
    }
    return TestClient(create_app(build_container(Settings(**settings))))


def readiness(client: TestClient, tally: Tally) -> tuple[int, dict[str, Any]]:
    response = tally.timed(lambda: client.get("/v1/health/ready"))
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    return response.status_code, body


def test_with_every_dependency_answering_the_service_is_ready(
    fault_redis_proxy: FaultProxy, fault_ranker_proxy: FaultProxy, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    client = app(fault_bundle_dir, tmp_path, fault_redis_proxy, fault_ranker_proxy)
    status, body = readiness(client, Tally("ready"))
    assert status == 200
    assert body["status"] == "ready"
    assert body["degraded"] is False
    assert body["model_version"].startswith("sha256:")
    deps = body["dependencies"]
    assert set(deps) == {"artifacts", "state", "cache", "ranker"}
    assert {name: d["state"] for name, d in deps.items()} == dict.fromkeys(deps, "ok")
    assert {name: d["required"] for name, d in deps.items()} == {
        "artifacts": True,
        "state": True,
        "cache": False,
        "ranker": False,
    }
    # The remote dependencies have breakers; the in-process ones (SQLite, the loaded bundle) do not.
    assert {name: d["breaker"] for name, d in deps.items()} == {
        "artifacts": None,
        "state": None,
        "cache": "closed",
        "ranker": "closed",
    }
    assert all(isinstance(d["latency_ms"], float) for d in deps.values())


@pytest.mark.parametrize("dependency", ["cache", "ranker"])
def test_a_hanging_optional_dependency_is_down_and_the_service_ready_but_degraded(
    dependency: str,
    fault_redis_proxy: FaultProxy,
    fault_ranker_proxy: FaultProxy,
    fault_bundle_dir: Path,
    tmp_path: Path,
) -> None:
    client = app(fault_bundle_dir, tmp_path, fault_redis_proxy, fault_ranker_proxy)
    (fault_redis_proxy if dependency == "cache" else fault_ranker_proxy).set_mode("blackhole")
    tally = Tally(f"readiness, {dependency} hangs")
    status, body = readiness(client, tally)
    print(tally.report(LIMIT_MS))
    assert status == 200
    assert body["status"] == "degraded"
    assert body["degraded"] is True
    states = {name: d["state"] for name, d in body["dependencies"].items()}
    assert states == {"artifacts": "ok", "state": "ok", "cache": "ok", "ranker": "ok", dependency: "down"}
    assert re.search(r"timed? ?out", body["dependencies"][dependency]["detail"], re.IGNORECASE)
    assert tally.within(LIMIT_MS) == 1, tally.report(LIMIT_MS)


def test_an_open_breaker_is_reported_and_the_probe_does_not_call_the_dependency(
    fault_redis_proxy: FaultProxy, fault_ranker_proxy: FaultProxy, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    client = app(
        fault_bundle_dir,
        tmp_path,
        fault_redis_proxy,
        fault_ranker_proxy,
        breaker_failures=1,
        breaker_open_s=600,
    )
    fault_redis_proxy.set_mode("blackhole")
    _, first = readiness(client, Tally("readiness, cache hangs"))
    assert first["dependencies"]["cache"]["state"] == "down"
    assert first["dependencies"]["cache"]["breaker"] == "open"  # one failure was the threshold

    received = fault_redis_proxy.received
    status, second = readiness(client, Tally("readiness, cache circuit open"))
    assert status == 200
    assert second["dependencies"]["cache"]["state"] == "down"
    assert "circuit cache is open" in second["dependencies"]["cache"]["detail"]
    assert fault_redis_proxy.received == received


def test_an_unreachable_state_store_makes_the_service_unavailable(
    fault_redis_proxy: FaultProxy,
    fault_ranker_proxy: FaultProxy,
    fault_bundle_dir: Path,
    tmp_path: Path,
    fault_aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FaultProxy(None, mode="blackhole") as dynamodb:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.url())
        client = app(
            fault_bundle_dir,
            tmp_path,
            fault_redis_proxy,
            fault_ranker_proxy,
            state="dynamodb://shoprec-state",
            state_read_timeout_s=2.0,  # longer than the probe's wait: the probe's own timeout is tested
        )
        tally = Tally("readiness, DynamoDB hangs")
        status, body = readiness(client, tally)
    print(tally.report(LIMIT_MS))
    assert status == 503
    assert body["status"] == "unavailable"
    state = body["dependencies"]["state"]
    assert (state["state"], state["required"], state["latency_ms"]) == ("down", True, None)
    assert state["detail"] == f"no answer within {READINESS_TIMEOUT_S * 1000:.0f} ms"
    assert body["dependencies"]["cache"]["state"] == "ok"
    assert tally.within(LIMIT_MS) == 1, tally.report(LIMIT_MS)


def test_a_bundle_that_cannot_be_loaded_makes_the_service_unavailable_naming_it(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    client = TestClient(create_app(lambda: build_container(Settings(artifacts=str(absent)))))
    status, body = readiness(client, Tally("readiness, no bundle"))
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["model_version"] is None
    artifacts = body["dependencies"]["artifacts"]
    assert artifacts["state"] == "down"
    assert "absent" in artifacts["detail"]


def test_liveness_answers_without_calling_any_dependency(
    fault_redis_proxy: FaultProxy, fault_ranker_proxy: FaultProxy, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    client = app(fault_bundle_dir, tmp_path, fault_redis_proxy, fault_ranker_proxy)
    fault_redis_proxy.set_mode("blackhole")
    fault_ranker_proxy.set_mode("blackhole")
    received = fault_redis_proxy.received + fault_ranker_proxy.received
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert fault_redis_proxy.received + fault_ranker_proxy.received == received


def test_the_readiness_schema_is_in_the_openapi_document(
    fault_redis_proxy: FaultProxy, fault_ranker_proxy: FaultProxy, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    spec = app(fault_bundle_dir, tmp_path, fault_redis_proxy, fault_ranker_proxy).get("/openapi.json").json()
    responses = spec["paths"]["/v1/health/ready"]["get"]["responses"]
    for status in ("200", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Readiness"}
