"""An A/B experiment through the HTTP API on the real Scientific catalogue, with local settings (sqlite state,
the event log beside it): two API processes assign every user the same variant, each variant serves its own
pipeline, and ``shoprec ab report`` reads the exposures and the events sent back from the local log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shoprec.api.app import create_app
from shoprec.cli import app as cli
from shoprec.container import build_container
from shoprec.experiments import Assigner, parse_experiment
from shoprec.settings import Settings

EXPERIMENT = json.dumps(
    {
        "name": "fusion-vs-itemcf",
        "salt": "2026-12",
        "variants": [
            {"name": "control", "weight": 1},
            {
                "name": "itemcf-heavy",
                "weight": 1,
                "fusion": {"kind": "weighted", "weights": {"itemcf": 1.0, "popularity": 0.1}},
                "recall_weights": {"itemcf": 2.0},
            },
        ],
    }
)
USERS = [str(u) for u in range(40, 100)]


@pytest.fixture
def settings(bundle_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        artifacts=str(bundle_dir), state=f"sqlite:///{tmp_path / 'state.db'}", experiment=EXPERIMENT
    )


def test_sticky_variants_their_pipelines_and_the_report_from_the_local_log(
    settings: Settings, scientific_dir: Path, tmp_path: Path
) -> None:
    first = TestClient(create_app(build_container(settings)))
    second = TestClient(create_app(build_container(settings)))
    histories = json.loads((scientific_dir / "interactions.json").read_text())
    events = [
        {"event_id": f"h-{user}-{n}", "user_id": user, "item_id": str(item), "type": "view"}
        for user in USERS
        for n, item in enumerate(histories[user][-5:])
    ]
    for start in range(0, len(events), 100):
        assert first.post("/v1/events", json={"events": events[start : start + 100]}).status_code == 200

    assign = Assigner(parse_experiment(EXPERIMENT))
    served: dict[str, dict[str, Any]] = {}
    for user in USERS:
        bodies = [
            client.get(f"/v1/recommendations/{user}", params={"k": 5}).json() for client in (first, second)
        ]
        assert bodies[0]["variant"] == bodies[1]["variant"] == assign.variant_of(user)
        served[user] = bodies[0]
    counts = {name: sum(assign.variant_of(u) == name for u in USERS) for name in ("control", "itemcf-heavy")}
    assert min(counts.values()) >= 15  # both variants get a fair share of 60 users

    # The same history gets another list under the other variant's pipeline.
    probe = {"event_id": "p", "item_id": str(histories["42"][-1]), "type": "view"}
    lists = {}
    for name in counts:
        user = next(f"probe-{i}" for i in range(100) if assign.variant_of(f"probe-{i}") == name)
        assert first.post("/v1/events", json={"events": [{**probe, "user_id": user}]}).status_code == 200
        body = first.get(f"/v1/recommendations/{user}", params={"k": 10}).json()
        assert body["variant"] == name
        lists[name] = [item["item_id"] for item in body["items"]]
    assert lists["control"] != lists["itemcf-heavy"]

    # Every third user clicks the second item shown, sending the serving context back.
    clicks = [
        {
            "event_id": f"c-{user}",
            "user_id": user,
            "item_id": body["items"][1]["item_id"],
            "type": "click",
            "request_id": body["request_id"],
            "variant": body["variant"],
            "position": 1,
        }
        for n, (user, body) in enumerate(served.items())
        if n % 3 == 0
    ]
    assert first.post("/v1/events", json={"events": clicks}).status_code == 200

    log = tmp_path / "state-events"  # the default event log beside the sqlite state file
    result = CliRunner().invoke(cli, ["ab", "report", "--events", str(log), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["experiment"] == "fusion-vs-itemcf"
    by_name = {v["name"]: v for v in report["variants"]}
    for name, n in counts.items():
        # Two processes served each user once, and each probe user once.
        assert by_name[name]["exposures"] == 2 * n + 1
        clicked = sum(1 for c in clicks if c["variant"] == name)
        assert by_name[name]["rates"]["ctr"]["successes"] == clicked
        low, high = by_name[name]["rates"]["ctr"]["interval"]
        assert low <= clicked / (2 * n + 1) <= high
    assert report["unattributed_events"] == len(events) + 2  # the history views and probes answer no list
    assert any("exposures, fewer than" in w for w in report["warnings"])  # 60 users are far too few
