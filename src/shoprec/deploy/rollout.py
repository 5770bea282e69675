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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.ssm_version import SsmModelVersion, parse_version
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import (
    MODEL_TARBALL,
    ensure_model_data,
    full_version,
    model_url,
    read_remote_manifest,
    version_hex,
)
from shoprec.errors import BackendUnavailableError

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


_VARIANTS_CHANGE = (
    "variants change: plain blue/green, all at once, no alarm rollback (SageMaker's guardrails need the same "
    "variant names before and after)"
)


def alarm_names(stage: str) -> dict[str, str]:
    """The stack's alarms that can stop a rollout, by role (``AlarmName`` in template.yaml)."""
    return {
        "api-5xx": f"shoprec-{stage}-api-5xx",
        "ranker-fallback-rate": f"shoprec-{stage}-ranker-fallback-rate",
        "ranker-primary-errors": f"shoprec-{stage}-ranker-primary-errors",
    }


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


@dataclass(frozen=True)
class Stack:
    """What ``DescribeStacks`` says of a shoprec stack: status, parameter values and outputs."""

    name: str
    stack_id: str
    status: str
    parameters: dict[str, str]
    outputs: dict[str, str]
    status_reason: str = ""

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
        return _version_of(self.parameters.get(MODEL_DATA_URL, ""))

    @property
    def challenger_version(self) -> str | None:
        return _version_of(self.parameters.get(CHALLENGER_MODEL_DATA_URL, ""))

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


# --- the steps ----------------------------------------------------------------------------------------


def read_stack(name: str, *, clients: AwsClients) -> Stack:
    try:
        stacks = clients.cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise DeploymentError(
                f"stack {name} does not exist; deploy it with `sam deploy` (infra/README.md)"
            ) from exc
        raise BackendUnavailableError(f"describe_stacks {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"describe_stacks {name}: {exc}") from exc
    described = stacks[0]
    return Stack(
        name=str(described["StackName"]),
        stack_id=str(described["StackId"]),
        status=str(described["StackStatus"]),
        status_reason=str(described.get("StackStatusReason", "")),
        parameters={
            str(p["ParameterKey"]): str(p.get("ParameterValue", "")) for p in described.get("Parameters", [])
        },
        outputs={str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])},
    )


