"""Rollout planning without AWS: from a stack's description and a step's options to the parameters the
step sets, the alarms that guard it, and the refusals that stop it."""

from __future__ import annotations

from typing import Any

import pytest

from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import PublishedModel
from shoprec.deploy.rollout_plan import (
    BAKE_SECONDS,
    CANARY_INSTANCES,
    CHALLENGER_MODEL_DATA_URL,
    CHALLENGER_WEIGHT,
    DEPLOY_ALARMS,
    GUARDRAILS,
    MAX_EXECUTION_SECONDS,
    MIN_INSTANCES,
    MODEL_DATA_URL,
    MODEL_VERSION,
    PRIMARY_WEIGHT,
    PROMOTE_ALARMS,
    RANKER_IMAGE,
    ROLLOUT_PARAMETERS,
    TERMINATION_WAIT_SECONDS,
    VERSION_ENV,
    RolloutSpec,
    RolloutStatus,
    Stack,
    changed,
    config_name,
    failure_reasons,
    live_fleet_of,
    model_version_of,
    plan_deploy,
    plan_promote,
    plan_rollback,
    promote_target,
    require_idle,
    require_in_step,
    require_rollback_possible,
    rollback_target,
    update_request,
    version_of,
)

BUCKET = "shoprec-artifacts"
MODELS = f"s3://{BUCKET}/models"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shoprec-ranker:1.0"
HEX = {n: f"{n}" * 64 for n in "abc"}
VERSION = {n: f"sha256:{h}" for n, h in HEX.items()}
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/shoprec-dev/1"


def tarball(n: str) -> str:
    return f"{MODELS}/{HEX[n]}/model.tar.gz"


def published(n: str, models: str = MODELS) -> PublishedModel:
    return PublishedModel(version=VERSION[n], url=f"{models}/{HEX[n]}")


def stack(
    *, endpoint: bool = True, challenger: str = "", status: str = "UPDATE_COMPLETE", **parameters: str
) -> Stack:
    """A stack as DescribeStacks describes it: serving and running version a, a fleet of 4 by default."""
    values = dict.fromkeys(ROLLOUT_PARAMETERS, "")
    values |= {
        MODEL_VERSION: HEX["a"],
        MODEL_DATA_URL: tarball("a") if endpoint else "",
        CHALLENGER_MODEL_DATA_URL: challenger,
        PRIMARY_WEIGHT: "1",
        CHALLENGER_WEIGHT: "0",
        RANKER_IMAGE: IMAGE,
        GUARDRAILS: "true",
        CANARY_INSTANCES: "1",
        BAKE_SECONDS: "600",
        TERMINATION_WAIT_SECONDS: "300",
        MAX_EXECUTION_SECONDS: "3300",
        MIN_INSTANCES: "2",
        "Stage": "dev",
    }
    values |= parameters
    outputs = {"ArtifactBucketName": BUCKET, "ModelVersionParameterName": "/shoprec/dev/model-version"}
    if endpoint:
        outputs["RankerEndpointName"] = "shoprec-dev-ranker"
    described: dict[str, Any] = {
        "StackName": "shoprec-dev",
        "StackId": STACK_ID,
        "StackStatus": status,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
    }
    return Stack.from_description(described)


def no_fleet() -> int:
    raise AssertionError("the live fleet was asked for, but this plan does not depend on it")


# --- deploy --------------------------------------------------------------------------------------------


def test_a_deploy_on_a_running_endpoint_is_a_canary_sized_on_the_live_fleet() -> None:
    plan = plan_deploy(stack(), RolloutSpec(weight=0.25), published("b"), live_fleet=lambda: 8)

    assert plan.version == VERSION["b"]
    assert plan.changes == {MODEL_DATA_URL: tarball("b"), CANARY_INSTANCES: "2"}
    assert (plan.fleet, plan.canary_instances) == (8, 2)
    assert plan.alarm_roles == DEPLOY_ALARMS
    assert plan.monitor_minutes == 10  # the bake time, by default


def test_the_first_deploy_creates_the_endpoint_all_at_once_without_asking_for_the_fleet() -> None:
    plan = plan_deploy(stack(endpoint=False), RolloutSpec(), published("b"), live_fleet=no_fleet)

    assert plan.changes[MODEL_DATA_URL] == tarball("b")
    assert plan.changes[CANARY_INSTANCES] == "0"
    assert plan.fleet is None
    assert any("creates the endpoint" in note for note in plan.notes)


def test_deploying_the_running_version_again_changes_nothing() -> None:
    plan = plan_deploy(stack(), RolloutSpec(bake_minutes=1), published("a"), live_fleet=lambda: 4)

    # Only the Deployment* parameters would differ: no update of the endpoint to its own config.
    assert plan.changes == {}
    assert plan.canary_instances is None


