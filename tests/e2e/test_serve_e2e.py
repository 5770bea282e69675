"""``shoprec serve`` as a user runs it: a subprocess on a free port, called over HTTP, stopped at the end."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.processes import free_port, serve_command, stop

from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.artifacts import load_bundle

STARTUP_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Server:
    client: httpx.Client
    state_db: Path
    log: Path
    popular: list[str]

    def stored(self, user_id: str) -> list[str]:
        """What the server's sqlite file holds for ``user_id`` (read by a second connection)."""
        store = SqliteUserStateStore(self.state_db)
        try:
            return store.recent_items(user_id)
        finally:
            store.close()


@pytest.fixture(scope="module")
def server(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("serve")
    state_db = work / "state.db"
    log = work / "serve.log"
    port = free_port()
    args = [
        *serve_command(),
        "serve",
        "--artifacts",
        str(bundle_dir),
        "--port",
        str(port),
        "--state",
        f"sqlite:///{state_db}",
        "--cache",
        "memory://",
        "--ranker",
        "onnx",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        _wait_until_ready(client, proc, log)
        bundle = load_bundle(bundle_dir, verify=False)
        order = np.argsort(-bundle.popularity, kind="stable")
        yield Server(client, state_db, log, [bundle.item_ids[int(i)] for i in order[:20]])
    finally:
        client.close()
        stop(proc)


def _wait_until_ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"shoprec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.get("/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"shoprec serve did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)  # polling for readiness, not timing anything


def is_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if field is not None:
        assert field in [e["field"] for e in body["errors"]]
    return body


def ids(response: httpx.Response) -> list[str]:
    return [item["item_id"] for item in response.json()["items"]]


def test_the_printed_curl_commands_use_real_ids_and_work(server: Server) -> None:
    printed = server.log.read_text()
    assert "curl -s" in printed
    urls = re.findall(r"^curl -s '?(http://[^' ]+)'?\s*(?:#.*)?$", printed, flags=re.MULTILINE)
    assert any("/similar" in url for url in urls)
    for url in urls:
        assert server.client.get(url).status_code == 200, url


def test_health_names_the_backends(server: Server) -> None:
    body = server.client.get("/v1/health").json()
    assert body["backends"]["state"] == f"sqlite:///{server.state_db}"
    assert body["backends"]["cache"] == "memory://"
    assert body["model_version"].startswith("sha256:")


def test_events_change_the_next_recommendations(server: Server) -> None:
    user = "e2e-shopper"
    before = server.client.get(f"/v1/recommendations/{user}", params={"k": 10})
    assert before.status_code == 200
    assert before.json()["degraded"] is False
    seen = server.popular[:3]
    events = [
        {"event_id": f"{user}-{i}", "user_id": user, "item_id": it, "type": "view"}
        for i, it in enumerate(seen)
    ]
    posted = server.client.post("/v1/events", json={"events": events})
    assert posted.json()["applied"] == 3
    after = server.client.get(f"/v1/recommendations/{user}", params={"k": 10})
    assert ids(after) != ids(before)
    assert not set(seen) & set(ids(after))
    assert server.stored(user) == seen
    again = server.client.post("/v1/events", json={"events": events})
    assert (again.json()["applied"], again.json()["duplicates"]) == (0, 3)


def test_similar_search_and_rank(server: Server) -> None:
    item = server.popular[0]
    similar = server.client.get(f"/v1/items/{item}/similar", params={"k": 5})
    assert len(ids(similar)) == 5
    assert item not in ids(similar)
    search = server.client.get("/v1/search", params={"q": "glass", "k": 5})
    assert search.status_code == 200
    assert search.json()["facets"]["category"]
    given = server.popular[5:10]
    ranked = server.client.post("/v1/rank", json={"user_id": "e2e-ranker", "item_ids": given})
    assert sorted(ids(ranked)) == sorted(given)


def test_bad_inputs_are_problems_and_leave_the_state_unchanged(server: Server) -> None:
    user = "e2e-careful"
    first = [{"event_id": f"{user}-0", "user_id": user, "item_id": server.popular[4], "type": "click"}]
    server.client.post("/v1/events", json={"events": first})
    before = server.client.get(f"/v1/recommendations/{user}").json()

    unknown = [*first, {"event_id": f"{user}-1", "user_id": user, "item_id": "no-such-item", "type": "view"}]
    body = is_problem(server.client.post("/v1/events", json={"events": unknown}), 422, "events")
    assert body["errors"][0]["values"] == ["no-such-item"]
    is_problem(
        server.client.post("/v1/events", json={"events": [{**first[0], "type": "like"}]}),
        422,
        "events[0].type",
    )
    too_many = [{**first[0], "event_id": f"{user}-x{i}"} for i in range(101)]
    is_problem(server.client.post("/v1/events", json={"events": too_many}), 422, "events")
    huge = json.dumps({"events": first, "pad": "x" * 300_000})
    is_problem(
        server.client.post("/v1/events", content=huge, headers={"content-type": "application/json"}), 413
    )
    is_problem(server.client.get(f"/v1/recommendations/{user}", params={"k": 0}), 422, "k")
    is_problem(server.client.get("/v1/search", params={"q": "x" * 201}), 422, "q")
    is_problem(server.client.get("/v1/items/no-such-item/similar"), 404, "item_id")
    is_problem(
        server.client.post("/v1/rank", json={"user_id": user, "item_ids": ["no-such-item"]}), 422, "item_ids"
    )

    assert server.stored(user) == [server.popular[4]]
    after = server.client.get(f"/v1/recommendations/{user}").json()
    assert after["items"] == before["items"]


def test_deleting_a_user_forgets_them(server: Server) -> None:
    user = "e2e-leaver"
    event = {"event_id": f"{user}-0", "user_id": user, "item_id": server.popular[2], "type": "purchase"}
    server.client.post("/v1/events", json={"events": [event]})
    assert server.client.delete(f"/v1/users/{user}").status_code == 204
    assert server.stored(user) == []
    is_problem(server.client.delete(f"/v1/users/{user}"), 404, "user_id")
    # The event id is forgotten too, so the same event can be sent again after a deletion.
    assert server.client.post("/v1/events", json={"events": [event]}).json()["applied"] == 1


def test_request_ids_round_trip(server: Server) -> None:
    r = server.client.get("/v1/recommendations/anyone", headers={"x-request-id": "trace-e2e-1"})
    assert r.headers["x-request-id"] == "trace-e2e-1"
    assert r.json()["request_id"] == "trace-e2e-1"
    assert server.client.get("/openapi.json").json()["info"]["title"] == "shoprec"
