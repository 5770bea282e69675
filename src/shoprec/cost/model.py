"""The monthly cost of the stack as named line items, and where a SageMaker ranking endpoint starts to cost
less than ranking inside the API function.

Pure functions of the traffic, the inputs (:mod:`shoprec.cost.inputs`) and the prices
(:mod:`shoprec.cost.prices`). The model, its simplifications and what it leaves out are in docs/cost.md;
in short: a month is 730 hours with the traffic spread evenly over it, every request kind has one billed
duration (the measured in-process time plus its counted round trips at the assumed round-trip times,
rounded up to Lambda's millisecond), and the endpoint's instance-hours follow its scaling target exactly
(fractional instances averaged over the month, never fewer than the minimum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from shoprec.cost.inputs import OPS, Inputs, Ops, Traffic
from shoprec.cost.prices import PriceBook

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
FIREHOSE_RECORD_UNIT_BYTES = 5 * 1024  # Firehose bills every record in 5 KB increments
CACHE_ECPU_BYTES = 1024  # one ECPU per KiB a command transfers
SQS_PAYLOAD_UNIT_BYTES = 64 * 1024
CACHE_KEY_OVERHEAD_BYTES = 100  # key, tag-set member and the store's own bookkeeping for a cached list
GB = 1e9
MIN_CACHE_STORAGE_GB = 0.1  # ElastiCache Serverless for Valkey meters at least 100 MB of data


class Ranking(StrEnum):
    """Where the candidates of a recommendation are ranked."""

    LAMBDA = "lambda"  # onnxruntime in the API function (SHOPREC_RANKER=onnx, the template's default)
    ENDPOINT = "endpoint"  # the SageMaker real-time endpoint (SHOPREC_RANKER=sagemaker://...)


@dataclass(frozen=True)
class LineItem:
    """One priced quantity of the month."""

    service: str
    item: str
    quantity: float
    unit: str
    monthly_usd: float

    def to_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "item": self.item,
            "quantity": self.quantity,
            "unit": self.unit,
            "monthly_usd": self.monthly_usd,
        }


@dataclass(frozen=True)
class CostReport:
    """A month's line items for ``traffic`` with ranking done by ``ranking``."""

    requests_per_month: float
    ranking: Ranking
    items: tuple[LineItem, ...]
    warnings: tuple[str, ...] = ()
    """Limits of the stack as configured that the month's traffic exceeds (priced as if they were raised)."""

    @property
    def monthly_usd(self) -> float:
        return sum(item.monthly_usd for item in self.items)

    @property
    def usd_per_million(self) -> float | None:
        """The month's total per million requests (``None`` for a month without requests)."""
        if self.requests_per_month <= 0:
            return None
        return self.monthly_usd / self.requests_per_month * 1e6

    def by_service(self) -> dict[str, float]:
        """Monthly USD per service, in the order the items appear."""
        totals: dict[str, float] = {}
        for item in self.items:
            totals[item.service] = totals.get(item.service, 0.0) + item.monthly_usd
        return totals


@dataclass(frozen=True)
class Durations:
    """Billed milliseconds (whole, as Lambda rounds up) of each invocation kind of the two functions."""

    recommend_miss: int
    recommend_hit: int
    search: int
    similar: int
    api_event: int
    ingest_invocation: int
    messages_per_ingest_invocation: float


@dataclass(frozen=True)
class Crossover:
    """Where ranking on the SageMaker endpoint becomes the cheaper choice.

    ``requests_per_month`` is the volume from which the endpoint costs less than ranking in the API function
    at every higher volume, or ``None`` when it never does (``reason`` says why). The other figures are USD
    per million requests of the whole mix: the function's time for the ranked requests (and any extra
    memory) when it ranks itself (``in_process``), that time plus the endpoint's data processing when it
    calls the endpoint (``with_endpoint``), and the endpoint's instances once scaled past their minimum
    (``endpoint_instances``); ``endpoint_fixed_usd`` is what the endpoint costs a month before any request
    (its minimum instances and its VPC interface endpoint).
    """

    requests_per_month: float | None
    in_process_usd_per_million: float
    with_endpoint_usd_per_million: float
    endpoint_instances_usd_per_million: float
    endpoint_fixed_usd: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "requests_per_month": self.requests_per_month,
            "in_process_usd_per_million": self.in_process_usd_per_million,
            "with_endpoint_usd_per_million": self.with_endpoint_usd_per_million,
            "endpoint_instances_usd_per_million": self.endpoint_instances_usd_per_million,
            "endpoint_fixed_monthly_usd": self.endpoint_fixed_usd,
            "reason": self.reason,
        }


