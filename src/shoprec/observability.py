"""Logging, tracing and metrics: the one place Powertools is configured.

Works outside Lambda too: the tracer disables itself when ``LAMBDA_TASK_ROOT`` is unset (or with
``POWERTOOLS_TRACE_DISABLED=true``), and metrics are only recorded where something ships them — in Lambda,
where stdout goes to CloudWatch and ``@metrics.log_metrics`` flushes them, or wherever
``POWERTOOLS_METRICS_DISABLED=false`` asks for them explicitly. Elsewhere (``shoprec serve``, tests,
benchmarks) EMF documents on stdout would only be noise.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Final

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from shoprec.services.results import ListResult

NAMESPACE: Final = "shoprec"
SERVICE: Final = "shoprec-api"

logger = Logger(service=SERVICE)
# Only what the serving path calls out through: AWS SDK calls (DynamoDB, S3, SageMaker) and http.client
# (the HTTP ranker). patch_all would also import and wrap every other supported library it finds.
tracer = Tracer(service=SERVICE, patch_modules=("botocore", "httplib"))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})

# Health checks and error answers legitimately record no metric; Powertools would otherwise warn
# about that on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def route_package_logs() -> None:
    """Send the package's own log records (``logging.getLogger("shoprec....")``, e.g. a ranker fallback or a
    version that failed to load) through the Powertools logger's handler: in Lambda they become JSON lines
    with the invocation's keys (request id, correlation id, cold start) like the handlers' own, instead of
    plain lines without them. Called by the Lambda handlers; idempotent."""
    package = logging.getLogger("shoprec")
    handler = logger.registered_handler
    if handler not in package.handlers:
        package.addHandler(handler)
    package.setLevel(logger.log_level)
    package.propagate = False  # the runtime's root handler would print each record a second time


def metrics_enabled() -> bool:
    """Whether EMF metrics are recorded: ``POWERTOOLS_METRICS_DISABLED`` if set, else only in Lambda."""
    flag = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    if flag is not None:
        return flag.strip().lower() not in _TRUE
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def record_result(operation: str, result: ListResult) -> None:
    """Metrics of one list response: latency per stage and overall, cache hit, degraded, candidates.

    Metric names carry the operation, stage or channel (``RecommendLatency``, ``RecallLatency``,
    ``CandidatesItemcf``) rather than a dimension, because Powertools applies dimensions to a whole
    flushed batch of metrics.
    """
    if not metrics_enabled():
        return
    ms = MetricUnit.Milliseconds
    for stage, value in result.timings_ms.items():
        name = operation if stage == "total" else stage
        metrics.add_metric(name=f"{_camel(name)}Latency", unit=ms, value=value)
    metrics.add_metric(name="CacheHit" if result.cached else "CacheMiss", unit=MetricUnit.Count, value=1)
    if result.degraded:
        metrics.add_metric(name="Degraded", unit=MetricUnit.Count, value=1)
    if result.ranker_fallback:
        # The deploy stack's fallback-rate alarm divides this by the API's request count.
        metrics.add_metric(name="RankerFallback", unit=MetricUnit.Count, value=1)
    for channel, n in result.candidates_per_channel.items():
        metrics.add_metric(name=f"Candidates{_camel(channel)}", unit=MetricUnit.Count, value=n)


def record_count(name: str, value: float = 1) -> None:
    """A plain counter (e.g. ``EventsApplied``), recorded under the same rules as :func:`record_result`."""
    if metrics_enabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_") if part)
