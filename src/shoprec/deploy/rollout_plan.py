"""Rollout planning: from what a stack says to the parameters a rollout step sets, without AWS.

Every function here is pure: it reads a :class:`Stack` (what ``DescribeStacks`` said), the step's options
and whatever else :mod:`shoprec.deploy.rollout` read from AWS for it, and returns a :class:`Plan` (the
parameters to change, the alarms that guard the change) or raises :class:`DeploymentError` saying why the
step cannot go ahead. :mod:`shoprec.deploy.rollout` does the reading and the one stack update; the rules
live here and are tested without AWS (``tests/unit/test_rollout_plan.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shoprec.adapters.aws.ssm_version import parse_version
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import MODEL_TARBALL, PublishedModel, full_version, version_hex

# --- the stack's names (template.yaml) ----------------------------------------------------------------

MODEL_VERSION = "ModelVersion"
MODEL_DATA_URL = "ModelDataUrl"
CHALLENGER_MODEL_DATA_URL = "ChallengerModelDataUrl"
PRIMARY_WEIGHT = "PrimaryVariantWeight"
CHALLENGER_WEIGHT = "ChallengerVariantWeight"
RANKER_IMAGE = "RankerImageUri"
GUARDRAILS = "DeploymentGuardrails"
CANARY_INSTANCES = "DeploymentCanaryInstances"
BAKE_SECONDS = "DeploymentBakeSeconds"
TERMINATION_WAIT_SECONDS = "DeploymentTerminationWaitSeconds"
MAX_EXECUTION_SECONDS = "DeploymentMaxExecutionSeconds"
MIN_INSTANCES = "EndpointMinInstances"
STAGE = "Stage"
ROLLOUT_PARAMETERS = (
    MODEL_VERSION,
    MODEL_DATA_URL,
    CHALLENGER_MODEL_DATA_URL,
    PRIMARY_WEIGHT,
    CHALLENGER_WEIGHT,
    RANKER_IMAGE,
    GUARDRAILS,
    CANARY_INSTANCES,
    BAKE_SECONDS,
    TERMINATION_WAIT_SECONDS,
    MAX_EXECUTION_SECONDS,
)
"""The stack parameters these steps own: set by them, kept by ``sam deploy`` (never in samconfig)."""
BUCKET_OUTPUT = "ArtifactBucketName"
PARAMETER_OUTPUT = "ModelVersionParameterName"
ENDPOINT_OUTPUT = "RankerEndpointName"
ENDPOINT_CONFIG_RESOURCE = "RankerEndpointConfig"
PRIMARY_VARIANT = "primary"
VERSION_ENV = "SHOPREC_ENDPOINT_MODEL_VERSION"
"""Set on each model by the stack: the endpoint refuses to start on any other bundle (EndpointSettings)."""
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
MAX_EXECUTION_S = (600, 28_800)  # BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds bounds
PROVISIONING_ALLOWANCE_S = 1_800
"""Time allowed for starting the green fleet on top of the bake and termination waits."""
FAILED_STATES = frozenset(
    {
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "UPDATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
    }
)
"""Where a stack update ends when it did not go through."""
DEPLOY_ALARMS = ("api-5xx", "ranker-fallback-rate", "ranker-primary-errors")
PROMOTE_ALARMS = ("api-5xx", "ranker-fallback-rate")

_VARIANTS_CHANGE = (
    "variants change: plain blue/green, all at once, no alarm rollback (SageMaker's guardrails need the same "
    "variant names before and after)"
)
_MODEL_KEYS = frozenset(
    {MODEL_DATA_URL, CHALLENGER_MODEL_DATA_URL, RANKER_IMAGE, PRIMARY_WEIGHT, CHALLENGER_WEIGHT}
)


def alarm_names(stage: str) -> dict[str, str]:
    """The stack's alarms that can stop a rollout, by role (``AlarmName`` in template.yaml)."""
    return {
        "api-5xx": f"shoprec-{stage}-api-5xx",
        "ranker-fallback-rate": f"shoprec-{stage}-ranker-fallback-rate",
        "ranker-primary-errors": f"shoprec-{stage}-ranker-primary-errors",
    }