def test_a_challenger_gets_its_weight_and_a_first_one_turns_the_guardrails_off() -> None:
    plan = plan_deploy(stack(), RolloutSpec(weight=0.2, challenger=True), published("b"), live_fleet=no_fleet)

    assert plan.changes[CHALLENGER_MODEL_DATA_URL] == tarball("b")
    assert (plan.changes[PRIMARY_WEIGHT], plan.changes[CHALLENGER_WEIGHT]) == ("0.8", "0.2")
    assert plan.changes[GUARDRAILS] == "false"  # the variants change: SageMaker's guardrails cannot apply
    assert MODEL_DATA_URL not in plan.changes
    assert plan.notes


def test_a_challenger_needs_an_endpoint() -> None:
    with pytest.raises(DeploymentError, match="deploy a primary version before a challenger"):
        plan_deploy(stack(endpoint=False), RolloutSpec(challenger=True), published("b"), live_fleet=no_fleet)


def test_ending_a_challenger_removes_it_all_at_once() -> None:
    plan = plan_deploy(
        stack(challenger=tarball("c")), RolloutSpec(end_challenger=True), published("b"), live_fleet=no_fleet
    )

    assert plan.changes[CHALLENGER_MODEL_DATA_URL] == ""
    assert plan.changes[GUARDRAILS] == "false"
    assert plan.changes[CANARY_INSTANCES] == "0"


def test_a_version_outside_the_stacks_bucket_is_refused() -> None:
    with pytest.raises(DeploymentError, match="not in the stack's artifact bucket"):
        plan_deploy(stack(), RolloutSpec(), published("b", "s3://elsewhere/models"), live_fleet=lambda: 4)


def test_a_deploy_without_an_image_is_refused() -> None:
    with pytest.raises(DeploymentError, match="--image"):
        plan_deploy(stack(**{RANKER_IMAGE: ""}), RolloutSpec(), published("b"), live_fleet=lambda: 4)


