"""Deploy a published model to the SageMaker ranking endpoint, promote it, roll it back.

``deploy`` creates a SageMaker model (the inference image, ``ModelDataUrl`` = the version's
``model.tar.gz``) and an endpoint config, then creates the endpoint or updates it with a blue/green
**canary**: SageMaker starts a full new (green) fleet, sends the canary's share of the traffic to it for the
bake time while the CloudWatch alarms watch, then shifts the rest; an alarm in ALARM state rolls all traffic
back to the old (blue) fleet. ``promote`` points the served-version SSM parameter at the version the
endpoint now serves, so the Lambdas load the same bundle (recall, catalogue) within a minute; ``rollback``
puts the endpoint and the parameter back on the previous version.

Names are derived from the version and the settings, so deploying the same thing twice reuses the model and
endpoint config (SageMaker's are immutable) and a version's config can be found again for a rollback.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shoprec.adapters.aws.clients import aws_client
from shoprec.adapters.aws.ssm_version import SsmModelVersion
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.models import ensure_model_data, full_version, short_version
from shoprec.errors import BackendUnavailableError

VARIANT = "primary"
"""The stack's variant name (template.yaml): its auto scaling target and error alarm name this variant, and
SageMaker lets a model change under an auto-scaled variant only when the name stays."""
DEFAULT_INSTANCE_TYPE = "ml.c7i.xlarge"
DEFAULT_INSTANCE_COUNT = 2
VERSION_ENV = "SHOPREC_ENDPOINT_MODEL_VERSION"
"""Set on the model's container: the endpoint refuses to start on any other bundle (see EndpointSettings)."""
VERSION_TAG = "shoprec:model-version"
NAME_MAX = 63
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
MAX_EXECUTION_S = (600, 28_800)  # BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds bounds
PROVISIONING_ALLOWANCE_S = 1_800
"""Time allowed for starting the green fleet on top of the bake and termination waits."""


@dataclass(frozen=True)
class AwsClients:
    """The clients the deployment steps use; tests pass clients pointed at moto or wrapped in a Stubber."""

    sagemaker: Any
    s3: Any
    ssm: Any

    @classmethod
    def default(cls) -> AwsClients:
        return cls(
            sagemaker=aws_client("sagemaker", timeout_s=30),
            s3=aws_client("s3", timeout_s=60),
            ssm=aws_client("ssm", timeout_s=10),
        )


@dataclass(frozen=True)
class EndpointSpec:
    """How the endpoint runs a version: image, role, instances, canary and alarms.

    ``instance_type`` and ``instance_count`` left ``None`` keep the running endpoint's (its type, and the
    instance count auto scaling chose, with ``RetainAllVariantProperties``); a new endpoint gets
    ``DEFAULT_INSTANCE_TYPE`` and ``DEFAULT_INSTANCE_COUNT``.
    """

    endpoint: str
    image: str
    role: str
    instance_type: str | None = None
    instance_count: int | None = None
    weight: float = 0.1
    bake_minutes: float = 10.0
    termination_wait_minutes: float = 5.0
    alarms: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.endpoint) > NAME_MAX - 20 or not _ENDPOINT_NAME.fullmatch(self.endpoint):
            raise DeploymentError(
                f"--endpoint must be 1 to {NAME_MAX - 20} letters, digits and inner hyphens "
                f"(model and config names add 20 characters): {self.endpoint!r}"
            )
        if self.instance_count is not None and self.instance_count < 1:
            raise DeploymentError(f"--instance-count must be >= 1, got {self.instance_count}")
        if not 0 <= self.weight <= 0.5:
            raise DeploymentError(
                f"--weight must be within [0, 0.5] (SageMaker's canary is at most half the fleet), "
                f"got {self.weight}"
            )
        for name, minutes in (
            ("bake", self.bake_minutes),
            ("termination-wait", self.termination_wait_minutes),
        ):
            if not 0 <= minutes <= 60:
                raise DeploymentError(f"--{name}-minutes must be within 0..60, got {minutes}")
        if len(self.alarms) > 10:
            raise DeploymentError(f"at most 10 --alarm names, got {len(self.alarms)}")

    def canary_instances(self, fleet: int) -> int:
        """Instances of a green fleet of ``fleet`` that take the canary's traffic (0: all at once)."""
        if self.weight == 0:
            return 0
        return max(1, math.floor(self.weight * fleet + 0.5))

    def deployment_config(self, fleet: int) -> dict[str, Any]:
        """``DeploymentConfig`` of UpdateEndpoint for a fleet of ``fleet`` instances: blue/green, a canary
        of ``weight`` (or all at once for weight 0), the bake and termination waits, and auto-rollback on
        the alarms."""
        canary = self.canary_instances(fleet)
        if canary and 2 * canary > fleet:
            raise DeploymentError(
                f"a canary of {self.weight:.0%} is {canary} of {fleet} instances, more than the half of "
                "the fleet SageMaker allows; use more instances (--instance-count >= 2) or --weight 0 for "
                "an all-at-once blue/green update"
            )
        bake_s = round(self.bake_minutes * 60)
        routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake_s}
        if canary:
            routing = {
                "Type": "CANARY",
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": canary},
                "WaitIntervalInSeconds": bake_s,
            }
        termination_s = round(self.termination_wait_minutes * 60)
        timeout_s = PROVISIONING_ALLOWANCE_S + 2 * bake_s + termination_s
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": termination_s,
                "MaximumExecutionTimeoutInSeconds": min(
                    max(timeout_s, MAX_EXECUTION_S[0]), MAX_EXECUTION_S[1]
                ),
            }
        }
        if self.alarms:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in self.alarms]}
        return config


