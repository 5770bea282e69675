"""The cost model's stack figures are the template's and the settings' own: a change to template.yaml (a
memory size, the batch size, the endpoint's instance type or scaling target, a new interface endpoint)
fails here until the model follows it."""

from __future__ import annotations

from typing import Any

from tests.integration.template_file import load_template, props

from shoprec.adapters.aws.redis_cache import GENERATION_TTL_S
from shoprec.cost.inputs import Stack
from shoprec.settings import Settings

STACK = Stack()
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _default(parameter: str) -> Any:
    return TEMPLATE["Parameters"][parameter]["Default"]


def test_function_memory_and_architecture_are_the_templates() -> None:
    globals_ = TEMPLATE["Globals"]["Function"]
    assert props(RESOURCES, "ApiFunction")["MemorySize"] == STACK.api_memory_mb
    assert "MemorySize" not in props(RESOURCES, "IngestFunction")
    assert globals_["MemorySize"] == STACK.ingest_memory_mb
    assert globals_["Architectures"] == [STACK.architecture]


def test_the_ingest_event_source_batches_as_modelled() -> None:
    queue = props(RESOURCES, "IngestFunction")["Events"]["Queue"]["Properties"]
    assert queue["BatchSize"] == STACK.ingest_batch_size
    assert queue["MaximumBatchingWindowInSeconds"] == STACK.ingest_batch_window_s


def test_the_api_function_has_no_provisioned_concurrency() -> None:
    # The model bills on-demand invocations and cold starts only.
    api = props(RESOURCES, "ApiFunction")
    assert "ProvisionedConcurrencyConfig" not in api
    assert not [r for r in RESOURCES.values() if r["Type"] == "AWS::Lambda::ProvisionedConcurrencyConfig"]


def test_interface_endpoints_and_availability_zones_are_counted() -> None:
    interface = [
        name
        for name, r in RESOURCES.items()
        if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Interface"
    ]
    with_endpoint = [n for n in interface if RESOURCES[n].get("Condition") == "CreateRankerVpcEndpoint"]
    assert len(interface) - len(with_endpoint) == STACK.interface_endpoints
    assert len(with_endpoint) == 1  # the SageMaker runtime endpoint, priced only with --ranking endpoint
    for name in interface:
        assert len(props(RESOURCES, name)["SubnetIds"]) == STACK.availability_zones


def test_the_api_limits_are_the_templates() -> None:
    assert _default("ApiThrottleRateLimit") == STACK.api_rate_limit_per_s
    assert _default("ApiQuotaPerDay") == STACK.api_quota_per_key_day


def test_the_web_acl_has_the_modelled_rules() -> None:
    assert len(props(RESOURCES, "WebAcl")["Rules"]) == STACK.waf_rules


def test_the_endpoint_defaults_are_the_templates() -> None:
    assert _default("EndpointInstanceType") == STACK.endpoint_instance_type
    assert _default("EndpointMinInstances") == STACK.endpoint_min_instances
    assert _default("EndpointMaxInstances") == STACK.endpoint_max_instances
    assert _default("EndpointInvocationsPerInstanceTarget") == STACK.endpoint_invocations_per_instance_minute


def test_the_state_tables_are_on_demand_and_the_cache_is_serverless_valkey() -> None:
    for table in ("StateTable", "IdempotencyTable"):
        assert props(RESOURCES, table)["BillingMode"] == "PAY_PER_REQUEST"
    assert RESOURCES["Cache"]["Type"] == "AWS::ElastiCache::ServerlessCache"
    assert props(RESOURCES, "Cache")["Engine"] == "valkey"


def test_refresh_intervals_and_ttls_are_the_serving_defaults() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["cache_ttl_s"] == STACK.cache_ttl_s
    assert defaults["catalog_refresh_s"] == STACK.catalog_refresh_s
    assert defaults["rules_refresh_s"] == STACK.rules_refresh_s
    assert STACK.generation_ttl_s == GENERATION_TTL_S
