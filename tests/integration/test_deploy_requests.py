"""The exact SageMaker and SSM requests of ``deploy`` and ``rollback``, with ``botocore.stub.Stubber``.

moto has no UpdateEndpoint, so the blue/green update requests are pinned here: the Stubber fails on any
call not expected with exactly these parameters, botocore validates every request against the service
model, and ``assert_valid_request`` adds the model's maximums, enums and patterns.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from tests.integration.aws_requests import assert_valid_request

from shoprec.artifacts.bundle import MANIFEST, read_manifest
from shoprec.deploy.endpoints import VARIANT, AwsClients, EndpointSpec, deploy, rollback
from shoprec.deploy.errors import DeploymentError

ROLE = "arn:aws:iam::123456789012:role/shoprec-sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shoprec-ranker:2.0"
OLD = "sha256:" + "a" * 64
PARAMETER = "/shoprec/prod/model-version"


@pytest.fixture
def stubbed() -> Iterator[tuple[AwsClients, dict[str, Stubber]]]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    clients = AwsClients(
        sagemaker=session.client("sagemaker", endpoint_url="https://sagemaker.invalid"),
        s3=session.client("s3", endpoint_url="https://s3.invalid"),
        ssm=session.client("ssm", endpoint_url="https://ssm.invalid"),
    )
    stubs = {name: Stubber(getattr(clients, name)) for name in ("sagemaker", "s3", "ssm")}
    for stub in stubs.values():
        stub.activate()
    yield clients, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def expect(
    stub: Stubber, service: str, operation: str, response: dict[str, Any], params: dict[str, Any]
) -> None:
    """Expect exactly ``params``; they must also satisfy the service model's constraints."""
    if ANY not in params.values():
        assert_valid_request(service, operation, params)
    stub.add_response(_snake(operation), response, params)


def missing(stub: Stubber, operation: str, params: dict[str, Any]) -> None:
    stub.add_client_error(
        _snake(operation), "ValidationException", f"Could not find {operation}", 400, expected_params=params
    )


def stub_update(
    stubs: dict[str, Stubber], bundle_dir: Path, update: dict[str, Any], running_instances: int = 2
) -> str:
    """Stub everything ``deploy`` asks before UpdateEndpoint, then UpdateEndpoint with exactly ``update``;
    returns the published URL of the bundle's version."""
    manifest_bytes = (bundle_dir / MANIFEST).read_bytes()
    digits = read_manifest(bundle_dir).model_version.removeprefix("sha256:")
    s3, sm = stubs["s3"], stubs["sagemaker"]
    s3.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(manifest_bytes), len(manifest_bytes))},
        {"Bucket": "artifacts", "Key": f"models/{digits}/manifest.json"},
    )
    s3.add_response("head_object", {}, {"Bucket": "artifacts", "Key": f"models/{digits}/model.tar.gz"})
    running = _endpoint("shoprec-ranker", "shoprec-ranker-aaaaaaaaaaaa-000000")
    running["ProductionVariants"][0]["CurrentInstanceCount"] = running_instances
    expect(sm, "sagemaker", "DescribeEndpoint", running, {"EndpointName": "shoprec-ranker"})
    expect(
        sm,
        "sagemaker",
        "DescribeEndpointConfig",
        {**_config("shoprec-ranker-aaaaaaaaaaaa-000000", "m"), "ProductionVariants": [_variant("m")]},
        {"EndpointConfigName": "shoprec-ranker-aaaaaaaaaaaa-000000"},
    )
    missing(sm, "DescribeModel", {"ModelName": ANY})
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:eu-west-1:123456789012:model/m"}, None)
    missing(sm, "DescribeEndpointConfig", {"EndpointConfigName": ANY})
    sm.add_response(
        "create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:eu-west-1:123456789012:x/c"}, None
    )
    assert_valid_request("sagemaker", "UpdateEndpoint", {**update, "EndpointConfigName": "c"})
    sm.add_response(
        "update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/e"}, update
    )
    return f"s3://artifacts/models/{digits}"


