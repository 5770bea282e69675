"""The steps of the scheduled retraining state machine (``statemachine/retrain.asl.json``).

EventBridge Scheduler starts the state machine with the stack's retraining settings (:class:`RetrainConfig`,
written by ``template.yaml``); every Task state calls the ``retrain`` function with ``{"step": name,
"state": <the execution's state>}`` and takes its answer as the new state. The steps:

``window``            fix the cut (the start time less the holdout), check the log holds events since then,
                      and make sure the served version has its ``model.tar.gz`` (the job's ``served`` input)
``train``             start the SageMaker training job of ``sagemaker/training/retrain.py``: train on the log
                      before the cut, score both bundles on the window after it, write the gate's decision
``training_status``   the job's status (the state machine waits and asks again until it ends)
``gate``              read the job's ``decision.json``: both versions' figures and pass or refuse
``publish``           the new bundle under ``models/{version}/`` (:func:`publish_model_tarball`)
``deploy``            the canary rollout of the stack (:func:`shoprec.deploy.rollout.deploy`); nothing when
                      the stack runs no endpoint (the promotion then serves the version)
``canary``            ``waiting`` while the stack updates, then ``healthy`` when the endpoint runs the new
                      config and the rollout alarms are quiet, ``failed`` otherwise
``promote``/``rollback``  :func:`shoprec.deploy.rollout.promote` / :func:`~shoprec.deploy.rollout.rollback`

Each step records its outcome as a metric (``Retrain<Step><Outcome>``, namespace ``shoprec``) and one log
line; a refused gate is the ``RetrainGateRefused`` metric, which the stack's alarm watches. The decisions
(the job request, the canary's verdict) are pure functions here; the SDK calls go through the clients of
:class:`StepClients`, which tests point at moto.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shoprec.adapters.aws.s3_artifacts import parse_s3_url
from shoprec.deploy.errors import DeploymentError
from shoprec.deploy.gate import DEFAULT_MARGIN, DEFAULT_METRICS, DEFAULT_MIN_USERS
from shoprec.deploy.models import ensure_model_data, model_url, publish_model_tarball, version_hex
from shoprec.deploy.rollout import (
    AwsClients,
    RolloutSpec,
    RolloutStatus,
    Stack,
    alarm_names,
    deploy,
    promote,
    read_stack,
    rollback,
    rollout_status,
)
from shoprec.deploy.rollout_plan import DEPLOY_ALARMS
from shoprec.observability import logger, metrics, metrics_enabled

ENTRY_SCRIPT = "retrain.py"
DECISION_JSON = "decision.json"
OUTPUT_TARBALL = "output.tar.gz"
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})


class RetrainConfig(BaseModel):
    """The retraining settings the schedule passes to every execution (``template.yaml`` fills them)."""

    model_config = ConfigDict(extra="forbid")

    stack: str
    stage: str
    region: str
    events_url: str = Field(description="s3://EventLogBucket/events/: the log the job reads")
    output_url: str = Field(description="s3://ArtifactBucket/retrain: training jobs' output")
    source_url: str = Field(description="s3://.../sourcedir.tar.gz: retrain.py with the shoprec package")
    role_arn: str
    dataset_url: str = Field(default="", description="optional base dataset the log's events follow")
    image: str = Field(description="the AWS PyTorch training image (the same as `shoprec sagemaker train`'s)")
    instance_type: str = "ml.g5.xlarge"
    max_run_hours: float = Field(default=2.0, gt=0, le=120)
    holdout_days: float = Field(default=7.0, gt=0)
    gate_metrics: str = ",".join(DEFAULT_METRICS)
    gate_margin: float = Field(default=DEFAULT_MARGIN, ge=0, lt=1)
    gate_min_users: int = Field(default=DEFAULT_MIN_USERS, ge=1)
    canary_weight: float = Field(default=0.1, ge=0, le=0.5)
    bake_minutes: float = Field(default=10.0, ge=0)
    hyperparameters: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class StepClients:
    """The clients the steps use: the rollout's plus SageMaker's training API (the same client)."""

    rollout: AwsClients

    @classmethod
    def default(cls) -> StepClients:
        return cls(AwsClients.default())


# --- pure decisions -----------------------------------------------------------------------------------


def cut_for(started: datetime, holdout_days: float) -> datetime:
    """The window's start: the execution's start time less the holdout."""
    return started.astimezone(UTC) - timedelta(days=holdout_days)


def window_partitions(keys: list[str], cut: datetime) -> list[str]:
    """The log objects whose ``date=YYYY-MM-DD`` partition (the day Firehose received them) is on or after
    the cut's day: the ones that can hold window events."""
    day = cut.date().isoformat()
    out = []
    for key in keys:
        part = next((p for p in key.split("/") if p.startswith("date=")), None)
        if part is not None and part.removeprefix("date=") >= day:
            out.append(key)
    return out


