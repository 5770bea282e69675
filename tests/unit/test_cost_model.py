"""The cost model on hand-computed cases: billed durations, line items, the endpoint's instance-hours and the
crossover, which must agree with the full model (the endpoint's month turns cheaper exactly there)."""

from __future__ import annotations

import math

import pytest

from shoprec.cost.inputs import Inputs, Traffic, with_values
from shoprec.cost.model import (
    HOURS_PER_MONTH,
    CostReport,
    Ranking,
    crossover,
    durations,
    endpoint_instance_hours,
    monthly_cost,
)
from shoprec.cost.prices import load_prices

PRICES = load_prices()
API_GB = 1769 / 1024
GBS = 0.0000133334
RECOMMENDATIONS_ONLY = {"recommendations": 1.0}
NO_REFRESH = {"catalog_refresh_s": "1e15", "rules_refresh_s": "1e15"}  # periodic reads out of the way


def line(report: CostReport, service: str, item: str) -> float:
    (found,) = [i.monthly_usd for i in report.items if i.service == service and i.item == item]
    return found


def quantity(report: CostReport, service: str, item: str) -> float:
    (found,) = [i.quantity for i in report.items if i.service == service and i.item == item]
    return found


def test_billed_durations_add_the_counted_round_trips_and_round_up() -> None:
    d = durations(Inputs(), Traffic(1e7), Ranking.LAMBDA)
    assert d.recommend_miss == 15  # 6.42 measured + 1 GetItem x 5 ms + 3 cache round trips x 1 ms = 14.42
    assert d.recommend_hit == 4  # 1.45 + 2 x 1
    assert d.search == 11  # 10.19, no round trips
    assert d.similar == 2  # 1.45
    assert d.api_event == 24  # 1 + (GetItem + transaction) x 5 + 3 x 1 + PutRecordBatch 10
    # 1e6 queued events a month arrive at 0.3805/s: 3.805 messages in the 10 s window, 34 ms each
    assert d.messages_per_ingest_invocation == pytest.approx(1e6 / (730 * 3600) * 10)
    assert d.ingest_invocation == math.ceil(34 * 1e6 / (730 * 3600) * 10)


def test_on_the_endpoint_the_function_waits_for_the_call_instead_of_ranking() -> None:
    d = durations(Inputs(), Traffic(1e7), Ranking.ENDPOINT)
    # (6.42 - 0.52) + 5 ms call overhead + 0.52 model + 8 ms of round trips = 19.42
    assert d.recommend_miss == 20
    model = with_values(Inputs(), {"endpoint_model_ms": "3"})
    assert durations(model, Traffic(1e7), Ranking.ENDPOINT).recommend_miss == 22  # 5.9 + 5 + 3 + 8


def test_a_full_ingest_batch_is_capped_at_the_batch_size() -> None:
    d = durations(Inputs(), Traffic(1e9), Ranking.LAMBDA)
    assert d.messages_per_ingest_invocation == 10
    assert d.ingest_invocation == 340


