"""An experiment through the API on the tiny catalogue: sticky variants, their own pipelines and cache
entries, exposures in the event log, and the production variant of a SageMaker endpoint."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.api_fakes import Api, make_api
from tests.unit.fakes import DictCache, DictStateStore

from shoprec.adapters.aws.sagemaker_ranker import SageMakerRanker
from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.errors import ShopRecError
from shoprec.evaluation.ab_report import ab_report, log_records
from shoprec.experiments import Assigner, parse_experiment
from shoprec.settings import Settings

EXPERIMENT = {
    "name": "fusion-test",
    "variants": [
        {"name": "control", "weight": 1},
        # Popularity alone: a list the fake ranker's order (the control's) does not give.
        {"name": "popular", "weight": 1, "fusion": {"kind": "weighted", "weights": {"popularity": 1}}},
    ],
}
ASSIGN = Assigner(parse_experiment(json.dumps(EXPERIMENT)))
USERS = {
    name: next(f"u{i}" for i in range(100) if ASSIGN.variant_of(f"u{i}") == name)
    for name in ("control", "popular")
}


def experiment_api(bundle_dir: Path, log: Path) -> Api:
    return make_api(bundle_dir, experiment=json.dumps(EXPERIMENT), event_log=f"file://{log}")


def exposures(log: Path) -> list[dict[str, Any]]:
    return [r for _, _, r in log_records(log) if r.get("record") == "exposure"] if log.exists() else []


def test_each_user_gets_their_variant_every_time_and_in_every_process(
    bundle_dir: Path, tmp_path: Path
) -> None:
    first, second = experiment_api(bundle_dir, tmp_path / "log"), experiment_api(bundle_dir, tmp_path / "log")
    for user in [f"u{i}" for i in range(20)]:
        seen = {
            api.client.get(f"/v1/recommendations/{user}").json()["variant"] for api in (first, second, first)
        }
        assert seen == {ASSIGN.variant_of(user)}


def test_variants_serve_their_own_pipeline_and_cache_entries(bundle_dir: Path, tmp_path: Path) -> None:
    api = experiment_api(bundle_dir, tmp_path / "log")
    lists = {}
    for variant, user in USERS.items():
        api.state.recent[user] = ["p0", "p1"]
        body = api.client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
        assert body["variant"] == variant
        lists[variant] = [item["item_id"] for item in body["items"]]
        again = api.client.get(f"/v1/recommendations/{user}", params={"k": 5}).json()
        assert (again["cached"], again["variant"], [i["item_id"] for i in again["items"]]) == (
            True, variant, lists[variant],
        )  # fmt: skip
    assert lists["control"] != lists["popular"]
    services = api.container.experiments.services
    keys = {name: s.cache_key("u", 5, generation="g") for name, s in services.items()}
    assert keys["control"] != keys["popular"]
    assert services["popular"].pipeline is not services["control"].pipeline
    assert api.container.recommendations is services["control"]  # the default variant's


def test_served_lists_are_logged_as_exposures_and_anonymous_ones_are_not(
    bundle_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    api = experiment_api(bundle_dir, log)
    user = USERS["popular"]
    r = api.client.get(f"/v1/recommendations/{user}", params={"k": 3})
    body = r.json()
    ranked = api.client.post("/v1/rank", json={"user_id": user, "item_ids": ["p1", "p2"]}).json()
    searched = api.client.get("/v1/search", params={"q": "caliper", "user_id": user}).json()
    similar = api.client.get("/v1/items/p0/similar").json()
    anonymous = api.client.get("/v1/search", params={"q": "caliper"}).json()
    assert {ranked["variant"], searched["variant"]} == {"popular"}
    assert (similar["variant"], anonymous["variant"]) == ("control", "control")  # the default
    logged = exposures(log)
    assert [(e["surface"], e["request_id"]) for e in logged] == [
        ("recommendations", body["request_id"]),
        ("rank", ranked["request_id"]),
        ("search", searched["request_id"]),
    ]
    first = logged[0]
    assert (first["user_id"], first["experiment"], first["variant"]) == (user, "fusion-test", "popular")
    assert first["item_ids"] == [item["item_id"] for item in body["items"]]
    assert first["model_version"] == body["model_version"]
    assert first["endpoint_variant"] is None  # an in-process ranker has no production variants
    assert first["share"] == 0.5


def test_events_sent_back_with_the_request_id_convert_the_exposure(bundle_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    api = experiment_api(bundle_dir, log)
    for variant, user in USERS.items():
        body = api.client.get(f"/v1/recommendations/{user}", params={"k": 3}).json()
        if variant == "popular":
            shown = body["items"][1]["item_id"]
            event = {"user_id": user, "item_id": shown, "request_id": body["request_id"], "variant": variant}
            events = [{**event, "event_id": "e1", "type": "click", "position": 1}]
            events.append({**event, "event_id": "e2", "type": "cart", "position": 1})
            assert api.client.post("/v1/events", json={"events": events}).status_code == 200
    report = ab_report(log_records(log))
    rates = {v.name: {m: r.successes for m, r in v.rates.items()} for v in report.variants}
    assert rates == {
        "control": {"ctr": 0, "cart_rate": 0, "purchase_rate": 0},
        "popular": {"ctr": 1, "cart_rate": 1, "purchase_rate": 0},
    }
    assert report.unattributed_events == 0


def test_without_an_experiment_responses_name_no_variant_and_nothing_is_logged(
    bundle_dir: Path, tmp_path: Path
) -> None:
    api = make_api(bundle_dir, event_log=f"file://{tmp_path / 'log'}")
    assert api.client.get("/v1/recommendations/u1").json()["variant"] is None
    assert exposures(tmp_path / "log") == []


class FakeRuntime:
    """A sagemaker-runtime client answering every InvokeEndpoint from production variant ``blue``."""

    def invoke_endpoint(self, **call: Any) -> dict[str, Any]:
        instances = json.loads(call["Body"])["instances"]
        scores = [{"scores": [float(-i) for i, _ in enumerate(x["candidates"])]} for x in instances]
        body = json.dumps({"predictions": scores}).encode()
        return {
            "Body": io.BytesIO(body),
            "InvokedProductionVariant": "blue",
            "ContentType": call["ContentType"],
        }


def test_the_production_variant_of_a_sagemaker_ranker_is_in_the_exposure(
    bundle_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    settings = Settings(
        artifacts=str(bundle_dir), experiment=json.dumps(EXPERIMENT), event_log=f"file://{log}"
    )
    ranker = SageMakerRanker("shoprec-ranker", client=FakeRuntime(), timeout_s=5)
    state = DictStateStore()
    container = build_container(settings, state=state, cache=DictCache(), ranker=ranker)
    client = TestClient(create_app(container))
    user = USERS["control"]
    state.recent[user] = ["p0", "p1"]
    assert client.get(f"/v1/recommendations/{user}").status_code == 200
    assert client.get(f"/v1/recommendations/{user}").json()["cached"] is True
    logged = exposures(log)
    assert [e["endpoint_variant"] for e in logged] == ["blue", None]  # the cached list called no ranker
    ranker.close()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            {"name": "b", "fusion": {"kind": "stacking", "file": "missing.npz", "features": ["ranker"]}},
            "missing.npz",
        ),
        ({"name": "b", "artifacts": "/nowhere/bundle"}, "nowhere"),
    ],
)
def test_a_variant_that_cannot_be_built_fails_the_start(
    bundle_dir: Path, variant: dict[str, Any], message: str
) -> None:
    config = {"name": "e", "variants": [{"name": "a"}, variant]}
    with pytest.raises(ShopRecError, match=message):
        make_api(bundle_dir, experiment=json.dumps(config))


def test_the_adapter_reads_the_production_variant_from_invoke_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from shoprec.experiments import endpoint_variant_scope

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    body = json.dumps({"predictions": [{"scores": [0.5, 0.25]}]}).encode()
    with Stubber(client) as stub:
        # The stubber checks the response against the service model: the field name is botocore's.
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "InvokedProductionVariant": "green"},
        )
        ranker = SageMakerRanker("shoprec-ranker", client=client, timeout_s=5)
        with endpoint_variant_scope() as seen:
            assert ranker.score(["p0"], ["p1", "p2"], timeout_s=5) == [0.5, 0.25]
        ranker.close()
    assert seen == ["green"]