def durations(inputs: Inputs, traffic: Traffic, ranking: Ranking) -> Durations:
    """The billed duration of every invocation kind (see the module docstring)."""
    m, a = inputs.measured, inputs.assumptions
    f = a.cpu_factor

    def io(ops: Ops) -> float:
        ddb = ops.dynamodb_reads + ops.dynamodb_writes + ops.dynamodb_transactions
        return (
            ddb * a.dynamodb_rtt_ms
            + ops.cache_round_trips * a.cache_rtt_ms
            + ops.event_log_calls * a.firehose_rtt_ms
        )

    if ranking is Ranking.LAMBDA:
        recommend = m.recommend_ms * f
    else:
        model_ms = m.rank_ms if a.endpoint_model_ms is None else a.endpoint_model_ms
        recommend = (m.recommend_ms - m.rank_ms) * f + a.sagemaker_rtt_ms + model_ms
    event = a.event_ms * f + io(OPS["event"])
    per_message = event + io(OPS["idempotency"])
    batch = messages_per_ingest_invocation(inputs, traffic)
    return Durations(
        recommend_miss=_billed(recommend + io(OPS["recommend_miss"])),
        recommend_hit=_billed(m.recommend_cached_ms * f + io(OPS["recommend_hit"])),
        search=_billed(m.search_ms * f + io(OPS["search"])),
        similar=_billed(a.similar_ms * f + io(OPS["similar"])),
        api_event=_billed(event),
        ingest_invocation=_billed(per_message * batch),
        messages_per_ingest_invocation=batch,
    )


def messages_per_ingest_invocation(inputs: Inputs, traffic: Traffic) -> float:
    """Messages the SQS event source hands the ingest function at once: what arrives within the batching
    window, at least one and at most the batch size."""
    s = inputs.stack
    rate = traffic.requests_per_month * traffic.share("events") / SECONDS_PER_MONTH
    return min(float(s.ingest_batch_size), max(1.0, rate * s.ingest_batch_window_s))


