"""The shopper of the load test: searches, opens recommendations and similar items, and sends events.

One file drives shoprec and the naive baseline alike (``--host``). Users, items and queries come from the
JSON file named by ``SHOPREC_LOAD_FIXTURE`` (``run_load.py`` writes it from the dataset and catalogue):
``{"users": [...], "items": [...], "queries": [...]}``. ``SHOPREC_LOAD_MIX`` sets the routes' weights
(default ``recommendations=4,search=3,similar=2,events=1``; a weight of 0 leaves the route out).

    SHOPREC_LOAD_FIXTURE=fixture.json .venv/bin/locust -f bench/load/locustfile.py --headless \\
        -u 8 -r 8 -t 20s --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, between

FIXTURE = json.loads(Path(os.environ["SHOPREC_LOAD_FIXTURE"]).read_text())
USERS: list[str] = FIXTURE["users"]
ITEMS: list[str] = FIXTURE["items"]
QUERIES: list[str] = FIXTURE["queries"]
DEFAULT_MIX = "recommendations=4,search=3,similar=2,events=1"


def parse_mix(text: str) -> dict[str, int]:
    """``name=weight,...`` → weights; names must be the four routes, weights ≥ 0, at least one above 0."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in ("recommendations", "search", "similar", "events") or not weight.isdigit():
            raise ValueError(
                f"SHOPREC_LOAD_MIX: {part!r} is not <route>=<weight>, route one of "
                "recommendations, search, similar, events"
            )
        mix[name] = int(weight)
    if not any(mix.values()):
        raise ValueError(f"SHOPREC_LOAD_MIX: {text!r} gives no route a weight above 0")
    return mix


def recommendations(user: Any) -> None:
    """The user's recommendations."""
    user.client.get(f"/v1/recommendations/{user.user_id}?k=10", name="recommendations")


def search(user: Any) -> None:
    """A query typed from a popular item's title."""
    user.client.get("/v1/search", params={"q": random.choice(QUERIES), "k": 10}, name="search")


def similar(user: Any) -> None:
    """Items similar to a catalogue item."""
    user.client.get(f"/v1/items/{random.choice(ITEMS)}/similar?k=10", name="similar")


def events(user: Any) -> None:
    """One view, click or add-to-cart of a catalogue item, with a fresh event id."""
    event = {
        "event_id": uuid.uuid4().hex,
        "user_id": user.user_id,
        "item_id": random.choice(ITEMS),
        "type": random.choice(("view", "click", "cart")),
    }
    user.client.post("/v1/events", json={"events": [event]}, name="events")


_ROUTES = {"recommendations": recommendations, "search": search, "similar": similar, "events": events}
_TASKS = {
    _ROUTES[name]: weight
    for name, weight in parse_mix(os.environ.get("SHOPREC_LOAD_MIX", DEFAULT_MIX)).items()
    if weight > 0
}


class Shopper(HttpUser):
    """A dataset user browsing: by default a storefront's mix, reads far above writes."""

    wait_time = between(0.05, 0.2)
    # In the class body: locust turns the weights into its task list when the class is created.
    tasks = _TASKS

    def on_start(self) -> None:
        self.user_id = random.choice(USERS)
