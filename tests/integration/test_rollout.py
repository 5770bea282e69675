"""Rollouts through the stack (``shoprec sagemaker deploy/promote/rollback/status``) against moto.

The stack is the double of ``stack_double.py``: moto's CloudFormation with template.yaml's parameters, and
an emulator for the resources moto cannot update (the endpoint's model and config, the SSM parameter's
in-place update). Every request the code sends is recorded and checked against botocore's service model;
the ``UpdateStack`` requests are asserted whole: they are the interface to the stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from tests.integration.aws_requests import RequestRecorder
from tests.integration.model_versions import derive_version
from tests.integration.stack_double import StackEmulator, double_template
from typer.testing import CliRunner

from shoprec.adapters.aws.clients import aws_client
from shoprec.cli import app
from shoprec.deploy import rollout
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import publish_bundle
from shoprec.deploy.rollout import AwsClients, RolloutSpec, deploy, promote, rollback, rollout_status

BUCKET = "shoprec-rollout"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shoprec-ranker:1.0"
STAGE = "dev"
ALARMS = rollout.alarm_names(STAGE)
_names = count()


@dataclass(frozen=True)
class World:
    clients: AwsClients
    recorder: RequestRecorder
    emulator: StackEmulator
    versions: tuple[str, str, str]
    stack: str

    def url(self, i: int) -> str:
        return f"s3://{BUCKET}/models/{self.versions[i].removeprefix('sha256:')}"

    def tarball(self, i: int) -> str:
        return f"{self.url(i)}/model.tar.gz"

    def parameters(self) -> dict[str, str]:
        return rollout.read_stack(self.stack, clients=self.clients).parameters

    def updates(self) -> list[dict[str, Any]]:
        return self.recorder.of("UpdateStack")

    def set_by(self, request: dict[str, Any]) -> dict[str, str]:
        """The parameters an UpdateStack request sets (the rest must say UsePreviousValue)."""
        given = {
            p["ParameterKey"]: p["ParameterValue"] for p in request["Parameters"] if "ParameterValue" in p
        }
        kept = {p["ParameterKey"] for p in request["Parameters"] if p.get("UsePreviousValue")}
        assert not given.keys() & kept
        assert given.keys() | kept == set(double_template(BUCKET)["Parameters"])
        return given


@pytest.fixture(scope="module")
def published(
    moto_server: str, bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, ...]:
    s3 = aws_client("s3", timeout_s=30)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="somewhere-else")
    bundles = [bundle_dir]
    for note in ("second", "third"):
        out = tmp_path_factory.mktemp(note) / "bundle"
        derive_version(bundle_dir, out, note)
        bundles.append(out)
    return tuple(publish_bundle(b, f"s3://{BUCKET}/models", s3=s3).version for b in bundles)


@pytest.fixture
def world(published: tuple[str, str, str]) -> Iterator[World]:
    """A fresh stack (no endpoint yet, ModelVersion v1) and the clients the code uses, recorded."""
    clients = AwsClients.default()
    backdoor = {s: aws_client(s, timeout_s=29) for s in ("cloudformation", "sagemaker", "ssm", "cloudwatch")}
    emulator = StackEmulator(**backdoor)
    emulator.reset(STAGE)
    stack = f"shoprec-rollout-{next(_names)}"
    emulator.create_stack(stack, BUCKET, STAGE, EndpointMinInstances="4")
    recorder = RequestRecorder()
    recorder.fakes["UpdateStack"] = emulator.update_stack
    recorder.fakes["DescribeStackResource"] = emulator.describe_stack_resource
    detach = [
        recorder.attach(getattr(clients, name))
        for name in ("cloudformation", "sagemaker", "ssm", "cloudwatch")
    ]
    yield World(clients, recorder, emulator, published, stack)
    for stop in detach:
        stop()
    recorder.assert_all_valid()


def triggers(*roles: str) -> list[dict[str, str]]:
    return [
        {
            "Arn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARMS[r]}",
            "Type": "AWS::CloudWatch::Alarm",
        }
        for r in roles
    ]


def deployed_and_promoted(world: World, i: int = 0) -> None:
    deploy(world.url(i), RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)
    promote(world.stack, clients=world.clients)


# --- deploy and promote --------------------------------------------------------------------------------


def test_the_first_deploy_creates_the_endpoint_and_a_promotion_serves_its_version(world: World) -> None:
    v1 = world.versions[0]
    change = deploy(world.url(0), RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)
    assert change.applied
    assert "creates the endpoint" in change.notes[0]
    (request,) = world.updates()
    assert request["UsePreviousTemplate"] is True
    assert request["Capabilities"] == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    # Only what changes is sent: no canary (nothing to canary against) and the default waits are the
    # stack's already.
    assert world.set_by(request) == {"ModelDataUrl": world.tarball(0), "RankerImageUri": IMAGE}
    assert world.parameters()["DeploymentCanaryInstances"] == "0"
    # The endpoint's own alarm does not exist before the endpoint: CloudFormation would fail on it.
    assert request["RollbackConfiguration"] == {
        "RollbackTriggers": triggers("api-5xx", "ranker-fallback-rate"),
        "MonitoringTimeInMinutes": 10,
    }
    state = rollout_status(world.stack, clients=world.clients)
    assert state.in_step
    assert [(v.name, v.version) for v in state.variants] == [("primary", v1)]
    assert (state.endpoint_version, state.served_version) == (v1, "v1")  # not promoted yet

    change = promote(world.stack, clients=world.clients)
    assert world.set_by(world.updates()[-1]) == {"ModelVersion": v1.removeprefix("sha256:")}
    assert world.updates()[-1]["RollbackConfiguration"] == {
        "RollbackTriggers": triggers("api-5xx", "ranker-fallback-rate"),
        "MonitoringTimeInMinutes": 5,
    }
    assert world.clients.ssm.get_parameter(Name="/shoprec/dev/model-version")["Parameter"]["Value"] == (
        v1.removeprefix("sha256:")
    )
    assert rollout_status(world.stack, clients=world.clients).served_now == v1


def test_a_new_version_goes_out_as_a_canary_and_the_functions_wait_for_its_promotion(world: World) -> None:
    v1, v2, _ = world.versions
    deployed_and_promoted(world)
    spec = RolloutSpec(weight=0.25, bake_minutes=15)
    change = deploy(world.url(1), spec, stack_name=world.stack, clients=world.clients)
    assert (change.canary_instances, change.fleet) == (1, 4)  # 25 % of the 4 instances running
    request = world.updates()[-1]
    assert world.set_by(request) == {
        "ModelDataUrl": world.tarball(1),
        "DeploymentCanaryInstances": "1",
        "DeploymentBakeSeconds": "900",
        "DeploymentMaxExecutionSeconds": str(1800 + 2 * 900 + 300),
    }
    assert request["RollbackConfiguration"] == {
        "RollbackTriggers": triggers("api-5xx", "ranker-fallback-rate", "ranker-primary-errors"),
        "MonitoringTimeInMinutes": 15,
    }
    state = rollout_status(world.stack, clients=world.clients)
    assert (state.endpoint_version, state.served_now, state.in_step) == (v2, v1, True)
    with pytest.raises(DeploymentError, match="deploy that version first"):
        promote(world.stack, clients=world.clients, version=world.versions[2])
    promote(world.stack, clients=world.clients, version=v2)
    assert rollout_status(world.stack, clients=world.clients).served_now == v2


def test_deploying_what_runs_changes_nothing(world: World) -> None:
    deploy(world.url(0), RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)
    again = deploy(world.url(0), RolloutSpec(weight=0.5), stack_name=world.stack, clients=world.clients)
    assert again.unchanged
    assert not again.applied
    assert len(world.updates()) == 1


def test_a_challenger_takes_its_share_of_the_traffic_until_the_experiment_ends(world: World) -> None:
    v1, v2, _ = world.versions
    deployed_and_promoted(world)
    deploy(
        world.url(1), RolloutSpec(weight=0.2, challenger=True), stack_name=world.stack, clients=world.clients
    )
    assert world.set_by(world.updates()[-1]) == {
        "ChallengerModelDataUrl": world.tarball(1),
        "PrimaryVariantWeight": "0.8",
        "ChallengerVariantWeight": "0.2",
        # A variant appears: SageMaker's guardrails need the same variant names on both sides.
        "DeploymentGuardrails": "false",
    }
    state = rollout_status(world.stack, clients=world.clients)
    assert [(v.name, v.version) for v in state.variants] == [("primary", v1), ("challenger", v2)]
    assert state.challenger_version == v2

    # The challenger won: it becomes the primary, and the experiment ends in the same update.
    deploy(world.url(1), RolloutSpec(end_challenger=True), stack_name=world.stack, clients=world.clients)
    assert world.set_by(world.updates()[-1]) == {
        "ModelDataUrl": world.tarball(1),
        "ChallengerModelDataUrl": "",
    }
    assert world.parameters()["DeploymentGuardrails"] == "false"  # the variants change again
    state = rollout_status(world.stack, clients=world.clients)
    assert [(v.name, v.version) for v in state.variants] == [("primary", v2)]


# --- rollback and a canary SageMaker rolled back -------------------------------------------------------


def test_rollback_after_a_promotion_returns_both_to_the_previous_version_at_once(world: World) -> None:
    v1 = world.versions[0]
    deployed_and_promoted(world, 0)
    deployed_and_promoted(world, 1)
    change = rollback(world.stack, clients=world.clients)
    assert change.version == v1
    request = world.updates()[-1]
    assert world.set_by(request) == {
        "ModelVersion": v1.removeprefix("sha256:"),
        "ModelDataUrl": world.tarball(0),
        "DeploymentGuardrails": "false",  # no canary, no bake and no alarms on the endpoint either
        "DeploymentCanaryInstances": "0",
        "DeploymentBakeSeconds": "0",
        "DeploymentTerminationWaitSeconds": "0",
    }
    assert "RollbackConfiguration" not in request  # going back is never undone by an alarm
    state = rollout_status(world.stack, clients=world.clients)
    assert (state.endpoint_version, state.served_now, state.in_step) == (v1, v1, True)
    assert world.parameters()["ModelVersion"] == v1.removeprefix("sha256:")
    # The next rollout has its guardrails again.
    deploy(world.url(2), RolloutSpec(), stack_name=world.stack, clients=world.clients)
    assert world.set_by(world.updates()[-1])["DeploymentGuardrails"] == "true"


def test_rollback_of_a_version_not_yet_promoted_moves_only_the_endpoint(world: World) -> None:
    v1, _, _ = world.versions
    deployed_and_promoted(world, 0)
    deploy(world.url(1), RolloutSpec(), stack_name=world.stack, clients=world.clients)
    rollback(world.stack, clients=world.clients)
    set_ = world.set_by(world.updates()[-1])
    assert set_["ModelDataUrl"] == world.tarball(0)
    assert "ModelVersion" not in set_
    assert rollout_status(world.stack, clients=world.clients).endpoint_version == v1


def test_a_canary_sagemaker_rolled_back_is_seen_never_promoted_and_rollback_restores_the_stack(
    world: World,
) -> None:
    v1, _, _ = world.versions
    deployed_and_promoted(world, 0)
    first_config = world.emulator.endpoint_config[world.stack]
    deploy(world.url(1), RolloutSpec(), stack_name=world.stack, clients=world.clients)
    # An alarm fired during the bake: SageMaker put the endpoint back on the old fleet by itself.
    sm = world.emulator.sagemaker
    sm.delete_endpoint(EndpointName="shoprec-dev-ranker")
    sm.create_endpoint(EndpointName="shoprec-dev-ranker", EndpointConfigName=first_config)
    state = rollout_status(world.stack, clients=world.clients)
    assert not state.in_step
    assert (state.live_config, state.variants[0].version) == (first_config, v1)
    with pytest.raises(DeploymentError, match="rolled the deployment back"):
        promote(world.stack, clients=world.clients)
    rollback(world.stack, clients=world.clients)
    state = rollout_status(world.stack, clients=world.clients)
    assert state.in_step
    assert state.endpoint_version == v1


# --- without an endpoint -------------------------------------------------------------------------------


def test_without_an_endpoint_promote_names_a_published_version_and_rollback_uses_the_history(
    world: World,
) -> None:
    v1, v2, _ = world.versions
    with pytest.raises(DeploymentError, match="name the version to serve"):
        promote(world.stack, clients=world.clients)
    promote(world.stack, clients=world.clients, version=v1)
    promote(world.stack, clients=world.clients, version=v2)
    assert world.parameters()["ModelVersion"] == v2.removeprefix("sha256:")
    change = rollback(world.stack, clients=world.clients)
    assert change.version == v1
    assert world.set_by(world.updates()[-1]) == {"ModelVersion": v1.removeprefix("sha256:")}
    # The stack's initial "v1" names no content hash: it is never a rollback target.
    rollback(world.stack, clients=world.clients)
    assert world.parameters()["ModelVersion"] == v2.removeprefix("sha256:")
    assert rollout_status(world.stack, clients=world.clients).endpoint is None


def test_an_unpublished_version_is_refused(world: World) -> None:
    with pytest.raises(Exception, match="manifest"):
        promote(world.stack, clients=world.clients, version="sha256:" + "e" * 64)
    assert world.updates() == []


# --- refusals before any update -----------------------------------------------------------------------


def test_refusals_name_what_to_do_and_send_no_update(world: World) -> None:
    with pytest.raises(DeploymentError, match="--image"):
        deploy(world.url(0), RolloutSpec(), stack_name=world.stack, clients=world.clients)
    with pytest.raises(DeploymentError, match="deploy a primary version before a challenger"):
        deploy(
            world.url(0),
            RolloutSpec(image=IMAGE, challenger=True),
            stack_name=world.stack,
            clients=world.clients,
        )
    with pytest.raises(DeploymentError, match="does not exist"):
        deploy(world.url(0), RolloutSpec(image=IMAGE), stack_name="no-such-stack", clients=world.clients)
    with pytest.raises(DeploymentError, match="no earlier version"):
        rollback(world.stack, clients=world.clients)
    assert world.updates() == []


def test_a_canary_larger_than_half_the_fleet_is_refused(world: World) -> None:
    deploy(world.url(0), RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)
    with pytest.raises(DeploymentError, match="more than the half"):
        # 0.5 of 4 rounds to 2 (allowed); of a fleet of 1 it would be the whole fleet.
        RolloutSpec(weight=0.5).canary_instances(1)
    assert RolloutSpec(weight=0.5).canary_instances(4) == 2
    assert RolloutSpec(weight=0.1).canary_instances(4) == 1  # at least one instance
    assert RolloutSpec(weight=0).canary_instances(1) == 0  # all at once


def test_a_stack_being_updated_is_left_alone(world: World) -> None:
    real = world.clients.cloudformation.describe_stacks(StackName=world.stack)

    def busy(_: dict[str, Any]) -> dict[str, Any]:
        return {"Stacks": [{**real["Stacks"][0], "StackStatus": "UPDATE_IN_PROGRESS"}]}

    world.recorder.fakes["DescribeStacks"] = busy
    with pytest.raises(DeploymentError, match="UPDATE_IN_PROGRESS"):
        deploy(world.url(0), RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)
    with pytest.raises(DeploymentError, match="cancel-update-stack"):
        rollback(world.stack, clients=world.clients)
    assert world.updates() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": 0.6}, "within \\[0, 0.5\\]"),
        ({"weight": 0, "challenger": True}, "within \\(0, 0.5\\]"),
        ({"challenger": True, "end_challenger": True}, "exclude each other"),
        ({"bake_minutes": 61}, "--bake-minutes"),
        ({"monitor_minutes": 181}, "--monitor-minutes"),
    ],
)
def test_impossible_rollouts_are_refused_when_described(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DeploymentError, match=message):
        RolloutSpec(**kwargs)


def test_artifacts_outside_the_stacks_bucket_are_refused(world: World, bundle_dir: Path) -> None:
    elsewhere = "s3://somewhere-else/models"
    url = publish_bundle(bundle_dir, elsewhere, s3=world.clients.s3).url
    with pytest.raises(DeploymentError, match="not in the stack's artifact bucket"):
        deploy(url, RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)


def test_artifacts_outside_their_version_folder_are_refused(world: World, bundle_dir: Path) -> None:
    from shoprec.adapters.aws.s3_artifacts import upload_bundle

    elsewhere = f"s3://{BUCKET}/not-a-version"
    upload_bundle(bundle_dir, elsewhere, client=world.clients.s3)
    with pytest.raises(DeploymentError, match=re.escape("models/{version}/")):
        deploy(elsewhere, RolloutSpec(image=IMAGE), stack_name=world.stack, clients=world.clients)


# --- waiting for the stack ---------------------------------------------------------------------------


def test_waiting_reports_the_resources_that_failed_when_the_update_rolled_back(world: World) -> None:
    real = world.clients.cloudformation.describe_stacks(StackName=world.stack)["Stacks"][0]
    states = iter(["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"])
    world.recorder.fakes["DescribeStacks"] = lambda _: {"Stacks": [{**real, "StackStatus": next(states)}]}
    event = {"StackId": real["StackId"], "StackName": world.stack, "Timestamp": "2026-11-29T00:00:00Z"}
    world.recorder.fakes["DescribeStackEvents"] = lambda _: {
        "StackEvents": [  # newest first
            {
                **event,
                "EventId": "4",
                "LogicalResourceId": world.stack,
                "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE",
            },
            {
                **event,
                "EventId": "3",
                "LogicalResourceId": "RankerEndpoint",
                "ResourceStatus": "UPDATE_FAILED",
                "ResourceStatusReason": "Endpoint update rolled back: alarm shoprec-dev-ranker-primary-errors"
                " in ALARM",
            },
            {
                **event,
                "EventId": "2",
                "LogicalResourceId": world.stack,
                "ResourceStatus": "UPDATE_IN_PROGRESS",
            },
            {
                **event,
                "EventId": "1",
                "LogicalResourceId": "Older",
                "ResourceStatus": "UPDATE_FAILED",
                "ResourceStatusReason": "an earlier update",
            },
        ]
    }
    seen: list[str] = []
    with pytest.raises(DeploymentError, match="RankerEndpoint: Endpoint update rolled back") as failed:
        rollout.wait_for_stack(
            world.stack, clients=world.clients, on_status=seen.append, sleep=lambda _: None
        )
    assert "an earlier update" not in str(failed.value)
    assert seen == ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]


# --- the CLI -------------------------------------------------------------------------------------------


def test_the_cli_shows_the_change_and_a_dry_run_changes_nothing(world: World) -> None:
    runner = CliRunner()
    args = ["sagemaker", "deploy", "--stack", world.stack, "--artifacts", world.url(0), "--image", IMAGE]
    result = runner.invoke(app, [*args, "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "would set" in result.output
    assert f"ModelDataUrl: ∅ → {world.tarball(0)}" in result.output
    assert world.updates() == []

    result = runner.invoke(app, [*args, "--wait"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "in step" in result.output
    result = runner.invoke(app, ["sagemaker", "promote", "--stack", world.stack], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    status = runner.invoke(
        app, ["sagemaker", "status", "--stack", world.stack, "--json"], catch_exceptions=False
    )
    assert '"in_step": true' in status.stdout
    assert world.versions[0] in status.stdout

    result = runner.invoke(app, ["sagemaker", "rollback", "--stack", world.stack])
    assert result.exit_code == 2
    assert "no earlier version" in result.output
