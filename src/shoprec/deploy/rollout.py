"""Model rollouts through the stack: deploy a version to the ranking endpoint, promote it, roll it back.

**One owner.** The CloudFormation stack of ``template.yaml`` owns the endpoint's models and the SSM
parameter that names the version the functions serve. These steps change them only by updating the stack's
parameters (``UpdateStack`` with the previous template; every parameter not named keeps its previous
value), and ``sam deploy`` keeps the previous value of each parameter it is not given. So an
infrastructure change never undoes a rollout, and a rollout never leaves the stack describing something
other than what runs. The parameters written here are :data:`ROLLOUT_PARAMETERS`; keep them out of
``infra/samconfig.toml``.

``deploy``    ``ModelDataUrl`` (or ``ChallengerModelDataUrl`` and the variant weights, for an A/B test) →
              CloudFormation replaces the model and the endpoint config, and SageMaker moves the endpoint to
              them with a blue/green deployment: a canary of ``DeploymentCanaryInstances`` watched for
              ``DeploymentBakeSeconds`` by alarms that roll it back (the endpoint's ``DeploymentConfig``).
              CloudFormation's rollback triggers watch the same alarms for a while after the update.
``promote``   ``ModelVersion`` ← the version the endpoint serves → the SSM parameter, which every function
              reads within a minute (Powertools Parameters cache); no function changes.
``rollback``  both back to the previous version (the SSM parameter's history), all at once, no canary.

SageMaker can roll an endpoint deployment back on its own (an alarm) while CloudFormation reports success,
as other infrastructure tools have found; :attr:`RolloutStatus.in_step` compares the endpoint's live config
with the stack's, and ``deploy --wait``, ``promote`` and ``status`` use it.

This module is the steps' I/O: it reads the stack, the endpoint and the alarms, asks
:mod:`shoprec.deploy.rollout_plan` what to change (the rules, pure and tested without AWS) and sends the one
stack update. Every SDK call goes through :func:`_aws`, the one place where an SDK error becomes a domain
error. The plan's names are re-exported here, where the CLI and the tests import them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.ssm_version import SsmModelVersion
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import ensure_model_data, model_url, read_remote_manifest
from shoprec.deploy.rollout_plan import (
    BAKE_SECONDS,
    BUCKET_OUTPUT,
    CANARY_INSTANCES,
    CAPABILITIES,
    CHALLENGER_MODEL_DATA_URL,
    CHALLENGER_WEIGHT,
    ENDPOINT_CONFIG_RESOURCE,
    ENDPOINT_OUTPUT,
    FAILED_STATES,
    GUARDRAILS,
    MAX_EXECUTION_S,
    MAX_EXECUTION_SECONDS,
    MIN_INSTANCES,
    MODEL_DATA_URL,
    MODEL_VERSION,
    PARAMETER_OUTPUT,
    PRIMARY_VARIANT,
    PRIMARY_WEIGHT,
    PROVISIONING_ALLOWANCE_S,
    RANKER_IMAGE,
    ROLLOUT_PARAMETERS,
    STAGE,
    TERMINATION_WAIT_SECONDS,
    VERSION_ENV,
    Plan,
    RolloutSpec,
    RolloutStatus,
    Stack,
    StackChange,
    VariantState,
    alarm_names,
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
from shoprec.errors import BackendUnavailableError, ShopRecError

__all__ = [
    "BAKE_SECONDS",
    "BUCKET_OUTPUT",
    "CANARY_INSTANCES",
    "CAPABILITIES",
    "CHALLENGER_MODEL_DATA_URL",
    "CHALLENGER_WEIGHT",
    "ENDPOINT_CONFIG_RESOURCE",
    "ENDPOINT_OUTPUT",
    "FAILED_STATES",
    "GUARDRAILS",
    "MAX_EXECUTION_S",
    "MAX_EXECUTION_SECONDS",
    "MIN_INSTANCES",
    "MODEL_DATA_URL",
    "MODEL_VERSION",
    "PARAMETER_OUTPUT",
    "PRIMARY_VARIANT",
    "PRIMARY_WEIGHT",
    "PROVISIONING_ALLOWANCE_S",
    "RANKER_IMAGE",
    "ROLLOUT_PARAMETERS",
    "STAGE",
    "TERMINATION_WAIT_SECONDS",
    "VERSION_ENV",
    "AwsClients",
    "RolloutSpec",
    "RolloutStatus",
    "Stack",
    "StackChange",
    "VariantState",
    "alarm_names",
    "config_name",
    "deploy",
    "promote",
    "read_stack",
    "rollback",
    "rollout_status",
    "version_of",
    "wait_for_stack",
    "wait_in_step",
]

_UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
    }
)
"""Error codes of an AWS side that cannot answer now: trying again later may work."""


@dataclass(frozen=True)
class AwsClients:
    """The clients the rollout steps use; tests pass clients pointed at moto or wrapped in a Stubber."""

    cloudformation: Any
    cloudwatch: Any
    sagemaker: Any
    s3: Any
    ssm: Any

    @classmethod
    def default(cls) -> AwsClients:
        return cls(
            cloudformation=aws_client("cloudformation", timeout_s=30),
            cloudwatch=aws_client("cloudwatch", timeout_s=10),
            sagemaker=aws_client("sagemaker", timeout_s=30),
            s3=aws_client("s3", timeout_s=60),
            ssm=aws_client("ssm", timeout_s=10),
        )


# --- the steps ----------------------------------------------------------------------------------------


def read_stack(name: str, *, clients: AwsClients) -> Stack:
    """What ``DescribeStacks`` says of stack ``name``; ``DeploymentError`` when there is no such stack."""
    with _aws(f"DescribeStacks {name}"):
        try:
            stacks = clients.cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" not in str(exc):
                raise
            raise DeploymentError(
                f"stack {name} does not exist; deploy it with `sam deploy` (infra/README.md)"
            ) from exc
    return Stack.from_description(stacks[0])


def deploy(
    artifacts_url: str, spec: RolloutSpec, *, stack_name: str, clients: AwsClients, dry_run: bool = False
) -> StackChange:
    """Roll ``artifacts_url`` (``s3://bucket/models/{version}``, in the stack's bucket) out to the endpoint.

    The first deployment creates the endpoint (and turns the functions to it); later ones update it with
    the canary of :meth:`RolloutSpec.canary_instances`. With ``spec.challenger`` the version becomes the
    challenger variant of an A/B test instead. Refuses while the stack is being updated.
    """
    stack = read_stack(stack_name, clients=clients)
    require_idle(stack)
    published = ensure_model_data(artifacts_url, s3=clients.s3)
    plan = plan_deploy(stack, spec, published, live_fleet=lambda: _live_fleet(clients.sagemaker, stack))
    return _apply(clients, stack, plan, dry_run=dry_run)


def promote(
    stack_name: str,
    *,
    clients: AwsClients,
    version: str | None = None,
    monitor_minutes: int = 5,
    wait: bool = False,
    dry_run: bool = False,
    poll_s: float = 15.0,
) -> StackChange:
    """Make the functions serve what the endpoint serves: ``ModelVersion`` ← the endpoint's version.

    Without an endpoint, ``version`` (a published bundle in the stack's bucket) is required. With one,
    ``version``, when given, must be the endpoint's, and the endpoint must run the stack's config (a canary
    rolled back by SageMaker is never promoted). With ``wait``, an update in progress is waited for first.
    CloudFormation watches the API alarms for ``monitor_minutes`` after the update and undoes it on one.
    """
    stack = read_stack(stack_name, clients=clients)
    if stack.busy and wait:
        stack = wait_for_stack(stack_name, clients=clients, poll_s=poll_s)
    require_idle(stack)
    target = promote_target(stack, version)
    if stack.endpoint is not None:
        require_in_step(stack, rollout_status(stack_name, clients=clients, stack=stack))
    else:
        read_remote_manifest(model_url(stack.models_url, target), s3=clients.s3)  # published and readable
    plan = plan_promote(stack, target, monitor_minutes=monitor_minutes)
    return _apply(clients, stack, plan, dry_run=dry_run)


def rollback(
    stack_name: str, *, clients: AwsClients, to_version: str | None = None, dry_run: bool = False
) -> StackChange:
    """Put the endpoint and the served version back on the previous version, all at once.

    The previous version is the newest value in the served-version parameter's history other than what the
    endpoint serves now (or, without an endpoint, what the functions serve), unless ``to_version`` names it.
    A deployment that was deployed but not promoted is so undone; a promoted one goes back to the version
    before it. No canary and no rollback alarms: going back must not wait, nor be undone.
    """
    stack = read_stack(stack_name, clients=clients)
    require_rollback_possible(stack)
    history = (
        SsmModelVersion(stack.version_parameter, client=clients.ssm).history() if to_version is None else []
    )
    target = rollback_target(stack, history, to_version)
    url = model_url(stack.models_url, target)
    if stack.endpoint is not None:
        model_data_url: str | None = ensure_model_data(url, s3=clients.s3).model_data_url
    else:
        read_remote_manifest(url, s3=clients.s3)
        model_data_url = None
    return _apply(clients, stack, plan_rollback(stack, target, model_data_url), dry_run=dry_run)


def rollout_status(stack_name: str, *, clients: AwsClients, stack: Stack | None = None) -> RolloutStatus:
    """The stack's rollout parameters, the endpoint as it runs, and whether the two agree."""
    stack = stack or read_stack(stack_name, clients=clients)
    try:
        served_now: str | None = SsmModelVersion(stack.version_parameter, client=clients.ssm).history()[-1]
    except IndexError:
        served_now = None
    status = RolloutStatus(
        stack=stack.name,
        stack_status=stack.status,
        stack_status_reason=stack.status_reason,
        served_version=stack.served_version,
        served_parameter=stack.version_parameter,
        served_now=served_now,
    )
    if stack.endpoint is None:
        return status
    described = _call(clients.sagemaker.describe_endpoint, EndpointName=stack.endpoint)
    live_config = str(described["EndpointConfigName"])
    resource = _call(
        clients.cloudformation.describe_stack_resource,
        StackName=stack.name,
        LogicalResourceId=ENDPOINT_CONFIG_RESOURCE,
    )["StackResourceDetail"]
    live = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    variants = []
    config = _call(clients.sagemaker.describe_endpoint_config, EndpointConfigName=live_config)
    for variant in config["ProductionVariants"]:
        running = live.get(variant["VariantName"], {})
        variants.append(
            VariantState(
                name=str(variant["VariantName"]),
                model_name=str(variant["ModelName"]),
                version=_model_version(clients.sagemaker, str(variant["ModelName"])),
                current_weight=running.get("CurrentWeight"),
                instances=running.get("CurrentInstanceCount"),
            )
        )
    pending = described.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    return RolloutStatus(
        **{
            **status.__dict__,
            "endpoint": stack.endpoint,
            "endpoint_status": str(described["EndpointStatus"]),
            "endpoint_version": stack.endpoint_version,
            "challenger_version": stack.challenger_version,
            "live_config": live_config,
            "stack_config": str(resource.get("PhysicalResourceId", "")),
            "variants": variants,
            "pending_config": str(pending) if pending else None,
            "failure_reason": str(described.get("FailureReason", "")),
        }
    )


def wait_for_stack(
    stack_name: str,
    *,
    clients: AwsClients,
    poll_s: float = 15.0,
    timeout_s: float = 4 * 3600,
    on_status: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Stack:
    """Poll until the stack's update ends; ``DeploymentError`` naming the failed resources when it was
    rolled back. An endpoint update can take as long as its ``DeploymentMaxExecutionSeconds``."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        stack = read_stack(stack_name, clients=clients)
        if stack.status != last and on_status is not None:
            on_status(stack.status)
        last = stack.status
        if not stack.busy:
            break
        if time.monotonic() > deadline:
            raise DeploymentError(f"stack {stack_name} still {stack.status} after {timeout_s / 60:.0f} min")
        sleep(poll_s)
    if stack.status in FAILED_STATES:
        events = _call(clients.cloudformation.describe_stack_events, StackName=stack_name)
        reasons = failure_reasons(events.get("StackEvents", []), stack_name)
        raise DeploymentError(
            f"stack {stack_name} ended {stack.status}: " + ("; ".join(reasons) or stack.status_reason or "?")
        )
    return stack


def wait_in_step(
    stack_name: str, *, clients: AwsClients, on_status: Callable[[str], None] | None = None
) -> RolloutStatus:
    """Wait for the stack's update (:func:`wait_for_stack`), then check the endpoint followed it:
    ``DeploymentError`` when SageMaker rolled the deployment back while CloudFormation succeeded."""
    wait_for_stack(stack_name, clients=clients, on_status=on_status)
    state = rollout_status(stack_name, clients=clients)
    if not state.in_step:
        raise DeploymentError(
            f"the stack updated but endpoint {state.endpoint} runs {state.live_config}, not "
            f"{state.stack_config}: SageMaker rolled the deployment back (an alarm); run "
            "`shoprec sagemaker rollback` to put the stack back in step"
        )
    return state


# --- I/O ----------------------------------------------------------------------------------------------


@contextmanager
def _aws(what: str) -> Iterator[None]:
    """The one place where an SDK error of these steps becomes a domain error: AWS unable to answer now
    (throttling, its own faults, no connection) is :class:`BackendUnavailableError`; any other refusal is
    :class:`DeploymentError`, whose message carries AWS's. A call that expects a particular error catches
    that one inside the block; domain errors raised inside pass through."""
    try:
        yield
    except ShopRecError:
        raise
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise BackendUnavailableError(f"{what}: {exc}") from exc
        raise DeploymentError(f"{what} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"{what}: {exc}") from exc


def _call(method: Any, **kwargs: Any) -> Any:
    """``method(**kwargs)``, its errors mapped by :func:`_aws` (named after the SDK method)."""
    with _aws(getattr(method, "__name__", "AWS request")):
        return method(**kwargs)


def _live_fleet(sagemaker: Any, stack: Stack) -> int:
    assert stack.endpoint is not None
    return live_fleet_of(stack, _call(sagemaker.describe_endpoint, EndpointName=stack.endpoint))


def _existing_alarms(cloudwatch: Any, stack: Stack, roles: Iterable[str]) -> tuple[str, ...]:
    """The stack's alarms of ``roles`` that exist (CloudFormation fails an update naming a missing one)."""
    names = [alarm_names(stack.stage)[r] for r in roles]
    found = _call(cloudwatch.describe_alarms, AlarmNames=names, AlarmTypes=["MetricAlarm"])
    exists = {a["AlarmName"] for a in found.get("MetricAlarms", [])}
    return tuple(n for n in names if n in exists)


def _apply(clients: AwsClients, stack: Stack, plan: Plan, *, dry_run: bool) -> StackChange:
    """Send the plan's changes as one stack update guarded by its alarms that exist (nothing is sent when
    there are no changes or on ``dry_run``) and describe it."""
    alarms = _existing_alarms(clients.cloudwatch, stack, plan.alarm_roles) if plan.alarm_roles else ()
    applied = (
        bool(plan.changes)
        and not dry_run
        and _update_stack(clients.cloudformation, stack, plan, alarms=alarms)
    )
    return StackChange(
        stack=stack.name,
        version=plan.version,
        changes=plan.changes,
        previous={k: stack.parameters.get(k, "") for k in plan.changes},
        applied=applied,
        rollback_alarms=alarms,
        monitor_minutes=plan.monitor_minutes if alarms else 0,
        fleet=plan.fleet,
        canary_instances=plan.canary_instances,
        notes=plan.notes,
    )


def _update_stack(cloudformation: Any, stack: Stack, plan: Plan, *, alarms: Iterable[str]) -> bool:
    """UpdateStack with the previous template; ``False`` when CloudFormation finds nothing to do."""
    request = update_request(stack, plan.changes, alarms=alarms, monitor_minutes=plan.monitor_minutes)
    with _aws(f"UpdateStack {stack.name}"):
        try:
            cloudformation.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            return False
    return True


def _model_version(sagemaker: Any, model_name: str) -> str | None:
    with _aws(f"DescribeModel {model_name}"):
        try:
            model = sagemaker.describe_model(ModelName=model_name)
        except ClientError:
            return None  # deleted, or not made by shoprec
    return model_version_of(model)
