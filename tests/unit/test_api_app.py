"""The app as a whole: request ids, health, OpenAPI, lazy container, problem+json for every failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.api_fakes import Api, assert_problem
from tests.unit.fakes import DictCache, DictStateStore, FakeRanker

from shoprec.api.app import create_app
from shoprec.container import Container, LazyContainer, build_container
from shoprec.errors import BackendUnavailableError
from shoprec.settings import Settings


def fake_container(bundle_dir: Path) -> Container:
    return build_container(
        Settings(artifacts=str(bundle_dir)), state=DictStateStore(), cache=DictCache(), ranker=FakeRanker()
    )


def test_a_valid_x_request_id_is_echoed_in_body_and_header(api: Api) -> None:
    r = api.client.get("/v1/recommendations/u1", headers={"x-request-id": "req-123"})
    assert r.json()["request_id"] == "req-123"
    assert r.headers["x-request-id"] == "req-123"


def test_problems_carry_the_request_id_too(api: Api) -> None:
    r = api.client.get("/v1/items/nope/similar", headers={"x-request-id": "req-404"})
    assert assert_problem(r, 404, "item_id")["request_id"] == "req-404"


@pytest.mark.parametrize("header", ["", "has space", "x" * 129, "<script>"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(api: Api, header: str) -> None:
    r = api.client.get("/v1/health", headers={"x-request-id": header})
    rid = r.json()["request_id"]
    assert rid != header
    assert len(rid) == 36  # a UUID
    assert r.headers["x-request-id"] == rid


def test_every_request_without_an_id_gets_a_distinct_one(api: Api) -> None:
    ids = {api.client.get("/v1/health").json()["request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_health_reports_model_version_artifact_age_and_backends(api: Api) -> None:
    body = api.client.get("/v1/health").json()
    assert body["status"] == "ok"
    assert body["model_version"] == api.container.model_version
    assert body["n_items"] == 12
    assert body["artifact_age_s"] >= 0
    assert body["artifact_created_at"] == api.container.bundle.manifest.created_at
    assert body["backends"] == {
        "artifacts": f"file://{api.container.bundle.path}",
        "state": "memory://fake-state",
        "cache": "memory://fake-cache",
        "ranker": "fake://ranker",
    }


def test_openapi_schema_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert {
        "/v1/recommendations/{user_id}",
        "/v1/items/{item_id}/similar",
        "/v1/search",
        "/v1/rank",
        "/v1/events",
        "/v1/users/{user_id}",
        "/v1/health",
    } <= spec["paths"].keys()
    assert "Problem" in spec["components"]["schemas"]
    responses = spec["paths"]["/v1/events"]["post"]["responses"]
    assert "application/problem+json" in responses["422"]["content"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    assert_problem(api.client.get("/v1/nothing-here"), 404)
    assert_problem(api.client.put("/v1/events", json={}), 405)


def test_the_container_is_built_on_the_first_request_not_before(bundle_dir: Path) -> None:
    builds: list[Container] = []

    def factory() -> Container:
        builds.append(fake_container(bundle_dir))
        return builds[-1]

    client = TestClient(create_app(factory))
    assert builds == []
    client.get("/openapi.json")
    assert builds == []  # the schema does not need a model
    client.get("/v1/health")
    client.get("/v1/recommendations/u1")
    assert len(builds) == 1


def test_a_missing_bundle_is_a_503_problem_and_the_next_request_retries(tmp_path: Path) -> None:
    provider = LazyContainer(lambda version: build_container(Settings(artifacts=str(tmp_path / "absent"))))
    client = TestClient(create_app(provider), raise_server_exceptions=False)
    for _ in range(2):
        body = assert_problem(client.get("/v1/recommendations/u1"), 503)
        assert body["type"].endswith("model-unavailable")
        assert str(tmp_path) not in body["detail"]  # no server paths leak to clients
    assert not provider.built


def test_a_failing_state_store_on_write_is_a_503_problem_with_retry_after(api: Api) -> None:
    api.state.fail = True
    event = {"event_id": "e1", "user_id": "u1", "item_id": "p1", "type": "view"}
    r = api.client.post("/v1/events", json={"events": [event]})
    assert assert_problem(r, 503)["type"].endswith("backend-unavailable")
    assert r.headers["retry-after"] == "1"


def test_a_failing_state_store_on_read_degrades_instead(api: Api) -> None:
    api.state.fail = True
    r = api.client.get("/v1/recommendations/u1")
    assert r.status_code == 200
    assert r.json()["degraded"] is True


def test_an_unexpected_error_is_a_500_problem_without_details(api: Api) -> None:
    def boom(*args: object, **kwargs: object) -> list[float]:
        raise RuntimeError("secret internals")

    api.state.recent["u1"] = ["p0"]
    api.ranker.score_many = boom  # type: ignore[method-assign]
    r = api.client.get("/v1/recommendations/u1")
    body = assert_problem(r, 500)
    assert "secret" not in r.text
    assert body["type"].endswith("internal-error")


def test_backend_errors_raised_while_building_are_503(bundle_dir: Path) -> None:
    def factory() -> Container:
        raise BackendUnavailableError("dynamodb unreachable")

    client = TestClient(create_app(factory), raise_server_exceptions=False)
    assert_problem(client.get("/v1/health"), 503)


def test_stage_latencies_are_emitted_as_emf_when_metrics_are_enabled(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoprec.observability import metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    api.state.recent["u1"] = ["p0"]
    api.client.get("/v1/recommendations/u1")
    metrics.flush_metrics()
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "shoprec"
    assert {"RecommendLatency", "RecallLatency", "RankLatency", "CacheMiss", "CandidatesItemcf"} <= names


def test_the_serving_import_path_needs_no_torch_scipy_or_matplotlib() -> None:
    """What the Lambda package lacks: importing the API, container, services and handlers must not need it."""
    root = Path(__file__).resolve().parents[2]
    code = f"""