@dataclass(frozen=True)
class DeployResult:
    version: str
    model_name: str
    endpoint_config_name: str
    action: str  # "created" | "updating" | "unchanged"
    model_data_url: str
    deployment_config: dict[str, Any] | None = None
    canary_share: float | None = None
    """Share of the traffic on the canary: canary instances / fleet size (SageMaker routes by capacity)."""


@dataclass(frozen=True)
class VariantState:
    name: str
    model_name: str
    version: str | None
    current_weight: float | None
    instances: int | None


@dataclass(frozen=True)
class EndpointState:
    """What ``shoprec sagemaker status`` shows."""

    endpoint: str
    status: str
    endpoint_config_name: str
    variants: list[VariantState]
    pending_config_name: str | None = None
    failure_reason: str = ""
    served_version: str | None = None
    parameter: str | None = None
    last_deployment_config: dict[str, Any] | None = None

    @property
    def version(self) -> str | None:
        """The version every variant runs, or ``None`` when they differ or are unknown."""
        versions = {v.version for v in self.variants}
        return versions.pop() if len(versions) == 1 else None


@dataclass(frozen=True)
class SwitchResult:
    """A promotion or rollback: the versions before and after, and whether the endpoint is changing."""

    from_version: str | None
    to_version: str
    endpoint_config_name: str | None = None
    endpoint_updating: bool = False
    parameter_changed: bool = False


def deploy(artifacts_url: str, spec: EndpointSpec, *, clients: AwsClients) -> DeployResult:
    """Roll ``artifacts_url`` (``s3://bucket/models/{version}``) out to ``spec.endpoint``.

    The first deployment creates the endpoint; later ones update it with the canary of
    :meth:`EndpointSpec.deployment_config`. Refuses while another update is in progress.
    """
    published = ensure_model_data(artifacts_url, s3=clients.s3)
    version = published.version
    endpoint = _describe_endpoint(clients.sagemaker, spec.endpoint)
    if endpoint is not None and endpoint["EndpointStatus"] != "InService":
        raise DeploymentError(
            f"endpoint {spec.endpoint} is {endpoint['EndpointStatus']}; deploy again once it is InService"
        )
    current = _primary_variant(clients.sagemaker, endpoint) if endpoint is not None else {}
    instance_type = spec.instance_type or current.get("InstanceType") or DEFAULT_INSTANCE_TYPE
    retain = endpoint is not None and spec.instance_count is None
    fleet = spec.instance_count or current.get("CurrentInstanceCount") or DEFAULT_INSTANCE_COUNT
    deployment_config = spec.deployment_config(fleet) if endpoint is not None else None
    environment = {**spec.environment, VERSION_ENV: version}
    model_name = _name(
        spec.endpoint, version, [spec.image, published.model_data_url, spec.role, sorted(environment.items())]
    )
    tags = [{"Key": VERSION_TAG, "Value": version}]
    if not _exists(clients.sagemaker.describe_model, ModelName=model_name):
        _call(
            clients.sagemaker.create_model,
            ModelName=model_name,
            ExecutionRoleArn=spec.role,
            # The container only scores; SageMaker itself fetches the model data (as in template.yaml).
            EnableNetworkIsolation=True,
            PrimaryContainer={
                "Image": spec.image,
                "ModelDataUrl": published.model_data_url,
                "Environment": environment,
            },
            Tags=tags,
        )
    config_name = _name(spec.endpoint, version, [model_name, instance_type, fleet])
    if not _exists(clients.sagemaker.describe_endpoint_config, EndpointConfigName=config_name):
        _call(
            clients.sagemaker.create_endpoint_config,
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": model_name,
                    "InstanceType": instance_type,
                    "InitialInstanceCount": fleet,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=tags,
        )
    if endpoint is None:
        _call(
            clients.sagemaker.create_endpoint,
            EndpointName=spec.endpoint,
            EndpointConfigName=config_name,
            Tags=tags,
        )
        action = "created"
    elif endpoint["EndpointConfigName"] == config_name:
        action = "unchanged"
    else:
        retained: dict[str, Any] = {}
        if retain:
            # Keep the instance count auto scaling chose (the template's endpoint does the same).
            retained = {
                "RetainAllVariantProperties": True,
                "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
            }
        _call(
            clients.sagemaker.update_endpoint,
            EndpointName=spec.endpoint,
            EndpointConfigName=config_name,
            DeploymentConfig=deployment_config,
            **retained,
        )
        action = "updating"
    canary = spec.canary_instances(fleet) if action == "updating" else 0
    return DeployResult(
        version=version,
        model_name=model_name,
        endpoint_config_name=config_name,
        action=action,
        model_data_url=published.model_data_url,
        deployment_config=deployment_config if action == "updating" else None,
        canary_share=canary / fleet if canary else None,
    )