def deploy(
    artifacts_url: str, spec: RolloutSpec, *, stack_name: str, clients: AwsClients, dry_run: bool = False
) -> StackChange:
    """Roll ``artifacts_url`` (``s3://bucket/models/{version}``, in the stack's bucket) out to the endpoint.

    The first deployment creates the endpoint (and turns the functions to it); later ones update it with
    the canary of :meth:`RolloutSpec.canary_instances`. With ``spec.challenger`` the version becomes the
    challenger variant of an A/B test instead. Refuses while the stack is being updated.
    """
    stack = read_stack(stack_name, clients=clients)
    _require_idle(stack)
    published = ensure_model_data(artifacts_url, s3=clients.s3)
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
            fleet = _live_fleet(clients.sagemaker, stack)
            wanted.update(spec.deployment_parameters(fleet))
            wanted[GUARDRAILS] = "true"
    changes = _changed(stack, wanted)
    model_keys = {MODEL_DATA_URL, CHALLENGER_MODEL_DATA_URL, RANKER_IMAGE, PRIMARY_WEIGHT, CHALLENGER_WEIGHT}
    if not model_keys & changes.keys():
        # Only the Deployment* parameters would change: the endpoint would be "updated" to its own config.
        changes = {}
    alarms = _existing_alarms(
        clients.cloudwatch, stack, ("api-5xx", "ranker-fallback-rate", "ranker-primary-errors")
    )
    return _apply(
        clients.cloudformation,
        stack,
        published.version,
        changes,
        dry_run=dry_run,
        alarms=alarms,
        monitor_minutes=spec.monitoring,
        fleet=fleet,
        canary_instances=int(changes.get(CANARY_INSTANCES, stack.parameters.get(CANARY_INSTANCES, "0")))
        if changes
        else None,
        notes=tuple(notes),
    )


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
    _require_idle(stack)
    if stack.endpoint is not None:
        target = stack.endpoint_version
        assert target is not None  # an endpoint exists only with a ModelDataUrl
        if version is not None and full_version(version) != target:
            raise DeploymentError(
                f"the endpoint serves {target}, not {full_version(version)}; deploy that version first"
            )
        state = rollout_status(stack_name, clients=clients, stack=stack)
        if not state.in_step:
            raise DeploymentError(
                f"endpoint {stack.endpoint} runs config {state.live_config}, not the stack's "
                f"{state.stack_config}: SageMaker rolled the deployment back; `shoprec sagemaker rollback` "
                "puts the stack back in step"
            )
    else:
        if version is None:
            raise DeploymentError(
                f"stack {stack.name} runs no endpoint: name the version to serve (a bundle published to "
                f"{stack.models_url})"
            )
        target = full_version(version)
        read_remote_manifest(model_url(stack.models_url, target), s3=clients.s3)  # published and readable
    if not 0 <= monitor_minutes <= 180:
        raise DeploymentError(f"--monitor-minutes must be within 0..180, got {monitor_minutes}")
    changes = _changed(stack, {MODEL_VERSION: version_hex(target)})
    alarms = _existing_alarms(clients.cloudwatch, stack, ("api-5xx", "ranker-fallback-rate"))
    return _apply(
        clients.cloudformation,
        stack,
        target,
        changes,
        dry_run=dry_run,
        alarms=alarms,
        monitor_minutes=monitor_minutes,
    )


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
    if stack.busy:
        raise DeploymentError(
            f"stack {stack.name} is {stack.status}; an update in progress is rolled back by CloudFormation "
            f"(`aws cloudformation cancel-update-stack --stack-name {stack.name}`) — roll back once it ends"
        )
    current = stack.endpoint_version if stack.endpoint is not None else stack.served_version
    if to_version is not None:
        target = full_version(to_version)
    else:
        history = SsmModelVersion(stack.version_parameter, client=clients.ssm).history()
        # Only content-hash versions can go on the endpoint; a name like the stack's initial "v1" is skipped.
        earlier = [v for v in reversed(history) if v != current and v.startswith("sha256:")]
        if not earlier:
            raise DeploymentError(
                f"no earlier version in {stack.version_parameter}'s history to roll back to; "
                "pass --to VERSION"
            )
        target = earlier[0]
    wanted = {MODEL_VERSION: version_hex(target)}
    if stack.endpoint is not None:
        published = ensure_model_data(model_url(stack.models_url, target), s3=clients.s3)
        wanted |= {
            MODEL_DATA_URL: published.model_data_url,
            GUARDRAILS: "false",  # an alarm in ALARM right now must not undo the rollback
            CANARY_INSTANCES: "0",
            BAKE_SECONDS: "0",
            TERMINATION_WAIT_SECONDS: "0",
        }
    else:
        read_remote_manifest(model_url(stack.models_url, target), s3=clients.s3)
    changes = _changed(stack, wanted)
    if MODEL_VERSION not in changes and MODEL_DATA_URL not in changes:
        changes = {}
    return _apply(clients.cloudformation, stack, target, changes, dry_run=dry_run)


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