def training_job_request(config: RetrainConfig, run: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request of a run: script mode in the PyTorch training image (its toolkit
    fetches ``sagemaker_submit_directory`` and runs ``sagemaker_program``), the log, the served model and the
    optional base dataset as channels, the cut and the gate as hyper-parameters."""
    hyper = {
        **config.hyperparameters,
        "cut": str(run["cut"]),
        "gate-metrics": config.gate_metrics,
        "gate-margin": str(config.gate_margin),
        "gate-min-users": str(config.gate_min_users),
        "sagemaker_program": ENTRY_SCRIPT,
        "sagemaker_submit_directory": config.source_url,
        "sagemaker_region": config.region,
    }
    channels = [("events", config.events_url), ("served", str(run["served_model_data_url"]))]
    if config.dataset_url:
        channels.append(("train", config.dataset_url))
    return {
        "TrainingJobName": str(run["job_name"]),
        "RoleArn": config.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": config.image,
            "TrainingInputMode": "File",
        },
        # Hyper-parameter values reach the script as JSON-encoded command-line values.
        "HyperParameters": {key: json.dumps(value) for key, value in hyper.items()},
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": url,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, url in channels
        ],
        "OutputDataConfig": {"S3OutputPath": config.output_url.rstrip("/")},
        "ResourceConfig": {"InstanceType": config.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": round(config.max_run_hours * 3600)},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "Tags": [{"Key": "shoprec:stack", "Value": config.stack}],
    }


def canary_verdict(stack: Stack, status: RolloutStatus | None, alarm_states: Mapping[str, str]) -> str:
    """``waiting`` while the stack updates; ``failed`` when the update failed or rolled back, SageMaker
    rolled the endpoint back (out of step with the stack), or a rollout alarm is in ``ALARM``; else
    ``healthy``: the canary baked with its alarms quiet and the endpoint runs the new config."""
    if stack.busy:
        return "waiting"
    if stack.status.endswith(("_FAILED", "ROLLBACK_COMPLETE")):
        return "failed"
    if status is not None and not status.in_step:
        return "failed"
    if any(state == "ALARM" for state in alarm_states.values()):
        return "failed"
    return "healthy"


def rollback_needed(stack: Stack, new_version: str) -> bool:
    """Whether the stack still names the new version for the endpoint or the functions (a failed update
    that CloudFormation rolled back names the previous one again, and needs nothing more)."""
    new = version_hex(new_version)
    named = (stack.endpoint_version, stack.served_version)
    return any(v is not None and _hex_or_none(v) == new for v in named)


def _hex_or_none(version: str) -> str | None:
    try:
        return version_hex(version)
    except ValueError:  # the stack's first ModelVersion may be a folder name such as v1
        return None


# --- the steps ----------------------------------------------------------------------------------------


class RetrainError(DeploymentError):
    """A step found the run cannot go on (no window events, a job that did not complete)."""


def step_window(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    started = datetime.fromisoformat(str(run["started"]).replace("Z", "+00:00"))
    cut = cut_for(started, config.holdout_days)
    bucket, prefix = parse_s3_url(config.events_url)
    keys = _list_keys(clients.rollout.s3, bucket, prefix)
    recent = window_partitions(keys, cut)
    if not recent:
        raise RetrainError(f"no events logged under {config.events_url} since {cut.isoformat()}")
    stack = read_stack(config.stack, clients=clients.rollout)
    served = ensure_model_data(model_url(stack.models_url, stack.served_version), s3=clients.rollout.s3)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    return {
        **run,
        "cut": cut.isoformat(),
        "log_objects": len(keys),
        "window_objects": len(recent),
        "served_version": served.version,
        "served_model_data_url": served.model_data_url,
        "job_name": f"shoprec-{config.stage}-retrain-{stamp}"[:63],
    }


def step_train(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    clients.rollout.sagemaker.create_training_job(**training_job_request(config, run))
    return {**run, "job_status": "InProgress"}


def step_training_status(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    job = clients.rollout.sagemaker.describe_training_job(TrainingJobName=str(run["job_name"]))
    status = str(job["TrainingJobStatus"])
    out = {**run, "job_status": status, "job_done": status in TERMINAL_STATES}
    if out["job_done"]:
        out["model_data_url"] = str(job.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
        out["job_failure"] = str(job.get("FailureReason", ""))
    return out


def step_gate(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    if run.get("job_status") != "Completed":
        raise RetrainError(
            f"training job {run['job_name']} {run.get('job_status')}: {run.get('job_failure')}"
        )
    url = f"{config.output_url.rstrip('/')}/{run['job_name']}/output/{OUTPUT_TARBALL}"
    report = read_decision(url, s3=clients.rollout.s3)
    decision = report["decision"]
    figures = {
        f"{who}_{c['metric']}": c[who]
        for c in decision["checks"]
        for who in ("served", "new")
        if c[who] is not None
    }
    return {
        **run,
        "gate_passed": bool(decision["passed"]),
        "gate_reasons": decision["reasons"],
        "gate_users": decision["users"],
        "new_version": report["new_version"],
        "figures": figures,
    }


def step_publish(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    stack = read_stack(config.stack, clients=clients.rollout)
    published = publish_model_tarball(str(run["model_data_url"]), stack.models_url, s3=clients.rollout.s3)
    return {**run, "published_url": published.url, "published_version": published.version}


def step_deploy(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    if read_stack(config.stack, clients=clients.rollout).endpoint is None:
        # Without an endpoint the functions rank in-process: the promotion is the deployment, watched by
        # CloudFormation's rollback triggers. Creating an endpoint is an operator's call, not a schedule's.
        return {**run, "deploy_changes": {}, "endpoint": None}
    spec = RolloutSpec(weight=config.canary_weight, bake_minutes=config.bake_minutes)
    change = deploy(str(run["published_url"]), spec, stack_name=config.stack, clients=clients.rollout)
    return {**run, "deploy_changes": change.changes}


def step_canary(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    stack = read_stack(config.stack, clients=clients.rollout)
    status = None
    if not stack.busy and stack.endpoint is not None:
        status = rollout_status(config.stack, clients=clients.rollout, stack=stack)
    names = [alarm_names(config.stage)[role] for role in DEPLOY_ALARMS]
    alarms = clients.rollout.cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])
    states = {str(a["AlarmName"]): str(a["StateValue"]) for a in alarms}
    return {**run, "canary": canary_verdict(stack, status, states), "alarm_states": states}


def step_promote(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    promote(config.stack, clients=clients.rollout, version=str(run["published_version"]))
    return {**run, "promoted": run["published_version"]}


def step_rollback(config: RetrainConfig, run: dict[str, Any], clients: StepClients) -> dict[str, Any]:
    stack = read_stack(config.stack, clients=clients.rollout)
    if not rollback_needed(stack, str(run["published_version"])):
        # CloudFormation undid the update itself: rolling back again would step past the served version.
        return {**run, "rolled_back_to": None, "endpoint_version": stack.endpoint_version}
    change = rollback(config.stack, clients=clients.rollout, to_version=str(run["served_version"]))
    return {**run, "rolled_back_to": change.version}


Step = Callable[[RetrainConfig, dict[str, Any], StepClients], dict[str, Any]]
STEPS: dict[str, Step] = {
    "window": step_window,
    "train": step_train,
    "training_status": step_training_status,
    "gate": step_gate,
    "publish": step_publish,
    "deploy": step_deploy,
    "canary": step_canary,
    "promote": step_promote,
    "rollback": step_rollback,
}


def outcome_of(step: str, run: Mapping[str, Any]) -> str:
    """The word a step's metric and log line carry: what happened, not just that it ran."""
    if step == "gate":
        return "Passed" if run.get("gate_passed") else "Refused"
    if step == "training_status":
        return str(run.get("job_status", "Unknown")) if run.get("job_done") else "Running"
    if step == "canary":
        return {"waiting": "Waiting", "healthy": "Healthy"}.get(str(run.get("canary")), "Failed")
    return "Done"


def run_step(event: Mapping[str, Any], clients: StepClients | None = None) -> dict[str, Any]:
    """Run the step ``event["step"]`` on the execution's state ``event["state"]`` (``{"config": ...,
    "run": ...}``) and return the new state; record the outcome as a metric and a log line. A failed step
    records ``Retrain<Step>Error`` and raises (the state machine's Catch sends the run to its failure)."""
    step = str(event.get("step", ""))
    if step not in STEPS:
        raise ValueError(f"unknown retraining step {step!r}; expected one of {', '.join(STEPS)}")
    state = dict(event.get("state") or {})
    config = RetrainConfig.model_validate(state.get("config") or {})
    run = dict(state.get("run") or {})
    name = "Retrain" + "".join(part.capitalize() for part in step.split("_"))
    try:
        run = STEPS[step](config, run, clients or StepClients.default())
    except Exception as exc:
        _record(f"{name}Error", step, "Error", {"error": str(exc)})
        raise
    outcome = outcome_of(step, run)
    _record(f"{name}{outcome}", step, outcome, run)
    return {"config": state["config"], "run": run}


def read_decision(output_url: str, *, s3: Any) -> dict[str, Any]:
    """``decision.json`` of a retraining job's ``output.tar.gz``; ``RetrainError`` when it lacks one."""
    bucket, key = parse_s3_url(output_url)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.lstrip("./") == DECISION_JSON), None)
        handle = tar.extractfile(member) if member is not None else None
        if handle is None:
            raise RetrainError(f"{output_url} holds no {DECISION_JSON}: did the job run retrain.py?")
        report: dict[str, Any] = json.loads(handle.read())
    return report


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        keys.extend(str(obj["Key"]) for obj in page.get("Contents", []))
    return keys


def _record(metric: str, step: str, outcome: str, details: Mapping[str, Any]) -> None:
    if metrics_enabled():
        metrics.add_metric(name=metric, unit="Count", value=1)
        for key, value in details.get("figures", {}).items() if step == "gate" else ():
            who, _, metric = key.partition("_")  # "new_NDCG@10" -> RetrainNewNDCGAt10
            name = f"Retrain{who.capitalize()}{metric.replace('@', 'At')}"
            metrics.add_metric(name=name, unit="None", value=float(value))
    logger.info(
        f"retrain {step}: {outcome}",
        extra={"retrain_step": step, "outcome": outcome, "metric": metric, "details": _loggable(details)},
    )


def _loggable(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool | list | dict | None)}
