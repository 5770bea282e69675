"""Micro-batching of concurrent invocations: requests that arrive together share one onnxruntime call.

One worker thread owns the model. It takes the first waiting request, keeps collecting requests for up to
``max_wait_ms`` (or until ``max_batch_instances`` instances are gathered), scores all their instances in
one call and hands every request its own slice of the result. Requests are never split, so a batch holds
at least one whole request. While a batch is being scored the next one forms, so under load batches grow
by themselves and a lone request waits at most ``max_wait_ms`` extra.

The queue is bounded: a request that finds ``max_queue`` requests already waiting is refused at once
(:class:`BatcherOverloadedError`, a 503 from the app) instead of queueing into a timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

Instance = tuple[Sequence[str], Sequence[str]]
"""(history item ids, candidate item ids), as :class:`shoprec.adapters.local.onnx_ranker.LocalOnnxRanker`
scores them."""
ScoreMany = Callable[[Sequence[Instance]], list[list[float]]]


class BatcherOverloadedError(Exception):
    """The queue of waiting requests is full."""


class BatcherClosedError(Exception):
    """The batcher was closed; it scores nothing any more."""


@dataclass(frozen=True)
class BatchingConfig:
    """The batcher's knobs (documented with their trade-offs in ``docs/ranking-endpoint.md``)."""

    max_batch_instances: int = 256
    """Most instances per onnxruntime call (a single larger request still goes alone)."""
    max_wait_ms: float = 2.0
    """How long the first request of a batch waits for others; 0 batches only requests already queued."""
    max_queue: int = 1024
    """Requests allowed to wait; one more is refused with 503."""

    def __post_init__(self) -> None:
        if self.max_batch_instances < 1:
            raise ValueError(f"max_batch_instances must be >= 1, got {self.max_batch_instances}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be within 0..1000, got {self.max_wait_ms}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue}")


@dataclass
class _Pending:
    instances: Sequence[Instance]
    future: Future[list[list[float]]]


_STOP = object()


class MicroBatcher:
    """Scores requests with ``score_many`` on one worker thread, batching those that arrive together."""

    def __init__(self, score_many: ScoreMany, config: BatchingConfig | None = None) -> None:
        self.config = config or BatchingConfig()
        self._score_many = score_many
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.config.max_queue)
        self._closed = threading.Event()
        self._stats_lock = threading.Lock()
        self._requests = 0
        self._instances = 0
        self._batches = 0
        self._largest_batch = 0
        self._rejected = 0
        self._worker = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._worker.start()

    def submit(self, instances: Sequence[Instance]) -> Future[list[list[float]]]:
        """Queue one request; the future gets one score list per instance, or the scoring error."""
        if self._closed.is_set():
            raise BatcherClosedError("the batcher is closed")
        future: Future[list[list[float]]] = Future()
        try:
            self._queue.put_nowait(_Pending(instances, future))
        except queue.Full:
            with self._stats_lock:
                self._rejected += 1
            raise BatcherOverloadedError(
                f"{self.config.max_queue} requests are already waiting to be scored"
            ) from None
        return future

    def score(self, instances: Sequence[Instance], timeout_s: float | None = None) -> list[list[float]]:
        """:meth:`submit` and wait for the result (for callers on a thread of their own)."""
        return self.submit(instances).result(timeout=timeout_s)

    def stats(self) -> dict[str, int]:
        """Counters since start: requests, instances, batches (= onnxruntime calls), the largest batch in
        instances, requests refused because the queue was full, and requests waiting now."""
        with self._stats_lock:
            return {
                "requests": self._requests,
                "instances": self._instances,
                "batches": self._batches,
                "largest_batch_instances": self._largest_batch,
                "rejected": self._rejected,
                "queued": self._queue.qsize(),
            }

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker once the requests already queued are scored; later submits are refused."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_STOP)
        self._worker.join(timeout=timeout_s)

    # --- worker ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        carried: _Pending | None = None
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is _STOP:
                return
            batch, carried, stop = self._collect(first)
            self._execute(batch)
            if stop:
                return

    def _collect(self, first: _Pending) -> tuple[list[_Pending], _Pending | None, bool]:
        """``first`` plus what arrives before the deadline; returns the batch, a request that did not fit
        (it starts the next batch) and whether the stop marker was seen."""
        batch = [first]
        size = len(first.instances)
        deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
        while size < self.config.max_batch_instances:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, None, True
            if size + len(item.instances) > self.config.max_batch_instances:
                return batch, item, False
            batch.append(item)
            size += len(item.instances)
        return batch, None, False

    def _execute(self, batch: list[_Pending]) -> None:
        # A request whose caller went away (its future cancelled) is dropped before the model runs.
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        flat = [instance for pending in live for instance in pending.instances]
        try:
            scores = self._score_many(flat)
        except BaseException as exc:  # every waiting caller must hear of the failure, whatever it is
            for pending in live:
                pending.future.set_exception(exc)
        else:
            start = 0
            for pending in live:
                end = start + len(pending.instances)
                pending.future.set_result(scores[start:end])
                start = end
        with self._stats_lock:
            self._requests += len(live)
            self._instances += len(flat)
            self._batches += 1
            self._largest_batch = max(self._largest_batch, len(flat))