@dataclass(frozen=True)
class Stack:
    """What ``DescribeStacks`` says of a shoprec stack: status, parameter values and outputs."""

    name: str
    stack_id: str
    status: str
    parameters: dict[str, str]
    outputs: dict[str, str]
    status_reason: str = ""

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> Stack:
        """One entry of ``DescribeStacks``' ``Stacks``."""
        return cls(
            name=str(described["StackName"]),
            stack_id=str(described["StackId"]),
            status=str(described["StackStatus"]),
            status_reason=str(described.get("StackStatusReason", "")),
            parameters={
                str(p["ParameterKey"]): str(p.get("ParameterValue", ""))
                for p in described.get("Parameters", [])
            },
            outputs={str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])},
        )

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def stage(self) -> str:
        return self.parameters.get(STAGE, "dev")

    @property
    def models_url(self) -> str:
        return f"s3://{self._output(BUCKET_OUTPUT)}/models"

    @property
    def version_parameter(self) -> str:
        return self._output(PARAMETER_OUTPUT)

    @property
    def endpoint(self) -> str | None:
        """The ranking endpoint's name, or ``None`` when the stack runs none (``ModelDataUrl`` empty)."""
        return self.outputs.get(ENDPOINT_OUTPUT) or None

    @property
    def served_version(self) -> str:
        """``ModelVersion``: what the functions serve (``sha256:<hex>``, or a folder name such as ``v1``)."""
        return parse_version(
            self.parameters.get(MODEL_VERSION, ""), source=f"stack {self.name} {MODEL_VERSION}"
        )

    @property
    def endpoint_version(self) -> str | None:
        """The version of the endpoint's primary variant (from ``ModelDataUrl``), or ``None``."""
        return version_of(self.parameters.get(MODEL_DATA_URL, ""))

    @property
    def challenger_version(self) -> str | None:
        return version_of(self.parameters.get(CHALLENGER_MODEL_DATA_URL, ""))

    @property
    def partition(self) -> str:
        return self.stack_id.split(":")[1]

    @property
    def region(self) -> str:
        return self.stack_id.split(":")[3]

    @property
    def account(self) -> str:
        return self.stack_id.split(":")[4]

    def _output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise DeploymentError(
                f"stack {self.name} has no output {key}: was it deployed from an older template.yaml? "
                "`sam deploy` the current one first"
            )
        return value


@dataclass(frozen=True)
class RolloutSpec:
    """How ``deploy`` rolls a version out.

    ``weight`` is the canary's share of the fleet (0 to 0.5; 0 is blue/green all at once), or with
    ``challenger`` the challenger variant's share of the traffic. The canary is a whole number of
    instances: :meth:`canary_instances`. ``monitor_minutes`` (default: the bake time) is how long
    CloudFormation keeps watching the alarms after the update and rolls the whole update back on one.
    """

    weight: float = 0.1
    bake_minutes: float = 10.0
    termination_wait_minutes: float = 5.0
    monitor_minutes: int | None = None
    challenger: bool = False
    end_challenger: bool = False
    image: str | None = None

    def __post_init__(self) -> None:
        if self.challenger and not 0 < self.weight <= 0.5:
            raise DeploymentError(
                "--weight must be within (0, 0.5] for a challenger (its share of the traffic), "
                f"got {self.weight}"
            )
        if not 0 <= self.weight <= 0.5:
            raise DeploymentError(
                f"--weight must be within [0, 0.5] (SageMaker's canary is at most half the fleet), "
                f"got {self.weight}"
            )
        if self.challenger and self.end_challenger:
            raise DeploymentError("--challenger and --end-challenger exclude each other")
        for name, minutes in (
            ("bake", self.bake_minutes),
            ("termination-wait", self.termination_wait_minutes),
        ):
            if not 0 <= minutes <= 60:
                raise DeploymentError(f"--{name}-minutes must be within 0..60, got {minutes}")
        if self.monitor_minutes is not None and not 0 <= self.monitor_minutes <= 180:
            raise DeploymentError(f"--monitor-minutes must be within 0..180, got {self.monitor_minutes}")

    @property
    def monitoring(self) -> int:
        return self.monitor_minutes if self.monitor_minutes is not None else math.ceil(self.bake_minutes)

    def canary_instances(self, fleet: int) -> int:
        """Instances of a green fleet of ``fleet`` that take the canary's traffic (0: all at once)."""
        if self.weight == 0 or self.challenger:
            return 0
        canary = max(1, math.floor(self.weight * fleet + 0.5))
        if 2 * canary > fleet:
            raise DeploymentError(
                f"a canary of {self.weight:.0%} is {canary} of {fleet} instances, more than the half of "
                f"the fleet SageMaker allows; raise {MIN_INSTANCES} to 2 or more, or pass --weight 0 for "
                "an all-at-once blue/green update"
            )
        return canary

    def deployment_parameters(self, fleet: int) -> dict[str, str]:
        """The stack's ``Deployment*`` parameters for a fleet of ``fleet`` instances."""
        bake_s = round(self.bake_minutes * 60)
        termination_s = round(self.termination_wait_minutes * 60)
        timeout_s = PROVISIONING_ALLOWANCE_S + 2 * bake_s + termination_s
        return {
            CANARY_INSTANCES: str(self.canary_instances(fleet)),
            BAKE_SECONDS: str(bake_s),
            TERMINATION_WAIT_SECONDS: str(termination_s),
            MAX_EXECUTION_SECONDS: str(min(max(timeout_s, MAX_EXECUTION_S[0]), MAX_EXECUTION_S[1])),
        }