def test_an_update_is_a_blue_green_canary_with_auto_rollback(
    stubbed: tuple[AwsClients, dict[str, Stubber]], bundle_dir: Path
) -> None:
    clients, stubs = stubbed
    update = {
        "EndpointName": "shoprec-ranker",
        "EndpointConfigName": ANY,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                    "WaitIntervalInSeconds": 1200,
                },
                "TerminationWaitInSeconds": 600,
                "MaximumExecutionTimeoutInSeconds": 1800 + 2 * 1200 + 600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "shoprec-5xx"}]},
        },
    }
    url = stub_update(stubs, bundle_dir, update)
    spec = EndpointSpec(
        endpoint="shoprec-ranker",
        image=IMAGE,
        role=ROLE,
        instance_type="ml.g5.xlarge",
        instance_count=10,
        weight=0.1,
        bake_minutes=20,
        termination_wait_minutes=10,
        alarms=("shoprec-5xx",),
    )

    result = deploy(url, spec, clients=clients)

    assert result.action == "updating"
    assert result.canary_share == pytest.approx(0.1)
    assert result.model_name.startswith(f"shoprec-ranker-{url[-64:][:12]}-")
    assert len(result.endpoint_config_name) <= 63


def test_without_an_instance_count_the_running_fleet_is_kept_and_the_canary_share_is_honest(
    stubbed: tuple[AwsClients, dict[str, Stubber]], bundle_dir: Path
) -> None:
    clients, stubs = stubbed
    update = {
        "EndpointName": "shoprec-ranker",
        "EndpointConfigName": ANY,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 300,
                "MaximumExecutionTimeoutInSeconds": 1800 + 2 * 600 + 300,
            }
        },
        "RetainAllVariantProperties": True,
        "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
    }
    url = stub_update(stubs, bundle_dir, update, running_instances=3)
    spec = EndpointSpec(endpoint="shoprec-ranker", image=IMAGE, role=ROLE, weight=0.1)

    result = deploy(url, spec, clients=clients)

    # 10 % of 3 instances rounds to one instance: a third of the traffic, and the result says so.
    assert result.canary_share == pytest.approx(1 / 3)


def test_rollback_returns_to_the_previous_version_all_at_once(
    stubbed: tuple[AwsClients, dict[str, Stubber]],
) -> None:
    clients, stubs = stubbed
    sm, ssm = stubs["sagemaker"], stubs["ssm"]
    new = "sha256:" + "b" * 64
    current_config = "shoprec-ranker-bbbbbbbbbbbb-111111"
    old_config = "shoprec-ranker-aaaaaaaaaaaa-222222"
    expect(
        sm,
        "sagemaker",
        "DescribeEndpoint",
        _endpoint("shoprec-ranker", current_config),
        {"EndpointName": "shoprec-ranker"},
    )
    expect(
        sm,
        "sagemaker",
        "DescribeEndpointConfig",
        _config(current_config, "shoprec-ranker-bbbbbbbbbbbb-333333"),
        {"EndpointConfigName": current_config},
    )
    expect(
        sm,
        "sagemaker",
        "DescribeModel",
        _model("shoprec-ranker-bbbbbbbbbbbb-333333", new),
        {"ModelName": "shoprec-ranker-bbbbbbbbbbbb-333333"},
    )
    history = {
        "Parameters": [{"Name": PARAMETER, "Value": v, "Version": i} for i, v in enumerate([OLD, new], 1)]
    }
    expect(ssm, "ssm", "GetParameterHistory", history, {"Name": PARAMETER})  # status reads the served version
    expect(ssm, "ssm", "GetParameterHistory", history, {"Name": PARAMETER})  # rollback finds the previous one
    expect(
        sm,
        "sagemaker",
        "ListEndpointConfigs",
        {"EndpointConfigs": [_summary(old_config)]},
        {
            "NameContains": "shoprec-ranker-aaaaaaaaaaaa-",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        },
    )
    expect(
        sm,
        "sagemaker",
        "UpdateEndpoint",
        {"EndpointArn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/shoprec-ranker"},
        {
            "EndpointName": "shoprec-ranker",
            "EndpointConfigName": old_config,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                }
            },
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
        },
    )
    expect(
        ssm,
        "ssm",
        "PutParameter",
        {"Version": 3},
        {
            "Name": PARAMETER,
            "Value": OLD.removeprefix("sha256:"),  # the version's folder name, as the stack writes it
            "Type": "String",
            "Overwrite": True,
            "Description": "shoprec: the model version the online services serve",
        },
    )

    result = rollback("shoprec-ranker", PARAMETER, clients=clients)

    assert (result.from_version, result.to_version) == (new, OLD)
    assert result.endpoint_updating
    assert result.parameter_changed