def monthly_cost(
    traffic: Traffic, inputs: Inputs, prices: PriceBook, ranking: Ranking = Ranking.LAMBDA
) -> CostReport:
    """The month's line items for ``traffic`` (module docstring; docs/cost.md)."""
    s, a = inputs.stack, inputs.assumptions
    n = traffic.requests_per_month
    d = durations(inputs, traffic, ranking)
    rec = n * traffic.share("recommendations")
    hits, misses = rec * traffic.cache_hit_rate, rec * (1 - traffic.cache_hit_rate)
    searches, similars = n * traffic.share("search"), n * traffic.share("similar")
    api_events, queued = n * traffic.share("api_events"), n * traffic.share("events")
    api_requests = rec + searches + similars + api_events
    invocations = queued / d.messages_per_ingest_invocation

    # Per execution environment the catalogue's version and the rules are re-read at most every refresh
    # interval while it serves; environments are the API's mean concurrency (at least one), taken from the
    # in-process ranking's durations in both modes so the two modes differ only in the ranking.
    base = d if ranking is Ranking.LAMBDA else durations(inputs, traffic, Ranking.LAMBDA)
    api_ms = misses * base.recommend_miss + hits * base.recommend_hit + searches * base.search
    api_ms += similars * base.similar + api_events * base.api_event
    rate = api_requests / SECONDS_PER_MONTH
    environments = max(1.0, rate * (api_ms / api_requests / 1000.0)) if api_requests else 0.0
    refreshes = sum(
        min(api_requests, environments * SECONDS_PER_MONTH / interval) if interval > 0 else api_requests
        for interval in (s.catalog_refresh_s, s.rules_refresh_s)
    )

    api_gb = (s.api_memory_mb + (a.ranker_extra_memory_mb if ranking is Ranking.LAMBDA else 0)) / 1024.0
    ingest_gb = s.ingest_memory_mb / 1024.0
    billed_ms = misses * d.recommend_miss + hits * d.recommend_hit + searches * d.search
    billed_ms += similars * d.similar + api_events * d.api_event
    refresh_ms = refreshes * OPS["refresh"].dynamodb_reads * a.dynamodb_rtt_ms
    api_gbs = (billed_ms + refresh_ms) / 1000.0 * api_gb
    init_gbs = api_requests * a.cold_start_share * inputs.measured.init_s * api_gb
    ingest_gbs = invocations * d.ingest_invocation / 1000.0 * ingest_gb
    gbs = prices[f"lambda_gb_second_{s.architecture.replace('-', '_')}"]

    events = api_events + queued
    per_kind: list[tuple[float, Ops]] = [
        (misses, OPS["recommend_miss"]),
        (hits, OPS["recommend_hit"]),
        (searches, OPS["search"]),
        (similars, OPS["similar"]),
        (events, OPS["event"]),
        (queued, OPS["idempotency"]),
        (refreshes, OPS["refresh"]),
    ]
    rru = sum(count * ops.dynamodb_reads for count, ops in per_kind)
    wru = sum(count * (ops.dynamodb_writes + 2 * ops.dynamodb_transact_items) for count, ops in per_kind)
    list_ecpu = math.ceil(a.cached_list_bytes / CACHE_ECPU_BYTES)
    ecpu = sum(count * (ops.cache_commands + ops.cache_list_transfers * list_ecpu) for count, ops in per_kind)
    records = sum(count * ops.event_log_records for count, ops in per_kind)

    # Stored data by Little's law: lists live cache_ttl_s after each miss, a user's generation key a week
    # after their last event (at most one key per event: an upper bound).
    list_bytes = misses / SECONDS_PER_MONTH * s.cache_ttl_s * (a.cached_list_bytes + CACHE_KEY_OVERHEAD_BYTES)
    generation_bytes = events / SECONDS_PER_MONTH * s.generation_ttl_s * CACHE_KEY_OVERHEAD_BYTES
    stored_gb = max(MIN_CACHE_STORAGE_GB, (list_bytes + generation_bytes) / GB)

    sqs_chunks = max(1, math.ceil(a.event_record_bytes / SQS_PAYLOAD_UNIT_BYTES))
    # A SendMessage per message; a ReceiveMessage and a DeleteMessageBatch per ingest invocation.
    sqs_requests = queued * sqs_chunks + 2 * invocations
    firehose_gb = (
        records
        * math.ceil(a.event_record_bytes / FIREHOSE_RECORD_UNIT_BYTES)
        * FIREHOSE_RECORD_UNIT_BYTES
        / GB
    )

    vpce = s.interface_endpoints + (1 if ranking is Ranking.ENDPOINT else 0)
    vpce_hours = vpce * s.availability_zones * HOURS_PER_MONTH
    ranked = misses * OPS["recommend_miss"].ranker_calls
    ranker_gb = ranked * (a.ranker_request_bytes + a.ranker_response_bytes) / GB
    vpce_gb = records * a.event_record_bytes / GB + (ranker_gb if ranking is Ranking.ENDPOINT else 0.0)

    items = [
        _item(
            "API Gateway",
            "REST API requests",
            api_requests,
            "requests",
            prices["apigw_rest_request"].cost(api_requests),
        ),
        _item(
            "WAF",
            "web ACL and rules",
            1 + s.waf_rules,
            "ACL + rules",
            prices["waf_web_acl_month"].usd + s.waf_rules * prices["waf_rule_month"].usd,
        ),
        _item(
            "WAF", "requests inspected", api_requests, "requests", prices["waf_request"].cost(api_requests)
        ),
        _item(
            "Lambda (api)", "requests", api_requests, "requests", prices["lambda_request"].cost(api_requests)
        ),
        _item("Lambda (api)", "duration", api_gbs, "GB-s", gbs.cost(api_gbs)),
        _item("Lambda (api)", "init (cold starts)", init_gbs, "GB-s", gbs.cost(init_gbs)),
        _item(
            "Lambda (ingest)", "requests", invocations, "requests", prices["lambda_request"].cost(invocations)
        ),
        _item("Lambda (ingest)", "duration", ingest_gbs, "GB-s", gbs.cost(ingest_gbs)),
        _item("DynamoDB", "read request units", rru, "RRU", prices["dynamodb_read_request_unit"].cost(rru)),
        _item("DynamoDB", "write request units", wru, "WRU", prices["dynamodb_write_request_unit"].cost(wru)),
        _item("ElastiCache Serverless", "ECPUs", ecpu, "ECPU", prices["elasticache_valkey_ecpu"].cost(ecpu)),
        _item(
            "ElastiCache Serverless",
            "data stored",
            stored_gb * HOURS_PER_MONTH,
            "GB-hours",
            prices["elasticache_valkey_storage_gb_hour"].cost(stored_gb * HOURS_PER_MONTH),
        ),
        _item("SQS", "requests", sqs_requests, "requests", prices["sqs_request"].cost(sqs_requests)),
        _item(
            "Firehose",
            "ingested (5 KB a record)",
            firehose_gb,
            "GB",
            prices["firehose_ingested_gb"].cost(firehose_gb),
        ),
        _item(
            "VPC interface endpoints",
            "endpoint-hours",
            vpce_hours,
            "endpoint-AZ-hours",
            prices["vpc_interface_endpoint_hour"].cost(vpce_hours),
        ),
        _item(
            "VPC interface endpoints",
            "data processed",
            vpce_gb,
            "GB",
            prices["vpc_interface_endpoint_gb"].cost(vpce_gb),
        ),
    ]
    if ranking is Ranking.ENDPOINT:
        hours = endpoint_instance_hours(inputs, ranked)
        instance = prices.instance_hour(s.endpoint_instance_type)
        items += [
            _item(
                "SageMaker",
                f"{s.endpoint_instance_type} instance-hours",
                hours,
                "instance-hours",
                instance.cost(hours),
            ),
            _item(
                "SageMaker",
                "data processed in and out",
                ranker_gb,
                "GB",
                prices["sagemaker_data_processed_gb"].cost(ranker_gb),
            ),
        ]
    warnings = limits_exceeded(inputs, api_requests, ranked if ranking is Ranking.ENDPOINT else 0.0)
    return CostReport(requests_per_month=n, ranking=ranking, items=tuple(items), warnings=warnings)