@dataclass(frozen=True)
class Plan:
    """A rollout step decided: the parameters it changes and what guards the change.

    ``alarm_roles`` name the alarms (:func:`alarm_names`) CloudFormation watches for ``monitor_minutes``
    after the update; only those that exist are used. No ``changes``: there is nothing to update.
    """

    version: str
    changes: dict[str, str]
    alarm_roles: tuple[str, ...] = ()
    monitor_minutes: int = 0
    fleet: int | None = None
    canary_instances: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackChange:
    """A rollout step's stack update: the parameters it sets (old → new) and what guards it."""

    stack: str
    version: str
    changes: dict[str, str]
    previous: dict[str, str]
    applied: bool
    rollback_alarms: tuple[str, ...] = ()
    monitor_minutes: int = 0
    fleet: int | None = None
    canary_instances: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def unchanged(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class VariantState:
    name: str
    model_name: str
    version: str | None
    current_weight: float | None
    instances: int | None


@dataclass(frozen=True)
class RolloutStatus:
    """What ``shoprec sagemaker status`` shows."""

    stack: str
    stack_status: str
    stack_status_reason: str
    served_version: str
    served_parameter: str
    served_now: str | None
    """The SSM parameter's value now (it differs from ``served_version`` only while an update runs)."""
    endpoint: str | None = None
    endpoint_status: str | None = None
    endpoint_version: str | None = None
    challenger_version: str | None = None
    live_config: str | None = None
    stack_config: str | None = None
    variants: list[VariantState] = field(default_factory=list)
    pending_config: str | None = None
    failure_reason: str = ""

    @property
    def in_step(self) -> bool:
        """The endpoint runs the config the stack made (always true without an endpoint)."""
        if self.endpoint is None:
            return True
        return self.live_config is not None and config_name(self.live_config) == config_name(
            self.stack_config or ""
        )


# --- the steps' decisions -----------------------------------------------------------------------------


def plan_deploy(
    stack: Stack, spec: RolloutSpec, published: PublishedModel, *, live_fleet: Callable[[], int]
) -> Plan:
    """Deploy ``published`` as ``spec`` says. ``live_fleet`` gives the primary variant's instances now; it
    is asked only for a canary on an existing endpoint (the one case whose parameters depend on it)."""
    if not published.url.startswith(stack.models_url + "/"):
        raise DeploymentError(
            f"{published.url} is not in the stack's artifact bucket ({stack.models_url}/...), the only one "
            "its SageMaker role may read; publish it there with `shoprec sagemaker publish`"
        )
    image = spec.image or stack.parameters.get(RANKER_IMAGE, "")
    if not image:
        raise DeploymentError(
            f"stack {stack.name} has no {RANKER_IMAGE}: pass --image with the inference image's ECR URI "
            "(sagemaker/inference/, docs/deploy.md)"
        )
    wanted: dict[str, str] = {RANKER_IMAGE: image}
    notes: list[str] = []
    fleet: int | None = None
    if spec.challenger:
        if stack.endpoint is None:
            raise DeploymentError(
                f"stack {stack.name} runs no endpoint yet: deploy a primary version before a challenger"
            )
        wanted[CHALLENGER_MODEL_DATA_URL] = published.model_data_url
        wanted[PRIMARY_WEIGHT] = f"{1 - spec.weight:g}"
        wanted[CHALLENGER_WEIGHT] = f"{spec.weight:g}"
        # A challenger's share is its weight, not a canary: its model moves all at once.
        wanted.update(spec.deployment_parameters(1))
        if stack.challenger_version is None:
            wanted[GUARDRAILS] = "false"
            notes.append(_VARIANTS_CHANGE)
        else:
            wanted[GUARDRAILS] = "true"
    else:
        wanted[MODEL_DATA_URL] = published.model_data_url
        if spec.end_challenger:
            wanted[CHALLENGER_MODEL_DATA_URL] = ""
        if stack.endpoint is None:
            notes.append("creates the endpoint (no canary: there is no previous version)")
            wanted.update(replace(spec, weight=0).deployment_parameters(1))
            wanted[GUARDRAILS] = "true"
        elif spec.end_challenger and stack.challenger_version is not None:
            wanted.update(replace(spec, weight=0).deployment_parameters(1))
            wanted[GUARDRAILS] = "false"
            notes.append(_VARIANTS_CHANGE)
        else:
            fleet = live_fleet()
            wanted.update(spec.deployment_parameters(fleet))
            wanted[GUARDRAILS] = "true"
    changes = changed(stack, wanted)
    if not _MODEL_KEYS & changes.keys():
        # Only the Deployment* parameters would change: the endpoint would be "updated" to its own config.
        changes = {}
    return Plan(
        version=published.version,
        changes=changes,
        alarm_roles=DEPLOY_ALARMS,
        monitor_minutes=spec.monitoring,
        fleet=fleet,
        canary_instances=int(changes.get(CANARY_INSTANCES, stack.parameters.get(CANARY_INSTANCES, "0")))
        if changes
        else None,
        notes=tuple(notes),
    )


def promote_target(stack: Stack, version: str | None) -> str:
    """The version ``promote`` serves: the endpoint's (``version``, when given, must be it), or without an
    endpoint the named ``version``."""
    if stack.endpoint is not None:
        target = stack.endpoint_version
        assert target is not None  # an endpoint exists only with a ModelDataUrl
        if version is not None and full_version(version) != target:
            raise DeploymentError(
                f"the endpoint serves {target}, not {full_version(version)}; deploy that version first"
            )
        return target
    if version is None:
        raise DeploymentError(
            f"stack {stack.name} runs no endpoint: name the version to serve (a bundle published to "
            f"{stack.models_url})"
        )
    return full_version(version)


def require_in_step(stack: Stack, state: RolloutStatus) -> None:
    """Refuse to promote what SageMaker rolled back: the endpoint must run the stack's config."""
    if not state.in_step:
        raise DeploymentError(
            f"endpoint {stack.endpoint} runs config {state.live_config}, not the stack's "
            f"{state.stack_config}: SageMaker rolled the deployment back; `shoprec sagemaker rollback` "
            "puts the stack back in step"
        )


def plan_promote(stack: Stack, target: str, *, monitor_minutes: int) -> Plan:
    """Serve ``target`` in the functions: the stack's ``ModelVersion``, guarded by the API alarms."""
    if not 0 <= monitor_minutes <= 180:
        raise DeploymentError(f"--monitor-minutes must be within 0..180, got {monitor_minutes}")
    return Plan(
        version=target,
        changes=changed(stack, {MODEL_VERSION: version_hex(target)}),
        alarm_roles=PROMOTE_ALARMS,
        monitor_minutes=monitor_minutes,
    )


def require_rollback_possible(stack: Stack) -> None:
    """A rollback goes ahead on an idle stack only; an update in progress is CloudFormation's to undo."""
    if stack.busy:
        raise DeploymentError(
            f"stack {stack.name} is {stack.status}; an update in progress is rolled back by CloudFormation "
            f"(`aws cloudformation cancel-update-stack --stack-name {stack.name}`) — roll back once it ends"
        )


def rollback_target(stack: Stack, history: Sequence[str], to_version: str | None = None) -> str:
    """The version ``rollback`` goes back to: ``to_version``, else the newest of the served-version
    parameter's ``history`` (oldest first) other than what the endpoint (or, without one, the functions)
    serves now."""
    if to_version is not None:
        return full_version(to_version)
    current = stack.endpoint_version if stack.endpoint is not None else stack.served_version
    # Only content-hash versions can go on the endpoint; a name like the stack's initial "v1" is skipped.
    earlier = [v for v in reversed(history) if v != current and v.startswith("sha256:")]
    if not earlier:
        raise DeploymentError(
            f"no earlier version in {stack.version_parameter}'s history to roll back to; pass --to VERSION"
        )
    return earlier[0]


def plan_rollback(stack: Stack, target: str, model_data_url: str | None) -> Plan:
    """Put the functions and, with an endpoint, its primary variant (``model_data_url``, the target's
    tarball) back on ``target``, all at once. No canary and no rollback alarms: going back must not wait,
    nor be undone."""
    wanted = {MODEL_VERSION: version_hex(target)}
    if stack.endpoint is not None:
        if model_data_url is None:
            raise ValueError("a rollback of an endpoint needs the target's model data URL")
        wanted |= {
            MODEL_DATA_URL: model_data_url,
            GUARDRAILS: "false",  # an alarm in ALARM right now must not undo the rollback
            CANARY_INSTANCES: "0",
            BAKE_SECONDS: "0",
            TERMINATION_WAIT_SECONDS: "0",
        }
    changes = changed(stack, wanted)
    if MODEL_VERSION not in changes and MODEL_DATA_URL not in changes:
        changes = {}
    return Plan(version=target, changes=changes)


def require_idle(stack: Stack) -> None:
    """Refuse to update a stack that is being updated or that CloudFormation cannot update."""
    if stack.busy:
        raise DeploymentError(
            f"stack {stack.name} is {stack.status}; run again once the update ended "
            "(`shoprec sagemaker status`, or --wait)"
        )
    if stack.status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"):
        raise DeploymentError(f"stack {stack.name} is {stack.status} and cannot be updated; fix it first")


def changed(stack: Stack, wanted: Mapping[str, str]) -> dict[str, str]:
    """The parameters of ``wanted`` whose value differs from the stack's (numbers compared as numbers)."""
    missing = sorted(k for k in wanted if k not in stack.parameters)
    if missing:
        raise DeploymentError(
            f"stack {stack.name} has no parameter {', '.join(missing)}: it was deployed from an older "
            "template.yaml; `sam deploy` the current one first"
        )
    return {k: v for k, v in wanted.items() if _normal(stack.parameters[k]) != _normal(v)}


def update_request(
    stack: Stack, changes: Mapping[str, str], *, alarms: Iterable[str], monitor_minutes: int
) -> dict[str, Any]:
    """``UpdateStack``'s request: the previous template, ``changes`` set, every other parameter kept, and
    CloudFormation's rollback triggers on ``alarms`` (by name) for ``monitor_minutes``."""
    request: dict[str, Any] = {
        "StackName": stack.name,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": changes[key]}
            if key in changes
            else {"ParameterKey": key, "UsePreviousValue": True}
            for key in stack.parameters
        ],
        "Capabilities": list(CAPABILITIES),
    }
    triggers = [
        {
            "Arn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{name}",
            "Type": "AWS::CloudWatch::Alarm",
        }
        for name in alarms
    ]
    if triggers:
        request["RollbackConfiguration"] = {
            "RollbackTriggers": triggers,
            "MonitoringTimeInMinutes": monitor_minutes,
        }
    return request


