"""CircuitBreaker: closed → open after consecutive failures → one probe after the interval → closed or
open again; and the Cache / Ranker wrappers that refuse calls with the ports' domain errors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pytest
from tests.unit.fakes import DictCache, FakeRanker

from shoprec.errors import BackendUnavailableError, RankerUnavailableError
from shoprec.ports import Cache, Ranker
from shoprec.resilience import BreakerCache, BreakerRanker, CircuitBreaker, breaker_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class DownError(Exception):
    pass


def failing() -> None:
    raise DownError("dependency down")


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(DownError):
            breaker.call(failing, refused=BackendUnavailableError)


def test_it_opens_after_the_threshold_of_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("dep", failure_threshold=3, open_s=5, clock=Clock())
    fail(breaker, 2)
    assert breaker.call(lambda: "ok", refused=BackendUnavailableError) == "ok"  # a success resets the count
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert breaker.state == "open"
    assert breaker.snapshot().times_opened == 1


def test_while_open_calls_are_refused_without_calling() -> None:
    breaker = CircuitBreaker("dep", failure_threshold=1, open_s=5, clock=Clock())
    fail(breaker, 1)
    calls: list[int] = []
    with pytest.raises(RankerUnavailableError, match="circuit dep is open"):
        breaker.call(lambda: calls.append(1), refused=RankerUnavailableError)
    assert calls == []
    assert breaker.snapshot().refused == 1


def test_after_the_interval_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, open_s=5, clock=clock)
    fail(breaker, 1)
    clock.now = 4.9
    assert breaker.state == "open"
    clock.now = 5.0
    assert breaker.state == "half_open"
    assert breaker.call(lambda: 42, refused=BackendUnavailableError) == 42
    assert breaker.state == "closed"
    assert breaker.snapshot().consecutive_failures == 0


def test_a_failed_probe_opens_the_circuit_for_another_interval() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=3, open_s=5, clock=clock)
    fail(breaker, 3)
    clock.now = 5.0
    fail(breaker, 1)  # the probe: one failure is enough in half-open
    assert breaker.state == "open"
    clock.now = 9.9
    assert breaker.state == "open"
    clock.now = 10.0
    assert breaker.state == "half_open"
    assert breaker.snapshot().times_opened == 2


def test_in_half_open_only_one_probe_is_in_flight_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, open_s=5, clock=clock)
    fail(breaker, 1)
    clock.now = 5.0
    started, release = threading.Event(), threading.Event()

    def slow_probe() -> str:
        started.set()
        release.wait(5)
        return "probe"

    results: list[str] = []
    prober = threading.Thread(target=lambda: results.append(breaker.call(slow_probe, refused=DownError)))
    prober.start()
    assert started.wait(5)
    refused = 0
    for _ in range(20):
        try:
            breaker.call(lambda: "not a probe", refused=DownError)
        except DownError:
            refused += 1
    release.set()
    prober.join(5)
    assert (refused, results, breaker.state) == (20, ["probe"], "closed")


def test_concurrent_failures_open_the_circuit_once() -> None:
    breaker = CircuitBreaker("dep", failure_threshold=10, open_s=5, clock=Clock())
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            with contextlib.suppress(DownError, BackendUnavailableError):
                breaker.call(failing, refused=BackendUnavailableError)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.times_opened) == ("open", 1)
    assert snapshot.consecutive_failures + snapshot.refused == 400  # every call either failed or was refused


def test_an_exception_that_is_not_an_error_still_releases_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, open_s=5, clock=clock)
    fail(breaker, 1)
    clock.now = 5.0

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted, refused=DownError)
    clock.now = 10.0
    assert breaker.call(lambda: "next probe", refused=DownError) == "next probe"


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"failure_threshold": 0}, "failure_threshold"), ({"open_s": 0}, "open_s")]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker("dep", **kwargs)  # type: ignore[arg-type]


def test_the_cache_wrapper_is_a_cache_that_refuses_with_backend_unavailable() -> None:
    inner = DictCache()
    cache = BreakerCache(inner, CircuitBreaker("cache", failure_threshold=2, open_s=5, clock=Clock()))
    assert isinstance(cache, Cache)
    cache.set("k", b"v", 60, tags=("t",))
    assert cache.get("k") == b"v"
    assert cache.invalidate_tag("t") == 1
    assert cache.describe() == inner.describe()
    inner.fail = True
    calls: list[Callable[[], object]] = [lambda: cache.get("k"), lambda: cache.set("k", b"v", 60)]
    for call in calls:
        with pytest.raises(BackendUnavailableError, match="cache down"):
            call()
    gets = inner.gets
    with pytest.raises(BackendUnavailableError, match="circuit cache is open"):
        cache.get("k")
    assert inner.gets == gets
    assert breaker_of(cache) is cache.breaker


def test_the_ranker_wrapper_is_a_ranker_that_refuses_with_ranker_unavailable() -> None:
    inner = FakeRanker()
    ranker = BreakerRanker(inner, CircuitBreaker("ranker", failure_threshold=1, open_s=5, clock=Clock()))
    assert isinstance(ranker, Ranker)
    assert ranker.score(["p0"], ["p1", "p2"], timeout_s=1) == [2.0, 1.0]
    assert ranker.describe() == "fake://ranker"
    inner.fail = True
    with pytest.raises(RankerUnavailableError, match="fake"):
        ranker.score(["p0"], ["p1"], timeout_s=1)
    inner.fail = False
    with pytest.raises(RankerUnavailableError, match="circuit ranker is open"):
        ranker.score_many([(["p0"], ["p1"])], timeout_s=1)
    assert len(inner.calls) == 2
    assert breaker_of(inner) is None