def limits_exceeded(inputs: Inputs, api_requests: float, ranked_calls: float) -> tuple[str, ...]:
    """What in the template's configuration a month of ``api_requests`` (and ``ranked_calls`` on the
    endpoint) would run into, at an even rate: the stage's throttle, one API key's daily quota, the
    endpoint's maximum instances."""
    s = inputs.stack
    rate = api_requests / SECONDS_PER_MONTH
    found: list[str] = []
    if rate > s.api_rate_limit_per_s:
        found.append(
            f"{rate:,.0f} API requests/s on average is above the stage's throttle of "
            f"{s.api_rate_limit_per_s:,.0f}/s (ApiThrottleRateLimit)"
        )
    per_day = api_requests / (HOURS_PER_MONTH / 24.0)
    if per_day > s.api_quota_per_key_day:
        keys = math.ceil(per_day / s.api_quota_per_key_day)
        found.append(
            f"{per_day:,.0f} API requests a day need {keys} API keys at the usage plan's quota of "
            f"{s.api_quota_per_key_day:,.0f} per key and day (ApiQuotaPerDay)"
        )
    if ranked_calls:
        needed = ranked_calls / s.endpoint_variants / (s.endpoint_invocations_per_instance_minute * 60.0)
        needed /= HOURS_PER_MONTH
        if needed > s.endpoint_max_instances:
            found.append(
                f"the endpoint needs {needed:,.1f} instances per variant on average at its scaling target, "
                f"above EndpointMaxInstances ({s.endpoint_max_instances})"
            )
    return tuple(found)


def endpoint_instance_hours(inputs: Inputs, ranked_calls: float) -> float:
    """Instance-hours of the endpoint in a month of ``ranked_calls``: each variant keeps its minimum and
    otherwise as many instances as hold its share at the scaling target (invocations per instance-minute)."""
    s = inputs.stack
    per_instance_hour = s.endpoint_invocations_per_instance_minute * 60.0
    per_variant = ranked_calls / s.endpoint_variants
    floor = s.endpoint_min_instances * HOURS_PER_MONTH
    return s.endpoint_variants * max(floor, per_variant / per_instance_hour)