def test_an_update_during_another_update_is_refused(stubbed: tuple[AwsClients, dict[str, Stubber]]) -> None:
    clients, stubs = stubbed
    sm = stubs["sagemaker"]
    sm.add_response(
        "describe_endpoint",
        _endpoint("shoprec-ranker", "c", status="Updating"),
        {"EndpointName": "shoprec-ranker"},
    )
    sm.add_response("describe_endpoint_config", _config("c", "m"), {"EndpointConfigName": "c"})
    sm.add_response("describe_model", _model("m", OLD), {"ModelName": "m"})
    stubs["ssm"].add_response("get_parameter_history", {"Parameters": []}, {"Name": PARAMETER})
    with pytest.raises(DeploymentError, match="Updating"):
        rollback("shoprec-ranker", PARAMETER, clients=clients)


@pytest.mark.parametrize(
    ("count", "weight", "routing"),
    [
        (
            2,
            0.1,
            {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 600,
            },
        ),
        (
            20,
            0.25,
            {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 5},
                "WaitIntervalInSeconds": 600,
            },
        ),
        (1, 0.0, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}),
    ],
)
def test_the_canary_is_a_whole_number_of_instances(
    count: int, weight: float, routing: dict[str, Any]
) -> None:
    spec = EndpointSpec(endpoint="e", image=IMAGE, role=ROLE, weight=weight)
    config = spec.deployment_config(count)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing
    assert "AutoRollbackConfiguration" not in config  # no alarms, no auto-rollback block (it needs >= 1)
    assert_valid_request(
        "sagemaker",
        "UpdateEndpoint",
        {"EndpointName": "e", "EndpointConfigName": "c", "DeploymentConfig": config},
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance_count": 1, "weight": 0.1}, "more than the half"),
        ({"weight": 0.6}, "--weight"),
        ({"bake_minutes": 61}, "--bake-minutes"),
        ({"endpoint": "under_score"}, "--endpoint"),
        ({"endpoint": "x" * 44}, "--endpoint"),
        ({"alarms": tuple(f"a{i}" for i in range(11))}, "--alarm"),
    ],
)
def test_impossible_deployments_are_refused_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    def plan() -> dict[str, Any]:
        spec = EndpointSpec(**{"endpoint": "e", "image": IMAGE, "role": ROLE, **kwargs})
        return spec.deployment_config(spec.instance_count or 2)

    with pytest.raises(DeploymentError, match=message):
        plan()


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _endpoint(name: str, config: str, status: str = "InService") -> dict[str, Any]:
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{name}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
        "ProductionVariants": [{"VariantName": VARIANT, "CurrentWeight": 1.0, "CurrentInstanceCount": 2}],
    }


def _config(name: str, model: str) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/{name}",
        "ProductionVariants": [{"VariantName": VARIANT, "ModelName": model}],
        "CreationTime": "2026-01-01T00:00:00Z",
    }


def _variant(model: str) -> dict[str, Any]:
    return {
        "VariantName": VARIANT,
        "ModelName": model,
        "InstanceType": "ml.g5.xlarge",
        "InitialInstanceCount": 2,
    }


def _model(name: str, version: str) -> dict[str, Any]:
    return {
        "ModelName": name,
        "ModelArn": f"arn:aws:sagemaker:eu-west-1:123456789012:model/{name}",
        "PrimaryContainer": {"Image": IMAGE, "Environment": {"SHOPREC_ENDPOINT_MODEL_VERSION": version}},
        "CreationTime": "2026-01-01T00:00:00Z",
    }


def _summary(name: str) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/{name}",
        "CreationTime": "2026-01-01T00:00:00Z",
    }