def endpoint_state(endpoint: str, *, clients: AwsClients, parameter: str | None = None) -> EndpointState:
    """The endpoint's status, its variants with the version each runs, and the served-version parameter."""
    described = _describe_endpoint(clients.sagemaker, endpoint)
    if described is None:
        raise DeploymentError(
            f"endpoint {endpoint} does not exist; create it with `shoprec sagemaker deploy`"
        )
    config_name = str(described["EndpointConfigName"])
    weights = {v["VariantName"]: v for v in described.get("ProductionVariants", [])}
    variants = []
    for variant in _call(clients.sagemaker.describe_endpoint_config, EndpointConfigName=config_name)[
        "ProductionVariants"
    ]:
        live = weights.get(variant["VariantName"], {})
        variants.append(
            VariantState(
                name=str(variant["VariantName"]),
                model_name=str(variant["ModelName"]),
                version=_model_version(clients.sagemaker, str(variant["ModelName"])),
                current_weight=live.get("CurrentWeight"),
                instances=live.get("CurrentInstanceCount"),
            )
        )
    served = None
    if parameter:
        history = SsmModelVersion(parameter, client=clients.ssm).history()
        served = history[-1] if history else None
    pending = described.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    return EndpointState(
        endpoint=endpoint,
        status=str(described["EndpointStatus"]),
        endpoint_config_name=config_name,
        variants=variants,
        pending_config_name=str(pending) if pending else None,
        failure_reason=str(described.get("FailureReason", "")),
        served_version=served,
        parameter=parameter,
        last_deployment_config=described.get("LastDeploymentConfig"),
    )


def wait_in_service(
    endpoint: str, *, clients: AwsClients, delay_s: int = 30, max_attempts: int = 120
) -> None:
    """Block until the endpoint is InService again (an update finished or rolled back)."""
    try:
        clients.sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
        )
    except Exception as exc:  # botocore's WaiterError and client errors alike: report, do not guess
        raise DeploymentError(f"endpoint {endpoint} did not become InService: {exc}") from exc


def promote(
    endpoint: str,
    parameter: str,
    *,
    clients: AwsClients,
    version: str | None = None,
    wait: bool = False,
) -> SwitchResult:
    """Make the online services serve what the endpoint serves: set ``parameter`` to its version.

    ``version``, when given, must be the endpoint's (a rolled-back canary is never promoted). With
    ``wait``, an endpoint still shifting traffic is waited for first; without, that is an error.
    """
    state = endpoint_state(endpoint, clients=clients, parameter=parameter)
    if state.status != "InService" and wait:
        wait_in_service(endpoint, clients=clients)
        state = endpoint_state(endpoint, clients=clients, parameter=parameter)
    if state.status != "InService":
        raise DeploymentError(
            f"endpoint {endpoint} is {state.status} (a deployment is shifting traffic); promote once it is "
            "InService, or pass --wait"
        )
    serving = state.version
    if serving is None:
        raise DeploymentError(f"endpoint {endpoint} runs no single known shoprec version: {state.variants}")
    if version is not None and full_version(version) != serving:
        raise DeploymentError(
            f"endpoint {endpoint} serves {serving}, not {full_version(version)} (did the canary roll back?); "
            "deploy that version first"
        )
    changed = state.served_version != serving
    if changed:
        SsmModelVersion(parameter, client=clients.ssm).put(serving)
    return SwitchResult(from_version=state.served_version, to_version=serving, parameter_changed=changed)