def test_uncached_recommendations_month_line_by_line() -> None:
    inputs = with_values(Inputs(), NO_REFRESH)
    report = monthly_cost(Traffic(1e6, RECOMMENDATIONS_ONLY, cache_hit_rate=0.0), inputs, PRICES)
    assert line(report, "API Gateway", "REST API requests") == pytest.approx(3.5)
    assert line(report, "WAF", "web ACL and rules") == pytest.approx(5 + 3 * 1)
    assert line(report, "WAF", "requests inspected") == pytest.approx(0.6)
    assert line(report, "Lambda (api)", "requests") == pytest.approx(0.2)
    # 1e6 x 15 ms x 1.7275 GB
    assert quantity(report, "Lambda (api)", "duration") == pytest.approx(1e6 * 0.015 * API_GB, rel=1e-6)
    assert line(report, "Lambda (api)", "duration") == pytest.approx(1e6 * 0.015 * API_GB * GBS, rel=1e-6)
    # 1 % cold starts of 0.867 s each
    assert line(report, "Lambda (api)", "init (cold starts)") == pytest.approx(1e4 * 0.867 * API_GB * GBS)
    assert line(report, "Lambda (ingest)", "requests") == 0
    # one consistent GetItem each: 1e6 RRU at $0.125 per million; nothing written
    assert quantity(report, "DynamoDB", "read request units") == pytest.approx(1e6, rel=1e-6)
    assert line(report, "DynamoDB", "write request units") == 0
    # 5 small commands + one 1,900-byte list SET (2 ECPU): 7e6 ECPU at $0.0023 per million
    assert quantity(report, "ElastiCache Serverless", "ECPUs") == pytest.approx(7e6)
    # 228 kB of live lists: the 100 MB minimum, 730 hours at $0.084
    assert line(report, "ElastiCache Serverless", "data stored") == pytest.approx(0.1 * 730 * 0.084)
    assert line(report, "SQS", "requests") == 0
    assert line(report, "VPC interface endpoints", "endpoint-hours") == pytest.approx(2 * 2 * 730 * 0.01)
    assert report.ranking is Ranking.LAMBDA
    assert report.usd_per_million == pytest.approx(report.monthly_usd)
    assert not [i for i in report.items if i.service == "SageMaker"]


def test_queued_events_cost_writes_queue_requests_and_log_records() -> None:
    inputs = with_values(Inputs(), NO_REFRESH)
    report = monthly_cost(Traffic(1e9, {"events": 1.0}), inputs, PRICES)
    invocations = 1e9 / 10
    assert quantity(report, "Lambda (ingest)", "requests") == pytest.approx(invocations)
    assert quantity(report, "Lambda (ingest)", "duration") == pytest.approx(invocations * 0.340 * 1.0)
    # per event: a transaction of 2 items (2 WRU each) + the idempotency put and update (1 WRU each)
    assert quantity(report, "DynamoDB", "write request units") == pytest.approx(6e9)
    assert quantity(report, "DynamoDB", "read request units") == pytest.approx(1e9, rel=1e-6)
    # a SendMessage per event, a receive and a batch delete per invocation
    assert quantity(report, "SQS", "requests") == pytest.approx(1e9 + 2 * invocations)
    # every 400-byte record is billed as 5 KB
    assert quantity(report, "Firehose", "ingested (5 KB a record)") == pytest.approx(1e9 * 5120 / 1e9)
    assert quantity(report, "API Gateway", "REST API requests") == 0
    # generation keys of a week of events (upper bound): 1e9 / 730 h x 168 h x 100 bytes, above the minimum
    stored_gb = 1e9 / (730 * 3600) * 7 * 24 * 3600 * 100 / 1e9
    assert quantity(report, "ElastiCache Serverless", "data stored") == pytest.approx(stored_gb * 730)


def test_refresh_reads_are_at_most_one_per_request_at_low_traffic() -> None:
    report = monthly_cost(Traffic(1e6, RECOMMENDATIONS_ONLY, cache_hit_rate=0.0), Inputs(), PRICES)
    # 0.38 requests/s in one environment: both the catalogue (0.5 s) and the rules (5 s) are re-read at
    # most once per request: 1e6 + min(1e6, 730 h / 5 s) = 1e6 + 525,600
    assert quantity(report, "DynamoDB", "read request units") == pytest.approx(1e6 + 1e6 + 525_600)


def test_the_endpoint_keeps_its_minimum_then_scales_with_the_ranked_calls() -> None:
    inputs = Inputs()
    assert endpoint_instance_hours(inputs, 1e6) == HOURS_PER_MONTH
    assert endpoint_instance_hours(inputs, 1e9) == pytest.approx(1e9 / 60_000)
    two = with_values(inputs, {"endpoint_variants": "2"})
    assert endpoint_instance_hours(two, 1e6) == 2 * HOURS_PER_MONTH
    assert endpoint_instance_hours(two, 1e9) == pytest.approx(1e9 / 60_000)


