"""The latency budget is a deadline for the whole ranker call, over HTTP and SageMaker alike, and one
SageMaker client serves every call.

Each request goes through the real app (``create_app`` over ``build_container``, SQLite state, the
memory cache) to a ranker behind a :class:`FaultProxy`: the ranking stub answers when the proxy passes,
and the proxy hangs, drips, resets, refuses or answers garbage. The promise under every fault: ``200``,
``degraded: true`` (the recall scores were fused), and an answer within the budget plus a margin.
"""

from __future__ import annotations

import threading
from pathlib import Path

import botocore.session
import pytest
from fastapi.testclient import TestClient
from tests.faults.measure import BUDGET_MS, Tally
from tests.faults.proxy import FaultProxy, Mode
from tests.faults.ranking_stub import RankingStub

from shoprec.adapters.aws.sagemaker_ranker import SageMakerRanker
from shoprec.adapters.http_ranker import HttpRanker
from shoprec.api.app import create_app
from shoprec.container import build_container
from shoprec.errors import RankerUnavailableError
from shoprec.settings import Settings

USER = "u-fault"
REQUESTS = 8
ENDPOINT = "shoprec-ranker"
NOT_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\nnot json!"

FAULTS: dict[str, tuple[Mode, bytes | None]] = {
    "hang": ("blackhole", None),
    "drip": ("drip", None),  # one byte every 100 ms
    "reset": ("reset", None),
    "refuse": ("refuse", None),
    "garbage bytes": ("garbage", None),
    "garbage json": ("garbage", NOT_JSON),
}


@pytest.fixture(params=["http", "sagemaker"])
def ranker_dsn(
    request: pytest.FixtureRequest,
    fault_ranker_proxy: FaultProxy,
    fault_aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """The ranker setting of each adapter, reaching the stub through the proxy."""
    if request.param == "http":
        return fault_ranker_proxy.url()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fault_ranker_proxy.url())
    return f"sagemaker://{ENDPOINT}"


def app_with_history(bundle_dir: Path, tmp_path: Path, ranker: str) -> TestClient:
    """The app for ``ranker`` with a 150 ms budget and a breaker that never opens (every request meets
    the fault), after ``USER`` viewed three items (so the ranker is asked)."""
    settings = Settings(
        artifacts=str(bundle_dir),
        state=f"sqlite:///{tmp_path / 'state.db'}",
        cache="memory://",
        ranker=ranker,
        latency_budget_ms=BUDGET_MS,
        breaker_failures=1_000,
    )
    client = TestClient(create_app(build_container(settings)))
    events = [
        {"event_id": f"e-{i}", "user_id": USER, "item_id": item, "type": "view"}
        for i, item in enumerate(["p0", "p2", "p5"])
    ]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    # The first call of a process pays for lazy set-up (botocore loads its endpoint rules, opens its pool).
    assert client.get(f"/v1/recommendations/{USER}?k=20").status_code == 200
    return client


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_ranker_costs_at_most_the_budget_and_the_list_is_degraded(
    fault: str,
    ranker_dsn: str,
    fault_ranker_proxy: FaultProxy,
    fault_ranking_stub: RankingStub,
    fault_bundle_dir: Path,
    tmp_path: Path,
) -> None:
    client = app_with_history(fault_bundle_dir, tmp_path, ranker_dsn)
    scored = fault_ranking_stub.scored
    healthy = client.get(f"/v1/recommendations/{USER}?k=10")
    assert healthy.status_code == 200
    assert healthy.json()["degraded"] is False  # the stub answered through the proxy
    assert fault_ranking_stub.scored == scored + 1

    mode, garbage = FAULTS[fault]
    if garbage is not None:
        fault_ranker_proxy.garbage = garbage
    fault_ranker_proxy.set_mode(mode)
    met = (fault_ranker_proxy.accepted, fault_ranker_proxy.received)
    tally = Tally(f"ranker={ranker_dsn.split(':')[0]} {fault}")
    for k in range(1, REQUESTS + 1):  # a new k each time: a new cache key, so nothing is served cached
        response = tally.timed(lambda k=k: client.get(f"/v1/recommendations/{USER}?k={k}"))
        assert response.status_code == 200
        body = response.json()
        assert body["degraded"] is True
        assert body["cached"] is False
        assert len(body["items"]) == k
    print(tally.report())
    assert tally.within() == REQUESTS, tally.report()
    if mode != "refuse":  # the ranker was asked (a connection accepted, or bytes sent): the fault was met
        assert (fault_ranker_proxy.accepted, fault_ranker_proxy.received) > met


def test_one_sagemaker_client_serves_300_calls_with_as_many_remaining_budgets(
    fault_ranking_stub: RankingStub, fault_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fault_ranking_stub.url)
    built: list[str] = []
    create_client = botocore.session.Session.create_client

    def counting(
        self: botocore.session.Session, service_name: str, *args: object, **kwargs: object
    ) -> object:
        built.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    # A read timeout of 1 s: this test counts clients, it does not time the stub on a busy machine.
    ranker = SageMakerRanker(ENDPOINT, timeout_s=1.0)
    assert built in ([], ["sagemaker-runtime"])  # built here, or an equal one reused from aws_client's cache
    built.clear()
    budgets = [1.0 - 0.002 * i for i in range(300)]  # 300 distinct remaining budgets, 1.0 s down to 0.4 s
    answers = [ranker.score(["p0"], ["p1", "p2"], timeout_s=budget) for budget in budgets]
    assert answers == [[2.0, 1.0]] * 300
    assert built == []


def test_late_sagemaker_calls_are_abandoned_without_piling_up_threads(
    fault_ranker_proxy: FaultProxy, fault_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fault_ranker_proxy.url())
    ranker = SageMakerRanker("shoprec-dripping", timeout_s=BUDGET_MS / 1000, max_in_flight=3)
    fault_ranker_proxy.set_mode("drip")  # each read gets a byte within the read timeout: botocore never stops
    tally = Tally("ranker=sagemaker drip, 12 calls in a row, 3 threads")
    for _ in range(12):
        with pytest.raises(RankerUnavailableError, match=r"deadline|in flight"):
            tally.timed(lambda: ranker.score(["p0"], ["p1"], timeout_s=BUDGET_MS / 1000))
    threads = [t for t in threading.enumerate() if t.name.startswith("shoprec-sagemaker-shoprec-dripping")]
    print(tally.report(), f"threads={len(threads)}")
    assert tally.within() == 12, tally.report()
    assert 1 <= len(threads) <= 3


def test_a_dripping_http_ranker_is_cut_at_the_deadline_not_after_the_answer(
    fault_ranker_proxy: FaultProxy,
) -> None:
    fault_ranker_proxy.set_mode("drip")
    ranker = HttpRanker(fault_ranker_proxy.url())
    tally = Tally("ranker=http drip, direct calls")
    for _ in range(3):
        with pytest.raises(RankerUnavailableError, match="timed out"):
            tally.timed(lambda: ranker.score(["p0"], ["p1"], timeout_s=BUDGET_MS / 1000))
    print(tally.report())
    # The answer (about 200 bytes, one every 100 ms) would take 20 s; the call ends at the deadline.
    assert max(tally.latencies_ms) < BUDGET_MS + 50, tally.report()
