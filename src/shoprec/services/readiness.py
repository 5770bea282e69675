"""Readiness: whether each dependency answers now, how fast, and whether the service can serve at all.

Liveness (``GET /v1/health``) only says the process runs and which bundle it serves. Readiness probes
every dependency at once, each with a short timeout: the state store and the artifacts are *required*
(without them nothing personal can be served), the cache and the ranker *optional* (the service computes
without the cache and fuses recall scores without the ranker, answering ``degraded``).

A probe goes through the same adapter, and so the same circuit breaker, as the requests: while a breaker
is open the probe is refused at once and the dependency is reported ``down``; in half-open the probe may
be the call that closes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Final, Literal

from shoprec.ports import Cache, Ranker, UserStateStore
from shoprec.resilience import BreakerState, CircuitBreaker, breaker_of

DependencyState = Literal["ok", "degraded", "down"]
ReadinessStatus = Literal["ready", "degraded", "unavailable"]

PROBE_USER: Final = "shoprec:readiness-probe"
"""The user id the state-store probe reads (nobody has it, so it reads nothing)."""
PROBE_CACHE_KEY: Final = "health:readiness-probe"
_MAX_DETAIL_CHARS: Final = 300


@dataclass(frozen=True)
class DependencyReport:
    """One dependency: ``ok``, ``degraded`` (answered, but in more than half of its timeout: little
    headroom left) or ``down`` (failed, no answer in time, or its circuit is open)."""

    name: str
    required: bool
    state: DependencyState
    latency_ms: float | None
    """How long the probe took; ``None`` when it did not answer in time."""
    breaker: BreakerState | None
    """The state of the dependency's circuit breaker after the probe; ``None`` when it has none."""
    detail: str


@dataclass(frozen=True)
class ReadinessReport:
    dependencies: tuple[DependencyReport, ...]

    @property
    def ready(self) -> bool:
        """No required dependency is down."""
        return not any(d.required and d.state == "down" for d in self.dependencies)

    @property
    def degraded(self) -> bool:
        return any(d.state != "ok" for d in self.dependencies)

    @property
    def status(self) -> ReadinessStatus:
        if not self.ready:
            return "unavailable"
        return "degraded" if self.degraded else "ready"


@dataclass(frozen=True)
class _Probe:
    name: str
    required: bool
    check: Callable[[], object]
    slow_after_s: float
    breaker: CircuitBreaker | None


def check_readiness(
    *,
    artifacts: str,
    state: UserStateStore,
    cache: Cache,
    ranker: Ranker,
    probe_item: str,
    cache_timeout_s: float,
    ranker_timeout_s: float,
    timeout_s: float,
) -> ReadinessReport:
    """Probe the state store, the cache and the ranker at once and wait at most ``timeout_s``.

    ``artifacts`` describes the loaded bundle (it is in memory, so it is ``ok``); the ranker scores
    ``probe_item`` for an empty history within ``ranker_timeout_s``.
    """
    probes = [
        _Probe("state", True, lambda: state.recent_items(PROBE_USER), timeout_s / 2, breaker_of(state)),
        _Probe("cache", False, lambda: cache.get(PROBE_CACHE_KEY), cache_timeout_s / 2, breaker_of(cache)),
        _Probe(
            "ranker",
            False,
            lambda: ranker.score_many([((), (probe_item,))], timeout_s=ranker_timeout_s),
            ranker_timeout_s / 2,
            breaker_of(ranker),
        ),
    ]
    loaded = DependencyReport("artifacts", True, "ok", 0.0, None, f"bundle loaded from {artifacts}")
    # A pool per check, not shut down with wait: a probe that hangs keeps its own thread until the
    # dependency's timeout frees it, and never delays this answer or the next check.
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="shoprec-readiness")
    try:
        futures = [pool.submit(_run, probe) for probe in probes]
        wait(futures, timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)
    reports = [_report(probe, future, timeout_s) for probe, future in zip(probes, futures, strict=True)]
    return ReadinessReport((loaded, *reports))


def not_ready(reason: str) -> ReadinessReport:
    """The report of a service that could not load its bundle (or build its backends): nothing to probe."""
    unchecked = "not checked: the service could not start"
    return ReadinessReport(
        (
            DependencyReport("artifacts", True, "down", None, None, _short(reason)),
            DependencyReport("state", True, "down", None, None, unchecked),
            DependencyReport("cache", False, "down", None, None, unchecked),
            DependencyReport("ranker", False, "down", None, None, unchecked),
        )
    )


def _run(probe: _Probe) -> tuple[float, Exception | None]:
    start = time.perf_counter()
    try:
        probe.check()
    except Exception as exc:  # any failure of the dependency is its state, reported, not raised
        return time.perf_counter() - start, exc
    return time.perf_counter() - start, None


def _report(
    probe: _Probe, future: Future[tuple[float, Exception | None]], timeout_s: float
) -> DependencyReport:
    breaker = probe.breaker.state if probe.breaker is not None else None
    if not future.done():
        return DependencyReport(
            probe.name, probe.required, "down", None, breaker, f"no answer within {timeout_s * 1000:.0f} ms"
        )
    elapsed, error = future.result()
    latency_ms = round(elapsed * 1000, 2)
    if error is not None:
        detail = _short(f"{type(error).__name__}: {error}")
        return DependencyReport(probe.name, probe.required, "down", latency_ms, breaker, detail)
    if elapsed > probe.slow_after_s:
        detail = (
            f"answered in {latency_ms} ms, more than half of its {probe.slow_after_s * 2000:.0f} ms timeout"
        )
        return DependencyReport(probe.name, probe.required, "degraded", latency_ms, breaker, detail)
    return DependencyReport(probe.name, probe.required, "ok", latency_ms, breaker, "answered")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL_CHARS else text[: _MAX_DETAIL_CHARS - 1] + "…"