def test_endpoint_ranking_adds_instances_data_and_an_interface_endpoint() -> None:
    report = monthly_cost(Traffic(1e6, RECOMMENDATIONS_ONLY, 0.0), Inputs(), PRICES, Ranking.ENDPOINT)
    assert line(report, "SageMaker", "ml.g5.xlarge instance-hours") == pytest.approx(730 * 1.408)
    assert quantity(report, "SageMaker", "data processed in and out") == pytest.approx(1e6 * 10_000 / 1e9)
    assert line(report, "VPC interface endpoints", "endpoint-hours") == pytest.approx(3 * 2 * 730 * 0.01)


def test_without_requests_the_month_is_the_fixed_costs() -> None:
    report = monthly_cost(Traffic(0.0), Inputs(), PRICES)
    fixed = 8.0 + 0.1 * 730 * 0.084 + 2 * 2 * 730 * 0.01
    assert report.monthly_usd == pytest.approx(fixed)
    assert report.usd_per_million is None


def test_tiered_api_gateway_prices_large_months() -> None:
    report = monthly_cost(Traffic(1e9, RECOMMENDATIONS_ONLY), Inputs(), PRICES)
    assert line(report, "API Gateway", "REST API requests") == pytest.approx(333 * 3.5 + 667 * 2.8)


def test_limits_of_the_template_that_the_traffic_exceeds_are_named() -> None:
    assert monthly_cost(Traffic(1e7), Inputs(), PRICES).warnings == ()
    # 90M API requests: 34/s (under the 100/s throttle), 2.96M a day (three keys' quota)
    (quota,) = monthly_cost(Traffic(1e8), Inputs(), PRICES).warnings
    assert "need 3 API keys" in quota
    assert "ApiQuotaPerDay" in quota
    # 900M: 342/s; on the endpoint 420M ranked calls need 9.6 instances at 60,000 calls an hour each
    throttle, keys, instances = monthly_cost(Traffic(1e9), Inputs(), PRICES, Ranking.ENDPOINT).warnings
    assert "342 API requests/s" in throttle
    assert "need 30 API keys" in keys
    assert f"needs {0.42e9 / 60_000 / 730:,.1f} instances" in instances


def test_with_the_measured_figures_the_endpoint_never_pays_off() -> None:
    c = crossover(Traffic(1e7), Inputs(), PRICES)
    assert c.requests_per_month is None
    assert "waiting for the endpoint" in c.reason
    # 42 % of requests are ranked: 0.42 x 15 ms in process vs 0.42 x 20 ms waiting (+ 10 kB of data)
    assert c.in_process_usd_per_million == pytest.approx(0.42 * 15 * API_GB * GBS * 1e3)
    data = 0.42 * 10_000 / 1e9 * (0.016 + 0.01) * 1e6
    assert c.with_endpoint_usd_per_million == pytest.approx(0.42 * 20 * API_GB * GBS * 1e3 + data)
    assert c.endpoint_fixed_usd == pytest.approx(730 * 1.408 + 2 * 730 * 0.01)
    for n in (1e6, 1e8, 1e10):
        lam = monthly_cost(Traffic(n), Inputs(), PRICES, Ranking.LAMBDA).monthly_usd
        end = monthly_cost(Traffic(n), Inputs(), PRICES, Ranking.ENDPOINT).monthly_usd
        assert end > lam


HEAVY_RANKER = {"recommend_ms": "2005.9", "rank_ms": "2000", "endpoint_model_ms": "5"}


