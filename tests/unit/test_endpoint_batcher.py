"""The endpoint's micro-batcher: queued requests share one model call, each gets its own slice back."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from shoprec.endpoint.batcher import (
    BatcherClosedError,
    BatcherOverloadedError,
    BatchingConfig,
    Instance,
    MicroBatcher,
)


class GatedScorer:
    """Scores each candidate as ``len(history) * 1000 + position``; blocks each call until released."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # instances per call
        self.entered = threading.Semaphore(0)
        self._gate = threading.Event()
        self.fail = False

    def release(self) -> None:
        self._gate.set()

    def __call__(self, instances: Sequence[Instance]) -> list[list[float]]:
        self.calls.append(len(instances))
        self.entered.release()
        self._gate.wait(timeout=10)
        if self.fail:
            raise RuntimeError("model exploded")
        return [[len(h) * 1000.0 + j for j in range(len(c))] for h, c in instances]


def request(history_len: int, n_candidates: int = 2) -> list[Instance]:
    return [([f"h{i}" for i in range(history_len)], [f"c{j}" for j in range(n_candidates)])]


@pytest.fixture
def scorer() -> GatedScorer:
    return GatedScorer()


@pytest.fixture
def batcher(scorer: GatedScorer) -> Iterator[MicroBatcher]:
    b = MicroBatcher(scorer, BatchingConfig(max_batch_instances=8, max_wait_ms=0, max_queue=16))
    yield b
    scorer.release()
    b.close()


def occupy_worker(batcher: MicroBatcher, scorer: GatedScorer) -> None:
    """Submit a request and wait until the worker is inside the model call with it."""
    batcher.submit(request(0))
    assert scorer.entered.acquire(timeout=10)


def test_requests_queued_while_the_model_is_busy_are_scored_in_one_call(
    batcher: MicroBatcher, scorer: GatedScorer
) -> None:
    occupy_worker(batcher, scorer)
    futures = [batcher.submit(request(n, n_candidates=n + 1)) for n in range(1, 6)]
    scorer.release()
    results = [f.result(timeout=10) for f in futures]
    assert scorer.calls == [1, 5]
    for n, result in enumerate(results, start=1):
        assert result == [[n * 1000.0 + j for j in range(n + 1)]]
    assert batcher.stats() | {"queued": 0} == {
        "requests": 6,
        "instances": 6,
        "batches": 2,
        "largest_batch_instances": 5,
        "rejected": 0,
        "queued": 0,
    }


def test_a_batch_never_exceeds_max_instances_and_never_splits_a_request(
    batcher: MicroBatcher, scorer: GatedScorer
) -> None:
    occupy_worker(batcher, scorer)
    three = request(3) * 3
    futures = [batcher.submit(three) for _ in range(4)]  # 12 instances, batches of at most 8
    scorer.release()
    for f in futures:
        assert len(f.result(timeout=10)) == 3
    assert scorer.calls == [1, 6, 6]


def test_a_request_larger_than_the_batch_limit_goes_alone(batcher: MicroBatcher, scorer: GatedScorer) -> None:
    scorer.release()
    assert len(batcher.score(request(1) * 20, timeout_s=10)) == 20
    assert scorer.calls == [20]


def test_a_model_error_reaches_every_request_of_the_batch(batcher: MicroBatcher, scorer: GatedScorer) -> None:
    occupy_worker(batcher, scorer)
    futures = [batcher.submit(request(n)) for n in range(3)]
    scorer.fail = True
    scorer.release()
    for f in futures:
        with pytest.raises(RuntimeError, match="model exploded"):
            f.result(timeout=10)


def test_a_full_queue_refuses_new_requests_at_once(scorer: GatedScorer) -> None:
    b = MicroBatcher(scorer, BatchingConfig(max_wait_ms=0, max_queue=2))
    try:
        occupy_worker(b, scorer)
        waiting = [b.submit(request(1)), b.submit(request(2))]
        with pytest.raises(BatcherOverloadedError, match="2 requests"):
            b.submit(request(3))
        assert b.stats()["rejected"] == 1
        scorer.release()
        assert [len(f.result(timeout=10)) for f in waiting] == [1, 1]
    finally:
        scorer.release()
        b.close()


def test_a_cancelled_request_is_not_scored(batcher: MicroBatcher, scorer: GatedScorer) -> None:
    occupy_worker(batcher, scorer)
    gone = batcher.submit(request(7))
    kept = batcher.submit(request(2))
    assert gone.cancel()
    scorer.release()
    assert kept.result(timeout=10) == [[2000.0, 2001.0]]
    assert scorer.calls == [1, 1]


def test_a_closed_batcher_refuses_work(scorer: GatedScorer) -> None:
    scorer.release()
    b = MicroBatcher(scorer)
    b.close()
    with pytest.raises(BatcherClosedError):
        b.submit(request(1))


@pytest.mark.parametrize(
    "kwargs", [{"max_batch_instances": 0}, {"max_wait_ms": -1}, {"max_wait_ms": 5000}, {"max_queue": 0}]
)
def test_nonsensical_knobs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BatchingConfig(**kwargs)  # type: ignore[arg-type]