FAILED_STATES = frozenset(
    {
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "UPDATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
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
        reasons = _failure_reasons(clients.cloudformation, stack_name)
        raise DeploymentError(
            f"stack {stack_name} ended {stack.status}: " + ("; ".join(reasons) or stack.status_reason or "?")
        )
    return stack


def config_name(value: str) -> str:
    """An endpoint config's name from its name or its ARN (what CloudFormation gives as its physical id:
    ``arn:aws:sagemaker:<region>:<account>:endpoint-config/<name>``), in lower case as ARNs write it."""
    return value.rpartition(":endpoint-config/")[2].lower() if ":endpoint-config/" in value else value.lower()


# --- internals ----------------------------------------------------------------------------------------


def _version_of(model_data_url: str) -> str | None:
    """``s3://b/models/<hex>/model.tar.gz`` → ``sha256:<hex>``; ``None`` for an empty parameter."""
    if not model_data_url:
        return None
    folder, _, name = model_data_url.rstrip("/").rpartition("/")
    if name != MODEL_TARBALL:
        raise DeploymentError(f"{model_data_url!r} is not a models/<version>/{MODEL_TARBALL} URL")
    return full_version(folder.rpartition("/")[2])


def _require_idle(stack: Stack) -> None:
    if stack.busy:
        raise DeploymentError(
            f"stack {stack.name} is {stack.status}; run again once the update ended "
            "(`shoprec sagemaker status`, or --wait)"
        )
    if stack.status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"):
        raise DeploymentError(f"stack {stack.name} is {stack.status} and cannot be updated; fix it first")


def _changed(stack: Stack, wanted: Mapping[str, str]) -> dict[str, str]:
    missing = sorted(k for k in wanted if k not in stack.parameters)
    if missing:
        raise DeploymentError(
            f"stack {stack.name} has no parameter {', '.join(missing)}: it was deployed from an older "
            "template.yaml; `sam deploy` the current one first"
        )
    return {k: v for k, v in wanted.items() if _normal(stack.parameters[k]) != _normal(v)}


def _normal(value: str) -> str:
    """Numbers compare as numbers (``"0.9"`` and ``"0.90"``), anything else as text."""
    try:
        return repr(float(value))
    except ValueError:
        return value


def _live_fleet(sagemaker: Any, stack: Stack) -> int:
    """Instances the primary variant runs now (what auto scaling chose), else the stack's minimum."""
    assert stack.endpoint is not None
    described = _call(sagemaker.describe_endpoint, EndpointName=stack.endpoint)
    for variant in described.get("ProductionVariants", []):
        if variant.get("VariantName") == PRIMARY_VARIANT and variant.get("CurrentInstanceCount"):
            return int(variant["CurrentInstanceCount"])
    return int(stack.parameters.get(MIN_INSTANCES, "1"))


def _existing_alarms(cloudwatch: Any, stack: Stack, roles: Iterable[str]) -> tuple[str, ...]:
    """The stack's alarms of ``roles`` that exist (CloudFormation fails an update naming a missing one)."""
    names = [alarm_names(stack.stage)[r] for r in roles]
    found = _call(cloudwatch.describe_alarms, AlarmNames=names, AlarmTypes=["MetricAlarm"])
    exists = {a["AlarmName"] for a in found.get("MetricAlarms", [])}
    return tuple(n for n in names if n in exists)


def _apply(
    cloudformation: Any,
    stack: Stack,
    version: str,
    changes: dict[str, str],
    *,
    dry_run: bool,
    alarms: tuple[str, ...] = (),
    monitor_minutes: int = 0,
    **details: Any,
) -> StackChange:
    """Send ``changes`` as one stack update guarded by ``alarms`` (none when empty or ``dry_run``) and
    describe it; ``details`` are the step's own fields of :class:`StackChange`."""
    applied = (
        bool(changes)
        and not dry_run
        and _update_stack(cloudformation, stack, changes, alarms=alarms, monitor_minutes=monitor_minutes)
    )
    return StackChange(
        stack=stack.name,
        version=version,
        changes=changes,
        previous={k: stack.parameters.get(k, "") for k in changes},
        applied=applied,
        rollback_alarms=alarms,
        monitor_minutes=monitor_minutes if alarms else 0,
        **details,
    )


def _update_stack(
    cloudformation: Any,
    stack: Stack,
    changes: Mapping[str, str],
    *,
    alarms: Iterable[str],
    monitor_minutes: int,
) -> bool:
    """UpdateStack with the previous template: ``changes`` set, every other parameter kept; ``False`` when
    CloudFormation finds nothing to do."""
    parameters = [
        {"ParameterKey": key, "ParameterValue": changes[key]}
        if key in changes
        else {"ParameterKey": key, "UsePreviousValue": True}
        for key in stack.parameters
    ]
    request: dict[str, Any] = {
        "StackName": stack.name,
        "UsePreviousTemplate": True,
        "Parameters": parameters,
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
    try:
        cloudformation.update_stack(**request)
    except ClientError as exc:
        if "No updates are to be performed" in str(exc):
            return False
        raise DeploymentError(f"UpdateStack {stack.name} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"UpdateStack {stack.name}: {exc}") from exc
    return True


def _failure_reasons(cloudformation: Any, stack_name: str) -> list[str]:
    """The reasons of the resources that failed in the stack's latest update, oldest first."""
    reasons: list[str] = []
    events = _call(cloudformation.describe_stack_events, StackName=stack_name).get("StackEvents", [])
    for event in events:  # newest first
        status = str(event.get("ResourceStatus", ""))
        if event.get("LogicalResourceId") == stack_name and status in ("UPDATE_IN_PROGRESS",):
            break  # the start of the latest update
        if status.endswith("_FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    return list(reversed(reasons))


def _model_version(sagemaker: Any, model_name: str) -> str | None:
    try:
        model = sagemaker.describe_model(ModelName=model_name)
    except ClientError:
        return None  # deleted, or not made by shoprec
    value = model.get("PrimaryContainer", {}).get("Environment", {}).get(VERSION_ENV)
    try:
        return full_version(str(value)) if value else None
    except ValueError:
        return None


def _call(method: Any, **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except ClientError as exc:
        raise DeploymentError(f"{exc.operation_name} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"AWS request failed: {exc}") from exc