def live_fleet_of(stack: Stack, described_endpoint: Mapping[str, Any]) -> int:
    """Instances the primary variant runs now (what auto scaling chose), else the stack's minimum."""
    for variant in described_endpoint.get("ProductionVariants", []):
        if variant.get("VariantName") == PRIMARY_VARIANT and variant.get("CurrentInstanceCount"):
            return int(variant["CurrentInstanceCount"])
    return int(stack.parameters.get(MIN_INSTANCES, "1"))


def failure_reasons(events: Iterable[Mapping[str, Any]], stack_name: str) -> list[str]:
    """The reasons of the resources that failed in the stack's latest update, oldest first, from
    ``DescribeStackEvents``' events (newest first)."""
    reasons: list[str] = []
    for event in events:
        status = str(event.get("ResourceStatus", ""))
        if event.get("LogicalResourceId") == stack_name and status in ("UPDATE_IN_PROGRESS",):
            break  # the start of the latest update
        if status.endswith("_FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    return list(reversed(reasons))


def model_version_of(described_model: Mapping[str, Any]) -> str | None:
    """The bundle version a SageMaker model was made for (its ``VERSION_ENV``), or ``None``."""
    value = described_model.get("PrimaryContainer", {}).get("Environment", {}).get(VERSION_ENV)
    try:
        return full_version(str(value)) if value else None
    except ValueError:
        return None


def config_name(value: str) -> str:
    """An endpoint config's name from its name or its ARN (what CloudFormation gives as its physical id:
    ``arn:aws:sagemaker:<region>:<account>:endpoint-config/<name>``), in lower case as ARNs write it."""
    return value.rpartition(":endpoint-config/")[2].lower() if ":endpoint-config/" in value else value.lower()


def version_of(model_data_url: str) -> str | None:
    """``s3://b/models/<hex>/model.tar.gz`` → ``sha256:<hex>``; ``None`` for an empty parameter."""
    if not model_data_url:
        return None
    folder, _, name = model_data_url.rstrip("/").rpartition("/")
    if name != MODEL_TARBALL:
        raise DeploymentError(f"{model_data_url!r} is not a models/<version>/{MODEL_TARBALL} URL")
    return full_version(folder.rpartition("/")[2])


def _normal(value: str) -> str:
    """Numbers compare as numbers (``"0.9"`` and ``"0.90"``), anything else as text."""
    try:
        return repr(float(value))
    except ValueError:
        return value