def test_a_canary_of_more_than_half_the_fleet_is_refused() -> None:
    with pytest.raises(DeploymentError, match="more than the half"):
        plan_deploy(stack(), RolloutSpec(weight=0.1), published("b"), live_fleet=lambda: 1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"weight": 0.6}, "--weight must be within"),
        ({"weight": 0, "challenger": True}, "for a challenger"),
        ({"challenger": True, "end_challenger": True}, "exclude each other"),
        ({"bake_minutes": 61}, "--bake-minutes"),
        ({"monitor_minutes": 181}, "--monitor-minutes"),
    ],
)
def test_out_of_range_options_are_refused_when_the_spec_is_made(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        RolloutSpec(**spec)


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"])
def test_a_busy_or_broken_stack_is_not_updated(status: str) -> None:
    with pytest.raises(DeploymentError, match=status):
        require_idle(stack(status=status))


# --- promote -------------------------------------------------------------------------------------------


def test_promote_serves_the_endpoints_version_guarded_by_the_api_alarms() -> None:
    running_b = stack(**{MODEL_DATA_URL: tarball("b")})

    target = promote_target(running_b, None)
    plan = plan_promote(running_b, target, monitor_minutes=5)

    assert target == VERSION["b"]
    assert plan.changes == {MODEL_VERSION: HEX["b"]}
    assert plan.alarm_roles == PROMOTE_ALARMS
    assert plan.monitor_minutes == 5


def test_promote_refuses_a_version_the_endpoint_does_not_serve() -> None:
    with pytest.raises(DeploymentError, match="deploy that version first"):
        promote_target(stack(), VERSION["b"])


def test_without_an_endpoint_promote_needs_the_version_named() -> None:
    with pytest.raises(DeploymentError, match="name the version to serve"):
        promote_target(stack(endpoint=False), None)
    assert promote_target(stack(endpoint=False), HEX["c"]) == VERSION["c"]


def test_promote_refuses_an_endpoint_that_sagemaker_rolled_back() -> None:
    state = RolloutStatus(
        stack="shoprec-dev",
        stack_status="UPDATE_COMPLETE",
        stack_status_reason="",
        served_version=VERSION["a"],
        served_parameter="/shoprec/dev/model-version",
        served_now=VERSION["a"],
        endpoint="shoprec-dev-ranker",
        live_config="config-old",
        stack_config="arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/Config-New",
    )

    with pytest.raises(DeploymentError, match="rolled the deployment back"):
        require_in_step(stack(), state)


def test_promoting_what_is_served_already_changes_nothing() -> None:
    assert plan_promote(stack(), VERSION["a"], monitor_minutes=5).changes == {}


# --- rollback ------------------------------------------------------------------------------------------


def test_rollback_goes_to_the_newest_earlier_content_hash_version() -> None:
    running_c = stack(**{MODEL_DATA_URL: tarball("c")})

    target = rollback_target(running_c, ["v1", VERSION["a"], VERSION["b"], VERSION["c"]])
    plan = plan_rollback(running_c, target, tarball("b"))

    assert target == VERSION["b"]
    assert plan.changes == {
        MODEL_VERSION: HEX["b"],
        MODEL_DATA_URL: tarball("b"),
        GUARDRAILS: "false",
        CANARY_INSTANCES: "0",
        BAKE_SECONDS: "0",
        TERMINATION_WAIT_SECONDS: "0",
    }
    assert plan.alarm_roles == ()  # going back must not be undone


def test_rollback_without_an_endpoint_changes_the_served_version_only() -> None:
    plan = plan_rollback(stack(endpoint=False), VERSION["b"], None)

    assert plan.changes == {MODEL_VERSION: HEX["b"]}


def test_rollback_with_nothing_earlier_asks_for_a_version() -> None:
    with pytest.raises(DeploymentError, match="no earlier version"):
        rollback_target(stack(), ["v1", VERSION["a"]])
    assert rollback_target(stack(), [], HEX["c"]) == VERSION["c"]


def test_rollback_during_an_update_points_at_cloudformations_cancel() -> None:
    with pytest.raises(DeploymentError, match="cancel-update-stack"):
        require_rollback_possible(stack(status="UPDATE_IN_PROGRESS"))


# --- stack update and descriptions ---------------------------------------------------------------------


def test_parameters_compare_as_numbers_and_unknown_ones_are_refused() -> None:
    assert changed(stack(), {PRIMARY_WEIGHT: "1.0", CHALLENGER_WEIGHT: "0.1"}) == {CHALLENGER_WEIGHT: "0.1"}
    with pytest.raises(DeploymentError, match=r"older template\.yaml"):
        changed(stack(), {"NoSuchParameter": "1"})


def test_the_update_request_sets_the_changes_keeps_the_rest_and_arms_the_alarms() -> None:
    request = update_request(
        stack(), {MODEL_VERSION: HEX["b"]}, alarms=["shoprec-dev-api-5xx"], monitor_minutes=7
    )

    assert request["UsePreviousTemplate"] is True
    given = {p["ParameterKey"]: p for p in request["Parameters"]}
    assert given[MODEL_VERSION] == {"ParameterKey": MODEL_VERSION, "ParameterValue": HEX["b"]}
    assert given[MODEL_DATA_URL] == {"ParameterKey": MODEL_DATA_URL, "UsePreviousValue": True}
    assert request["RollbackConfiguration"] == {
        "RollbackTriggers": [
            {
                "Arn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:shoprec-dev-api-5xx",
                "Type": "AWS::CloudWatch::Alarm",
            }
        ],
        "MonitoringTimeInMinutes": 7,
    }
    assert "RollbackConfiguration" not in update_request(stack(), {}, alarms=[], monitor_minutes=7)


def test_the_live_fleet_is_the_primary_variants_count_else_the_stacks_minimum() -> None:
    running = {"ProductionVariants": [{"VariantName": "primary", "CurrentInstanceCount": 6}]}

    assert live_fleet_of(stack(), running) == 6
    assert live_fleet_of(stack(), {"ProductionVariants": []}) == 2


def test_failure_reasons_are_those_of_the_latest_update_oldest_first() -> None:
    events = [  # newest first, as DescribeStackEvents lists them
        {"LogicalResourceId": "shoprec-dev", "ResourceStatus": "UPDATE_ROLLBACK_IN_PROGRESS"},
        {"LogicalResourceId": "Endpoint", "ResourceStatus": "UPDATE_FAILED", "ResourceStatusReason": "late"},
        {"LogicalResourceId": "Config", "ResourceStatus": "UPDATE_FAILED", "ResourceStatusReason": "early"},
        {"LogicalResourceId": "shoprec-dev", "ResourceStatus": "UPDATE_IN_PROGRESS"},
        {"LogicalResourceId": "Old", "ResourceStatus": "UPDATE_FAILED", "ResourceStatusReason": "before"},
    ]

    assert failure_reasons(events, "shoprec-dev") == ["Config: early", "Endpoint: late"]


def test_versions_are_read_from_model_data_urls_models_and_config_arns() -> None:
    assert version_of(tarball("b")) == VERSION["b"]
    assert version_of("") is None
    with pytest.raises(DeploymentError, match=r"model\.tar\.gz"):
        version_of(f"{MODELS}/{HEX['b']}/other.tar.gz")
    assert model_version_of({"PrimaryContainer": {"Environment": {VERSION_ENV: HEX["c"]}}}) == VERSION["c"]
    assert model_version_of({"PrimaryContainer": {"Environment": {VERSION_ENV: "v1"}}}) is None
    assert config_name("arn:aws:sagemaker:eu-west-1:1:endpoint-config/Config-New") == "config-new"
    assert stack().endpoint_version == VERSION["a"]
    assert stack().served_version == VERSION["a"]