def rollback(
    endpoint: str,
    parameter: str,
    *,
    clients: AwsClients,
    to_version: str | None = None,
) -> SwitchResult:
    """Put the endpoint and the served-version parameter back on the previous version.

    The previous version is the latest value of the parameter's history other than what the endpoint
    serves now (or ``to_version``). The endpoint switches with an all-at-once blue/green update (no canary:
    the target served before) to the newest endpoint config of that version; the parameter switches at once.
    """
    state = endpoint_state(endpoint, clients=clients, parameter=parameter)
    if state.status != "InService":
        raise DeploymentError(
            f"endpoint {endpoint} is {state.status}; an update in progress is rolled back by its CloudWatch "
            "alarms — wait until it is InService, then roll back"
        )
    current = state.version
    ssm = SsmModelVersion(parameter, client=clients.ssm)
    if to_version is not None:
        target = full_version(to_version)
    else:
        # Only content-hash versions have endpoint configs made by `deploy`; a name like the stack's
        # initial "v1" is skipped.
        earlier = [v for v in reversed(ssm.history()) if v != current and v.startswith("sha256:")]
        if not earlier:
            raise DeploymentError(f"no earlier version in {parameter}'s history to roll back to")
        target = full_version(earlier[0])
    config_name = None
    updating = False
    if current != target:
        config_name = _latest_config_for(clients.sagemaker, endpoint, target)
        _call(
            clients.sagemaker.update_endpoint,
            EndpointName=endpoint,
            EndpointConfigName=config_name,
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                }
            },
            # Going back must not shrink a fleet auto scaling has grown.
            RetainAllVariantProperties=True,
            ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
        )
        updating = True
    changed = state.served_version != target
    if changed:
        ssm.put(target)
    return SwitchResult(
        from_version=current,
        to_version=target,
        endpoint_config_name=config_name,
        endpoint_updating=updating,
        parameter_changed=changed,
    )


# --- internals ----------------------------------------------------------------------------------------


def _name(endpoint: str, version: str, settings: Sequence[Any]) -> str:
    """``{endpoint}-{12 hex of the version}-{6 hex of the settings}``: 63 characters at most."""
    digest = hashlib.sha256(json.dumps([version, *settings], default=str).encode()).hexdigest()[:6]
    return f"{endpoint}-{short_version(version)}-{digest}"


def _latest_config_for(sagemaker: Any, endpoint: str, version: str) -> str:
    prefix = f"{endpoint}-{short_version(version)}-"
    configs = _call(
        sagemaker.list_endpoint_configs,
        NameContains=prefix,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=100,
    )["EndpointConfigs"]
    names = [str(c["EndpointConfigName"]) for c in configs if str(c["EndpointConfigName"]).startswith(prefix)]
    if not names:
        raise DeploymentError(
            f"no endpoint config of {endpoint} for version {version}; "
            "deploy it with `shoprec sagemaker deploy`"
        )
    return names[0]


def _primary_variant(sagemaker: Any, endpoint: dict[str, Any]) -> dict[str, Any]:
    """Instance type (from the current config) and current instance count of the running variant."""
    config = _call(sagemaker.describe_endpoint_config, EndpointConfigName=endpoint["EndpointConfigName"])
    variants: list[dict[str, Any]] = config.get("ProductionVariants", [])
    chosen = next((v for v in variants if v["VariantName"] == VARIANT), variants[0] if variants else {})
    running: list[dict[str, Any]] = endpoint.get("ProductionVariants", [])
    live = next((v for v in running if v["VariantName"] == chosen.get("VariantName")), {})
    return {
        "InstanceType": chosen.get("InstanceType"),
        "CurrentInstanceCount": live.get("CurrentInstanceCount") or chosen.get("InitialInstanceCount"),
    }


def _model_version(sagemaker: Any, model_name: str) -> str | None:
    try:
        model = sagemaker.describe_model(ModelName=model_name)
    except ClientError:
        return None  # deleted, or not made by shoprec
    env = model.get("PrimaryContainer", {}).get("Environment", {})
    value = env.get(VERSION_ENV)
    return str(value) if value else None


def _describe_endpoint(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise BackendUnavailableError(f"describe_endpoint {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"describe_endpoint {name}: {exc}") from exc
    return described


def _exists(describe: Any, **kwargs: Any) -> bool:
    try:
        describe(**kwargs)
    except ClientError as exc:
        if _is_missing(exc):
            return False
        raise BackendUnavailableError(f"{describe.__name__}: {exc}") from exc
    return True


def _is_missing(exc: ClientError) -> bool:
    # SageMaker answers a describe of something absent with ValidationException "Could not find ...".
    error = exc.response.get("Error", {})
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and "not find" in str(
        error.get("Message", "")
    )


def _call(method: Any, **kwargs: Any) -> Any:
    try:
        return method(**kwargs)
    except ClientError as exc:
        raise DeploymentError(f"{exc.operation_name} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailableError(f"SageMaker request failed: {exc}") from exc
