"""The ``Ranker`` port on a SageMaker real-time endpoint running the ranking container."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.http_ranker import (
    CONTENT_TYPE,
    MAX_TIMEOUT_S,
    decode_scores,
    encode_request,
    score_in_chunks,
)
from shoprec.errors import BackendUnavailableError, RankerUnavailableError
from shoprec.experiments import record_endpoint_variant
from shoprec.ports import Instance

DEFAULT_TIMEOUT_S: Final = 0.15
"""The serving latency budget's default (``Settings.latency_budget_ms``)."""
DEFAULT_MAX_IN_FLIGHT: Final = 4
"""Calls that may run at once, abandoned late ones included (a Lambda environment serves one request at a
time, so three late calls can still be finishing while a fourth runs)."""


class SageMakerRanker:
    """Calls ``InvokeEndpoint`` on ``endpoint_name`` with the JSON contract of docs/ranking-endpoint.md.

    One client per ranker, built here through :func:`aws_client` with a read timeout of ``timeout_s``
    (the latency budget) and no retries: within a budget a retry would only turn a fallback into a late
    fallback. An injected ``client`` keeps its own settings.

    botocore's timeouts bound each socket read, not the call, so the call runs on a small pool of
    ``max_in_flight`` threads and the caller waits only until the deadline given by ``timeout_s`` of
    :meth:`score_many`. A late call is abandoned: it keeps its thread until botocore's read timeout (or the
    end of the answer) frees it. When every thread is still busy with late calls, a new call fails at
    once instead of queueing, so late calls cannot pile up. Errors, throttling, timeouts and a full pool
    all become :class:`RankerUnavailableError`; the caller falls back to recall scores.
    """

    def __init__(
        self,
        endpoint_name: str,
        client: Any = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.endpoint_name = endpoint_name
        if client is None:
            try:
                client = aws_client("sagemaker-runtime", timeout_s=timeout_s, max_attempts=1)
            except BotoCoreError as exc:  # e.g. no region configured
                raise BackendUnavailableError(f"{self.describe()}: cannot build the client: {exc}") from exc
        self._client = client
        self._clock = clock
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(
            max_workers=max_in_flight, thread_name_prefix=f"shoprec-sagemaker-{endpoint_name}"
        )

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        deadline = self._clock() + min(timeout_s, MAX_TIMEOUT_S)
        return score_in_chunks(instances, lambda part: self._invoke(part, deadline, timeout_s))

    def _invoke(self, instances: Sequence[Instance], deadline: float, timeout_s: float) -> list[list[float]]:
        left = deadline - self._clock()
        if left <= 0:
            raise RankerUnavailableError(f"{self.describe()}: the {timeout_s * 1000:.0f} ms deadline passed")
        if not self._slots.acquire(blocking=False):
            raise RankerUnavailableError(
                f"{self.describe()}: {self.max_in_flight} calls still in flight (late ones are abandoned, "
                "not cancelled); not calling"
            )
        body = encode_request(instances)
        try:
            future: Future[tuple[bytes, str | None]] = self._pool.submit(self._call, body)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        try:
            answer, production_variant = future.result(timeout=left)
        except FutureTimeout as exc:
            raise RankerUnavailableError(
                f"{self.describe()}: timeout: no complete answer within the "
                f"{timeout_s * 1000:.0f} ms deadline"
            ) from exc
        scores = decode_scores(answer, instances, source=self.describe())
        # Which production variant answered (the endpoint splits traffic by its variants' weights,
        # ``shoprec.deploy.rollout``), for the request's exposure record: set on the caller's thread.
        record_endpoint_variant(production_variant)
        return scores

    def _call(self, body: bytes) -> tuple[bytes, str | None]:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType=CONTENT_TYPE,
                Accept=CONTENT_TYPE,
                Body=body,
            )
            data: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RankerUnavailableError(f"{self.describe()}: {exc}") from exc
        variant = response.get("InvokedProductionVariant")
        return data, variant if isinstance(variant, str) else None

    def _release(self, _: Future[tuple[bytes, str | None]]) -> None:
        self._slots.release()

    def describe(self) -> str:
        return f"sagemaker://{self.endpoint_name}"

    def close(self) -> None:
        """Stop the call threads once their calls end (late calls are not waited for)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
