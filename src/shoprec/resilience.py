"""Circuit breakers around the optional remote dependencies (the cache and a remote ranker).

A dependency that hangs costs its whole timeout on every request; one that is known to be down should
cost nothing. :class:`CircuitBreaker` counts consecutive failures and, past a threshold, *opens*: calls
are refused at once for ``open_s`` seconds. Then it lets **one** probe call through (*half-open*): a
success closes the circuit, a failure opens it for another ``open_s``.

:class:`BreakerCache` and :class:`BreakerRanker` put a breaker in front of a ``Cache`` / ``Ranker`` and
implement the same port. While the circuit is open they raise the port's domain error immediately
(``BackendUnavailableError`` / ``RankerUnavailableError``), which the callers already handle: the service
computes without the cache, the pipeline fuses the recall scores without the ranker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from shoprec.errors import BackendUnavailableError, RankerUnavailableError
from shoprec.ports import Cache, Instance, Ranker

log = logging.getLogger(__name__)

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]

DEFAULT_FAILURE_THRESHOLD: Final = 5
DEFAULT_OPEN_S: Final = 5.0


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state at one moment, for readiness reports and tests."""

    state: BreakerState
    consecutive_failures: int
    times_opened: int
    """How often the circuit opened since the breaker was built."""
    refused: int
    """Calls refused without reaching the dependency."""


class CircuitBreaker:
    """Closed → (``failure_threshold`` consecutive failures) → open → (``open_s`` later) → half-open.

    In half-open one call at a time is let through as a probe; its success closes the circuit, its
    failure opens it again. Thread-safe; time comes from ``clock`` (monotonic seconds), so tests move it
    by hand.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        open_s: float = DEFAULT_OPEN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if open_s <= 0:
            raise ValueError(f"open_s must be > 0, got {open_s}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # set while open or half-open
        self._probing = False
        self._times_opened = 0
        self._refused = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            return BreakerSnapshot(self._state(), self._failures, self._times_opened, self._refused)

    def allow(self) -> bool:
        """Whether a call may go ahead now. In half-open, ``True`` hands out the single probe slot: the
        caller must then report the outcome with :meth:`record_success` or :meth:`record_failure`."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            self._refused += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("circuit %s closed: the probe call succeeded", self.name)
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or (self._opened_at is None and self._failures >= self.failure_threshold):
                self._open()
            self._probing = False

    def call(self, fn: Callable[[], T], *, refused: Callable[[str], Exception]) -> T:
        """``fn()`` with its outcome recorded; while open, raises ``refused(message)`` without calling it.

        Any exception from ``fn`` counts as a failure (and propagates); the probe slot of half-open is
        released whatever happens.
        """
        if not self.allow():
            raise refused(f"circuit {self.name} is open after repeated failures; not called")
        ok = False
        try:
            result = fn()
            ok = True
            return result
        finally:
            if ok:
                self.record_success()
            else:
                self.record_failure()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.open_s:
            return "half_open"
        return "open"

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._times_opened += 1
        log.warning(
            "circuit %s opened after %d consecutive failure(s): calls refused for %.1f s",
            self.name,
            self._failures,
            self.open_s,
        )


class BreakerCache:
    """A ``Cache`` whose calls go through ``breaker``; refused calls raise ``BackendUnavailableError``."""

    def __init__(self, cache: Cache, breaker: CircuitBreaker) -> None:
        self.inner = cache
        self.breaker = breaker

    def get(self, key: str) -> bytes | None:
        return self.breaker.call(lambda: self.inner.get(key), refused=self._refused)

    def set(self, key: str, value: bytes, ttl_seconds: float, *, tags: Sequence[str] = ()) -> None:
        self.breaker.call(lambda: self.inner.set(key, value, ttl_seconds, tags=tags), refused=self._refused)

    def generation(self, tag: str) -> str:
        return self.breaker.call(lambda: self.inner.generation(tag), refused=self._refused)

    def invalidate_tag(self, tag: str) -> int:
        return self.breaker.call(lambda: self.inner.invalidate_tag(tag), refused=self._refused)

    def describe(self) -> str:
        return self.inner.describe()

    def _refused(self, message: str) -> Exception:
        return BackendUnavailableError(f"{self.inner.describe()}: {message}")


class BreakerRanker:
    """A ``Ranker`` whose calls go through ``breaker``; refused calls raise ``RankerUnavailableError``."""

    def __init__(self, ranker: Ranker, breaker: CircuitBreaker) -> None:
        self.inner = ranker
        self.breaker = breaker

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        return self.breaker.call(
            lambda: self.inner.score_many(instances, timeout_s=timeout_s), refused=self._refused
        )

    def describe(self) -> str:
        return self.inner.describe()

    def _refused(self, message: str) -> Exception:
        return RankerUnavailableError(f"{self.inner.describe()}: {message}")


def breaker_of(port: object) -> CircuitBreaker | None:
    """The breaker in front of ``port`` (a :class:`BreakerCache` or :class:`BreakerRanker`), else ``None``."""
    if isinstance(port, BreakerCache | BreakerRanker):
        return port.breaker
    return None