def test_a_two_second_ranker_crosses_over_while_the_minimum_holds_the_load() -> None:
    inputs = with_values(Inputs(), HEAVY_RANKER)
    traffic = Traffic(1e7, RECOMMENDATIONS_ONLY, cache_hit_rate=0.0)
    c = crossover(traffic, inputs, PRICES)
    # in process: 2005.9 + 8 ms of round trips = 2014 ms billed; on the endpoint 5.9 + 5 + 5 + 8 = 24 ms
    a = 2014 * API_GB * GBS / 1000
    b = 24 * API_GB * GBS / 1000 + 10_000 / 1e9 * (0.016 + 0.01)
    fixed = 730 * 1.408 + 2 * 730 * 0.01
    assert c.requests_per_month == pytest.approx(fixed / (a - b))  # about 22.9M, below 730 h x 60,000 calls
    assert c.reason == "the minimum instances hold the load there"
    _assert_cheaper_from(c.requests_per_month, traffic, inputs)


def test_past_the_minimum_the_crossover_pays_for_the_interface_endpoint() -> None:
    # A scaling target just below what the in-process ranking costs per call: the minimum instance fills up
    # before the endpoint pays off, and the interface endpoint is recovered on the thin margin after that.
    inputs = with_values(Inputs(), {**HEAVY_RANKER, "endpoint_invocations_per_instance_minute": "521.5"})
    traffic = Traffic(1e7, RECOMMENDATIONS_ONLY, cache_hit_rate=0.0)
    c = crossover(traffic, inputs, PRICES)
    a = 2014 * API_GB * GBS / 1000
    b = 24 * API_GB * GBS / 1000 + 10_000 / 1e9 * (0.016 + 0.01)
    k = 1.408 / (521.5 * 60)
    assert c.reason == "the endpoint has scaled beyond its minimum there"
    assert c.requests_per_month is not None
    assert c.requests_per_month == pytest.approx(2 * 730 * 0.01 / (a - b - k))
    assert c.requests_per_month > 730 * 521.5 * 60
    _assert_cheaper_from(c.requests_per_month, traffic, inputs)


def test_extra_memory_for_the_in_process_ranker_bills_every_request_at_the_larger_size() -> None:
    base = with_values(Inputs(), HEAVY_RANKER)
    more = with_values(base, {"ranker_extra_memory_mb": "1024"})
    traffic = Traffic(1e7, RECOMMENDATIONS_ONLY, cache_hit_rate=0.0)
    heavier, lighter = crossover(traffic, more, PRICES), crossover(traffic, base, PRICES)
    assert heavier.requests_per_month is not None
    assert lighter.requests_per_month is not None
    assert heavier.requests_per_month < lighter.requests_per_month


def _assert_cheaper_from(n: float | None, traffic: Traffic, inputs: Inputs) -> None:
    assert n is not None
    for volume, endpoint_cheaper in ((0.98 * n, False), (1.02 * n, True), (10 * n, True)):
        month = Traffic(volume, traffic.mix, traffic.cache_hit_rate)
        lam = monthly_cost(month, inputs, PRICES, Ranking.LAMBDA).monthly_usd
        end = monthly_cost(month, inputs, PRICES, Ranking.ENDPOINT).monthly_usd
        assert (end < lam) is endpoint_cheaper, (volume, lam, end)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_month": -1.0}, "requests_per_month must be a finite number >= 0"),
        ({"requests_per_month": 1.0, "cache_hit_rate": 1.5}, r"cache_hit_rate must lie in \[0, 1\]"),
        ({"requests_per_month": 1.0, "mix": {"browse": 1.0}}, "unknown request kind"),
        ({"requests_per_month": 1.0, "mix": {"search": 0.5}}, "must sum to 1"),
    ],
)
def test_bad_traffic_is_refused_with_the_field_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Traffic(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank_mss": "1"}, "unknown input 'rank_mss'"),
        ({"api_memory_mb": "1.5"}, "input api_memory_mb: '1.5' is not an integer"),
        ({"rank_ms": "-1"}, "input rank_ms: must be a finite number >= 0"),
        ({"cold_start_share": "2"}, r"input cold_start_share: must lie in \[0, 1\]"),
        ({"endpoint_instance_type": " "}, "input endpoint_instance_type: must not be empty"),
    ],
)
def test_bad_input_values_are_refused_with_the_input_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_values(Inputs(), values)
