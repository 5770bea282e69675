"""A failing Redis costs each request at most its short timeout, never degrades a list, and costs nothing
once its circuit breaker is open; the breaker closes again when Redis is back.

A real redis-server sits behind a :class:`FaultProxy`; the app is the real one (``create_app`` over
``build_container`` with ``SHOPREC_CACHE=redis://<proxy>``), ranking through the ranking stub over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.faults.measure import BUDGET_MS, Tally
from tests.faults.proxy import FaultProxy, Mode
from tests.faults.ranking_stub import RankingStub

from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.resilience import BreakerCache, CircuitBreaker
from shoprec.settings import Settings

USER = "u-cache"
REQUESTS = 8
FAULTS: tuple[Mode, ...] = ("refuse", "reset", "blackhole", "slow", "garbage")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def redis_app(
    bundle_dir: Path, tmp_path: Path, proxy: FaultProxy, stub: RankingStub, cache: Any = None, **extra: Any
) -> TestClient:
    """The app caching in Redis through ``proxy`` (or in ``cache``), after ``USER`` viewed two items."""
    settings = Settings(
        artifacts=str(bundle_dir),
        state=f"sqlite:///{tmp_path / 'state.db'}",
        cache=f"redis://127.0.0.1:{proxy.port}/0",
        ranker=stub.url,
        latency_budget_ms=BUDGET_MS,
        **extra,
    )
    client = TestClient(create_app(build_container(settings, cache=cache)))
    events = [
        {"event_id": f"e-{i}", "user_id": USER, "item_id": item, "type": "view"}
        for i, item in enumerate(["p0", "p2"])
    ]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    return client


def recommend(client: TestClient, k: int) -> dict[str, Any]:
    response = client.get(f"/v1/recommendations/{USER}?k={k}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_redis_costs_at_most_its_timeout_and_the_list_is_not_degraded(
    fault: Mode,
    fault_redis_proxy: FaultProxy,
    fault_ranking_stub: RankingStub,
    fault_bundle_dir: Path,
    tmp_path: Path,
) -> None:
    # A breaker that never opens: every request meets the fault, the worst case.
    client = redis_app(
        fault_bundle_dir, tmp_path, fault_redis_proxy, fault_ranking_stub, breaker_failures=1_000
    )
    assert recommend(client, 10)["cached"] is False
    assert recommend(client, 10)["cached"] is True  # Redis works through the proxy

    fault_redis_proxy.set_mode(fault)
    met = (fault_redis_proxy.accepted, fault_redis_proxy.received)
    tally = Tally(f"redis {fault}")
    for k in range(1, REQUESTS + 1):
        body = tally.timed(lambda k=k: recommend(client, k))
        assert body["degraded"] is False  # the cache is optional: the list is computed as usual
        assert body["cached"] is False
        assert len(body["items"]) == k
    print(tally.report())
    assert tally.within() == REQUESTS, tally.report()
    if fault != "refuse":  # Redis was asked (a connection accepted, or bytes sent): the fault was met
        assert (fault_redis_proxy.accepted, fault_redis_proxy.received) > met


def test_the_breaker_stops_calling_a_hanging_redis_after_the_threshold(
    fault_redis_proxy: FaultProxy, fault_ranking_stub: RankingStub, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    client = redis_app(
        fault_bundle_dir,
        tmp_path,
        fault_redis_proxy,
        fault_ranking_stub,
        breaker_failures=3,
        breaker_open_s=600,
    )
    fault_redis_proxy.set_mode("blackhole")
    paying = Tally("redis blackhole, breaker closed (threshold 3)")
    for k in (1, 2, 3):  # each request's first cache call (the generation) times out and it skips the
        paying.timed(lambda k=k: recommend(client, k))  # cache: three failures, the circuit opens
    ready = client.get("/v1/health/ready").json()
    assert ready["dependencies"]["cache"]["breaker"] == "open"

    received = fault_redis_proxy.received
    free = Tally("redis blackhole, breaker open")
    for k in range(4, 4 + REQUESTS):
        body = free.timed(lambda k=k: recommend(client, k))
        assert body["degraded"] is False
    print(paying.report())
    print(free.report())
    assert fault_redis_proxy.received == received  # not one byte sent to Redis while the circuit is open
    assert free.within(BUDGET_MS) == REQUESTS, free.report()


def test_an_open_breaker_probes_once_after_its_interval_and_closes_when_redis_is_back(
    fault_redis_proxy: FaultProxy, fault_ranking_stub: RankingStub, fault_bundle_dir: Path, tmp_path: Path
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("cache", failure_threshold=2, open_s=5.0, clock=clock)
    redis_cache = RedisCache(f"redis://127.0.0.1:{fault_redis_proxy.port}/0", socket_timeout_s=0.05)
    client = redis_app(
        fault_bundle_dir,
        tmp_path,
        fault_redis_proxy,
        fault_ranking_stub,
        cache=BreakerCache(redis_cache, breaker),
    )
    fault_redis_proxy.set_mode("refuse")
    recommend(client, 1)  # the generation's GET refused (the request then skips the cache): one failure
    assert breaker.state == "closed"
    recommend(client, 1)  # two
    assert breaker.state == "open"

    fault_redis_proxy.set_mode("pass")
    received = fault_redis_proxy.received
    assert recommend(client, 2)["cached"] is False
    assert recommend(client, 2)["cached"] is False  # still open: Redis is back but not asked yet
    assert fault_redis_proxy.received == received

    clock.advance(5.0)
    assert breaker.state == "half_open"
    assert recommend(client, 3)["cached"] is False  # the GET is the probe; it succeeds, the SET follows
    assert breaker.state == "closed"
    assert recommend(client, 3)["cached"] is True
    assert breaker.snapshot().times_opened == 1