import importlib.abc, importlib.util, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy", "matplotlib"):
            raise ImportError(f"{{name}} is not in the Lambda package")
sys.meta_path.insert(0, Block())
import shoprec.api.app, shoprec.container, shoprec.services.recommendation, shoprec.search.bm25
import shoprec.adapters.local.onnx_ranker, shoprec.adapters.local.sqlite_state
for name in ("api", "ingest"):
    spec = importlib.util.spec_from_file_location(name, {str(root)!r} + f"/functions/{{name}}/handler.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(sorted(m for m in ("torch", "scipy", "matplotlib") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_cors_answers_only_the_configured_origins(bundle_dir: Path) -> None:
    def app_with(origins: str) -> TestClient:
        container = build_container(
            Settings(artifacts=str(bundle_dir), cors_origins=origins),
            state=DictStateStore(),
            cache=DictCache(),
            ranker=FakeRanker(),
        )
        return TestClient(create_app(container))

    shop = "https://shop.example.com"
    client = app_with(f"{shop}, http://localhost:5173")
    preflight = client.options(
        "/v1/events",
        headers={
            "origin": shop,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == shop
    got = client.get("/v1/popular", headers={"origin": shop})
    assert got.headers["access-control-allow-origin"] == shop
    assert "x-request-id" in got.headers["access-control-expose-headers"]
    assert (
        "access-control-allow-origin"
        not in client.get("/v1/popular", headers={"origin": "https://evil.example"}).headers
    )
    plain = app_with("")  # the default: no CORS at all
    assert "access-control-allow-origin" not in plain.get("/v1/popular", headers={"origin": shop}).headers
    assert plain.options("/v1/events", headers={"origin": shop}).status_code == 405


def test_cors_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="cors_origins"):
        Settings(cors_origins="https://shop.example.com/path")