def crossover(traffic: Traffic, inputs: Inputs, prices: PriceBook) -> Crossover:
    """The monthly volume (same mix) from which ranking on the endpoint costs less than ranking in the API
    function (docs/cost.md, "The crossover").

    Only four lines differ between the two: the API function's duration of the ranked requests (in process:
    its measured ranking time at its memory; on the endpoint: the wait for the call instead), the endpoint's
    instance-hours, its data processed, and its VPC interface endpoint. Per request of the mix the first
    two ways cost ``a`` (in process) and ``b`` (endpoint's Lambda and data); the endpoint also costs ``F``
    a month (its interface endpoint) plus its instances, ``c`` an hour each, at least ``H`` hours and
    otherwise ``k`` per request. The difference (endpoint minus Lambda) ``F + c*max(H, .) + (b - a)*N``
    falls below zero at ``N = (F + c*H) / (a - b)`` while the minimum still holds the load, and past that
    at ``N = F / (a - b - k)``; it never does when ``a - b <= k``. Extra memory for the in-process ranker
    (``ranker_extra_memory_mb``) is charged on every API invocation and cold start in ``a``; the refresh
    reads' waits at that memory, which stop growing with the volume, are left out.
    """
    s = inputs.stack
    q = traffic.share("recommendations") * (1 - traffic.cache_hit_rate) * OPS["recommend_miss"].ranker_calls
    gbs = prices[f"lambda_gb_second_{s.architecture.replace('-', '_')}"]
    in_lambda = durations(inputs, traffic, Ranking.LAMBDA).recommend_miss
    on_endpoint = durations(inputs, traffic, Ranking.ENDPOINT).recommend_miss
    mem_gb = s.api_memory_mb / 1024.0
    extra_gb = inputs.assumptions.ranker_extra_memory_mb / 1024.0
    volume = traffic.requests_per_month
    # With extra memory every API invocation is billed at the larger size, not only the ranked ones.
    others = durations(inputs, traffic, Ranking.LAMBDA)
    mix_ms = _mean_api_ms(traffic, others)
    a = gbs.marginal(volume) * (q * in_lambda * mem_gb + mix_ms * extra_gb) / 1000.0
    a += gbs.marginal(volume) * per_request_init_gb_s(traffic, inputs, extra_gb)
    payload_gb = (inputs.assumptions.ranker_request_bytes + inputs.assumptions.ranker_response_bytes) / GB
    data_price = prices["sagemaker_data_processed_gb"].usd + prices["vpc_interface_endpoint_gb"].usd
    b = gbs.marginal(volume) * q * on_endpoint * mem_gb / 1000.0 + q * payload_gb * data_price
    instance = prices.instance_hour(s.endpoint_instance_type).usd
    c = instance * s.endpoint_variants
    h = s.endpoint_min_instances * HOURS_PER_MONTH
    k = instance * q / (s.endpoint_invocations_per_instance_minute * 60.0)
    fixed = prices["vpc_interface_endpoint_hour"].usd * s.availability_zones * HOURS_PER_MONTH
    figures = {
        "in_process_usd_per_million": a * 1e6,
        "with_endpoint_usd_per_million": b * 1e6,
        "endpoint_instances_usd_per_million": k * 1e6,
        "endpoint_fixed_usd": fixed + c * h,
    }
    saving = a - b
    if saving <= k:
        why = (
            "ranking in the function costs less per request than the endpoint's call and instances together"
            if saving > 0
            else "waiting for the endpoint costs the function at least as much as ranking in it"
        )
        return Crossover(requests_per_month=None, reason=why, **figures)
    n1 = (fixed + c * h) / saving
    if q * n1 / s.endpoint_variants <= h * s.endpoint_invocations_per_instance_minute * 60.0:
        return Crossover(requests_per_month=n1, reason="the minimum instances hold the load there", **figures)
    n2 = fixed / (saving - k)
    return Crossover(
        requests_per_month=n2, reason="the endpoint has scaled beyond its minimum there", **figures
    )


def per_request_init_gb_s(traffic: Traffic, inputs: Inputs, extra_gb: float) -> float:
    """GB-s of cold starts per request of the mix that ``extra_gb`` more memory adds."""
    api_share = 1.0 - traffic.share("events")
    return api_share * inputs.assumptions.cold_start_share * inputs.measured.init_s * extra_gb


def _mean_api_ms(traffic: Traffic, d: Durations) -> float:
    """Billed API milliseconds per request of the mix."""
    rec = traffic.share("recommendations")
    return (
        rec * (1 - traffic.cache_hit_rate) * d.recommend_miss
        + rec * traffic.cache_hit_rate * d.recommend_hit
        + traffic.share("search") * d.search
        + traffic.share("similar") * d.similar
        + traffic.share("api_events") * d.api_event
    )


def _billed(ms: float) -> int:
    return max(1, math.ceil(ms - 1e-9))


def _item(service: str, item: str, quantity: float, unit: str, usd: float) -> LineItem:
    return LineItem(service=service, item=item, quantity=quantity, unit=unit, monthly_usd=usd)
