"""What the cost model is fed besides prices: the stack as ``template.yaml`` configures it, the latencies
measured by ``make bench-api`` (docs/benchmarks.md), what each request does to DynamoDB, the cache and the
event log (read off the code paths and counted through the app in ``tests/integration/test_cost_counts.py``),
the assumptions no measurement here could replace (round trips inside AWS, cold-start share), and the
traffic. Every field can be changed by name (:func:`with_values`, ``shoprec cost --set NAME=VALUE``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Stack:
    """The deployed stack's figures, as ``template.yaml`` and the serving settings set them (checked against
    the template by ``tests/unit/test_cost_template.py``)."""

    api_memory_mb: int = 1769  # ApiFunction MemorySize: one full vCPU
    ingest_memory_mb: int = 1024  # Globals MemorySize (IngestFunction sets none)
    architecture: str = "arm64"  # Globals Architectures
    ingest_batch_size: int = 10  # IngestFunction SQS event: BatchSize
    ingest_batch_window_s: float = 10.0  # MaximumBatchingWindowInSeconds
    availability_zones: int = 2  # PrivateSubnetA/B: each interface endpoint is billed once per AZ
    interface_endpoints: int = 2  # SSM and Firehose; the SageMaker runtime one comes with the endpoint
    waf_rules: int = 3  # WebAcl: rate limit + two AWS managed rule groups
    endpoint_instance_type: str = "ml.g5.xlarge"  # EndpointInstanceType
    endpoint_min_instances: int = 1  # EndpointMinInstances (per variant)
    endpoint_max_instances: int = 4  # EndpointMaxInstances (per variant)
    endpoint_variants: int = 1  # primary only; a challenger (A/B) makes it 2
    endpoint_invocations_per_instance_minute: float = 1000.0  # EndpointInvocationsPerInstanceTarget
    api_rate_limit_per_s: float = 100.0  # ApiThrottleRateLimit: the stage's and usage plan's steady rate
    api_quota_per_key_day: float = 1_000_000.0  # ApiQuotaPerDay: requests per API key per day
    cache_ttl_s: float = 300.0  # Settings.cache_ttl_s: life of a cached list
    catalog_refresh_s: float = 0.5  # Settings.catalog_refresh_s: item-store version check
    rules_refresh_s: float = 5.0  # Settings.rules_refresh_s: merchandising rules query
    generation_ttl_s: float = 7 * 24 * 3600.0  # redis_cache.GENERATION_TTL_S: a user's generation key


@dataclass(frozen=True)
class Measured:
    """In-process latencies from ``make bench-api`` (docs/benchmarks.md, "Serving latency", the run of
    2026-12-03 with the content channel and hybrid search: p50 of warm requests on an x86 core, SQLite state
    and the in-process cache included, no network)."""

    recommend_ms: float = 6.42  # GET /v1/recommendations, uncached, four recall channels, ranked in process
    recommend_cached_ms: float = 1.45  # the same request answered from the cache
    search_ms: float = 10.19  # GET /v1/search, hybrid, every query encoded, no user
    rank_ms: float = 0.52  # ONNX ranking of 300 candidates (p50, the earlier run of the same day)
    init_s: float = 0.867  # cold start: import + artifact load, Lambda dependency set, bytecode cached


@dataclass(frozen=True)
class Assumptions:
    """What could not be measured here (no AWS): each is a stated guess, overridable by name."""

    similar_ms: float = 1.45  # GET /v1/items/{id}/similar: an item-CF lookup, taken as a cache hit's time
    event_ms: float = 1.0  # validating and planning one event, besides its round trips
    cpu_factor: float = 1.0  # Lambda's Graviton vCPU against the benchmark's x86 core (not measured)
    dynamodb_rtt_ms: float = 5.0  # one DynamoDB call from the function ("single-digit milliseconds")
    cache_rtt_ms: float = 1.0  # one Valkey round trip (a command or a pipeline) within the VPC
    firehose_rtt_ms: float = 10.0  # one PutRecordBatch through the interface endpoint
    sagemaker_rtt_ms: float = 5.0  # InvokeEndpoint's overhead besides the model's own time
    endpoint_model_ms: float | None = None  # the model's time on the endpoint; None: the measured rank_ms
    ranker_extra_memory_mb: int = 0  # memory the function would need beyond api_memory_mb to rank in process
    cold_start_share: float = 0.01  # API invocations that start an execution environment (INIT is billed)
    cached_list_bytes: int = 1900  # one cached list of 10 Scientific items (cache_codec, titles included)
    event_record_bytes: int = 400  # one event-log line (Firehose bills each record as 5 KB)
    ranker_request_bytes: int = 4600  # 50 history + 300 candidate ids as JSON
    ranker_response_bytes: int = 5400  # 300 scores as JSON


@dataclass(frozen=True)
class Ops:
    """What one request does to the backends (counted through the app by the integration test)."""

    dynamodb_reads: int = 0  # strongly consistent reads of one item <= 4 KB: 1 RRU and one round trip each
    dynamodb_writes: int = 0  # writes of one item <= 1 KB: 1 WRU and one round trip each
    dynamodb_transactions: int = 0  # TransactWriteItems calls: one round trip each
    dynamodb_transact_items: int = 0  # items those transactions write (<= 1 KB): 2 WRU each
    cache_commands: int = 0  # commands moving <= 1 KB: 1 ECPU each
    cache_list_transfers: int = 0  # commands carrying a cached list: 1 ECPU per KiB of it (rounded up)
    cache_round_trips: int = 0  # commands or pipelines waited for
    event_log_records: int = 0  # Firehose records
    event_log_calls: int = 0  # PutRecordBatch calls
    ranker_calls: int = 0  # ranker invocations (in process, or the SageMaker endpoint)


OPS: Mapping[str, Ops] = MappingProxyType(
    {
        # generation GET, list GET (a miss), state GetItem, then one pipeline: SET list, SADD tag, 2 PEXPIRE
        "recommend_miss": Ops(
            dynamodb_reads=1, cache_commands=5, cache_list_transfers=1, cache_round_trips=3, ranker_calls=1
        ),
        # generation GET, list GET (a hit)
        "recommend_hit": Ops(cache_commands=1, cache_list_transfers=1, cache_round_trips=2),
        # anonymous search: the index in memory, no state, no cache
        "search": Ops(),
        "similar": Ops(),
        # one event of a user with a cached list: state GetItem, one transaction (event + state items),
        # one log record, invalidation: pipeline (SET generation, SPOP tag), DEL of the list, SPOP again
        "event": Ops(
            dynamodb_reads=1,
            dynamodb_transactions=1,
            dynamodb_transact_items=2,
            cache_commands=4,
            cache_round_trips=3,
            event_log_records=1,
            event_log_calls=1,
        ),
        # the ingest function's guard per message: conditional put INPROGRESS, then update COMPLETED
        "idempotency": Ops(dynamodb_writes=2),
        # a refresh of the live catalogue's version (GetItem) or of the merchandising rules (Query)
        "refresh": Ops(dynamodb_reads=1),
    }
)
"""Per request kind. Periodic reads (``refresh``) happen at most every ``Stack.catalog_refresh_s`` and
``Stack.rules_refresh_s`` in each execution environment that serves requests."""

KINDS = ("recommendations", "search", "similar", "events", "api_events")
"""The traffic mix's request kinds: ``events`` are single-event messages sent to the ingest queue,
``api_events`` single-event ``POST /v1/events`` calls."""

DEFAULT_MIX: Mapping[str, float] = MappingProxyType(
    {"recommendations": 0.6, "search": 0.2, "similar": 0.1, "events": 0.1, "api_events": 0.0}
)


@dataclass(frozen=True)
class Traffic:
    """A month's requests and how they split: shares of ``KINDS`` (summing to 1) and the share of
    recommendation requests answered from the cache."""

    requests_per_month: float
    mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_MIX)
    cache_hit_rate: float = 0.3

    def __post_init__(self) -> None:
        if not math.isfinite(self.requests_per_month) or self.requests_per_month < 0:
            raise ValueError(
                f"requests_per_month must be a finite number >= 0, got {self.requests_per_month}"
            )
        if not 0.0 <= self.cache_hit_rate <= 1.0:
            raise ValueError(f"cache_hit_rate must lie in [0, 1], got {self.cache_hit_rate}")
        unknown = sorted(set(self.mix) - set(KINDS))
        if unknown:
            raise ValueError(
                f"mix: unknown request kind(s) {', '.join(unknown)}; expected {', '.join(KINDS)}"
            )
        if any(not math.isfinite(v) or v < 0 for v in self.mix.values()):
            raise ValueError("mix: every share must be a finite number >= 0")
        if not math.isclose(sum(self.mix.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"mix: the shares must sum to 1, got {sum(self.mix.values()):g}")

    def share(self, kind: str) -> float:
        """The share of ``kind`` (0 when the mix leaves it out)."""
        return self.mix.get(kind, 0.0)


@dataclass(frozen=True)
class Inputs:
    """Everything but prices and traffic."""

    stack: Stack = field(default_factory=Stack)
    measured: Measured = field(default_factory=Measured)
    assumptions: Assumptions = field(default_factory=Assumptions)

    def describe(self) -> dict[str, dict[str, Any]]:
        """The inputs as ``{group: {name: value}}`` (for ``--json`` and the docs)."""
        return {
            group: {f.name: getattr(getattr(self, group), f.name) for f in fields(getattr(self, group))}
            for group in ("stack", "measured", "assumptions")
        }


def with_values(inputs: Inputs, values: Mapping[str, str]) -> Inputs:
    """``inputs`` with the fields named in ``values`` (strings, converted to each field's type) replaced.
    Names are the field names of :class:`Stack`, :class:`Measured` and :class:`Assumptions` (each unique).
    ``ValueError`` naming the field for an unknown name, a value of the wrong type or a negative number."""
    groups: dict[str, dict[str, Any]] = {"stack": {}, "measured": {}, "assumptions": {}}
    owner = {f.name: group for group in groups for f in fields(getattr(inputs, group))}
    for name, raw in values.items():
        group = owner.get(name)
        if group is None:
            raise ValueError(f"unknown input {name!r}; known: {', '.join(sorted(owner))}")
        current = getattr(getattr(inputs, group), name)
        groups[group][name] = _convert(name, raw, current)
    return replace(
        inputs,
        stack=replace(inputs.stack, **groups["stack"]),
        measured=replace(inputs.measured, **groups["measured"]),
        assumptions=replace(inputs.assumptions, **groups["assumptions"]),
    )


def parse_mix(text: str) -> dict[str, float]:
    """``recommendations=0.7,search=0.3`` → shares by kind; ``ValueError`` naming the malformed part."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--mix: {part!r} is not KIND=SHARE")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--mix: {value!r} (for {name.strip()}) is not a number") from None
    return mix


def _convert(name: str, raw: str, current: object) -> object:
    if isinstance(current, str):
        if not raw.strip():
            raise ValueError(f"input {name}: must not be empty")
        return raw.strip()
    integer = isinstance(current, int) and not isinstance(current, bool)
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        raise ValueError(f"input {name}: {raw!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"input {name}: must be a finite number >= 0, got {raw}")
    if name == "cold_start_share" and value > 1:
        raise ValueError(f"input {name}: must lie in [0, 1], got {raw}")
    return value
