"""The learning loop end to end on the real Scientific bundle with local settings (sqlite state, the event
log beside it): events in through the API → the log → live co-occurrence in similar items → ``shoprec
retrain`` on the log → the gate's decision → the new version serves what the log taught it; and deleting a
user takes their events out of the log. Time is the container's injected clock, never a sleep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.integration.test_online_updates_api import ids, unrelated_pair
from tests.unit.fakes import FakeClock
from typer.testing import CliRunner

from shoprec.api.app import create_app
from shoprec.artifacts import Bundle, load_bundle
from shoprec.cli import app
from shoprec.container import build_container
from shoprec.settings import Settings

pytest.importorskip("torch")

USERS = 16
BEFORE = "2026-11-01T10:0{}:00+00:00"  # the teachers' a → b → c → d and the learners' a → b
AFTER = "2026-11-20T10:00:00+00:00"  # the learners' c: the held-out window
CUT = "2026-11-15T00:00:00+00:00"
TINY = ["--no-text", "--hidden", "8", "--max-len", "20", "--max-epochs", "1", "--patience", "1"]
TINY += ["--threads", "1"]


def third_item(bundle: Bundle, a: str, b: str) -> str:
    """An item the bundle relates to neither ``a`` nor ``b`` (nor they to it)."""
    index = {item: i for i, item in enumerate(bundle.item_ids)}
    ia, ib = index[a], index[b]
    neighbours = bundle.itemcf_indices
    for c in np.argsort(bundle.popularity, kind="stable").tolist():
        if c in (ia, ib) or not (neighbours[c] >= 0).any():
            continue
        if c not in neighbours[ia] and c not in neighbours[ib] and not {ia, ib} & set(neighbours[c].tolist()):
            return bundle.item_ids[c]
    raise AssertionError("no third unrelated item")


def events(prefix: str, items: list[tuple[str, str]], users: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{u}-{n}",
            "user_id": f"{prefix}-{u}",
            "item_id": item,
            "type": "view",
            "timestamp": at,
        }
        for u in range(users)
        for n, (item, at) in enumerate(items)
    ]


def logged_users(log_dir: Path) -> set[str]:
    lines = [line for f in sorted(log_dir.rglob("*.jsonl")) for line in f.read_text().splitlines() if line]
    return {json.loads(line)["user_id"] for line in lines}


@pytest.mark.train
@pytest.mark.slow
def test_events_feed_similar_items_the_retrain_and_the_next_version(
    bundle_dir: Path, bundle: Bundle, scientific_dir: Path, tmp_path: Path
) -> None:
    clock = FakeClock(1_800_000_000.0)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    served = TestClient(
        create_app(build_container(Settings(artifacts=str(bundle_dir), state=state), stats_clock=clock))
    )
    a, b = unrelated_pair(bundle)
    c = third_item(bundle, a, b)
    assert b not in ids(served.get(f"/v1/items/{a}/similar", params={"k": 10}))

    # Teachers walk a → b → c → d before the cut (a bundle's models never see a user's last item, the
    # test target of its evaluation: d keeps b → c in); learners a → b before it and c in the window.
    d = bundle.item_ids[int(np.argmax(bundle.popularity))]
    posted = events("teacher", [(x, BEFORE.format(n)) for n, x in enumerate((a, b, c, d))], USERS)
    posted += events("learner", [(a, BEFORE.format(0)), (b, BEFORE.format(1)), (c, AFTER)], USERS)
    for batch in (posted[: USERS * 4], posted[USERS * 4 :]):  # within a request's limit of events
        assert served.post("/v1/events", json={"events": batch}).json()["applied"] == len(batch)
    log_dir = tmp_path / "state-events"
    assert logged_users(log_dir) == {f"{who}-{u}" for who in ("teacher", "learner") for u in range(USERS)}

    # Between retrains the live co-occurrence counts already relate a and b.
    clock.advance(Settings().online_refresh_s)
    assert b in ids(served.get(f"/v1/items/{a}/similar", params={"k": 10}))

    out = tmp_path / "new"
    args = ["retrain", "--events", str(log_dir), "--artifacts", str(bundle_dir), "--out", str(out)]
    args += ["--dataset", str(scientific_dir), "--cut", CUT, "--min-users", str(USERS), "--json", *TINY]
    result = CliRunner().invoke(app, args)
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert report["decision"]["passed"] is True
    assert report["window"]["window_users"] == USERS
    # The served bundle never saw b → c; the new one learnt it from the log before the cut.
    assert report["new_metrics"]["HR@10"] > report["served_metrics"]["HR@10"]

    new_version = load_bundle(out).model_version
    nxt = TestClient(
        create_app(build_container(Settings(artifacts=str(out), state=state), stats_clock=clock))
    )
    listed = nxt.get("/v1/recommendations/learner-0", params={"k": 10}).json()
    assert listed["model_version"] == new_version != load_bundle(bundle_dir).model_version
    # With no live counts at all (a fresh state), the new bundle's own item-CF relates a and b.
    fresh = Settings(artifacts=str(out), state=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert b in ids(TestClient(create_app(build_container(fresh))).get(f"/v1/items/{a}/similar"))

    assert nxt.delete("/v1/users/learner-0").status_code == 204
    assert "learner-0" not in logged_users(log_dir)
    assert "learner-1" in logged_users(log_dir)
