"""A shoprec stack on moto, with what moto's CloudFormation lacks filled in, for the rollout tests.

moto's CloudFormation keeps a stack's parameters, conditions and outputs and applies ``UpdateStack`` with
``UsePreviousTemplate`` and ``UsePreviousValue``, but its SageMaker resources ignore ``EndpointName`` and
cannot appear on an update, and its SSM parameter is deleted and re-created on an update (AWS updates it in
place, keeping the history ``rollback`` reads). So the double is:

- on moto: a stack with template.yaml's own ``Parameters`` (their patterns and bounds apply to every value a
  rollout writes), its ``CreateEndpoint`` condition and the outputs the rollout reads;
- ``StackEmulator``, registered as the fake of ``UpdateStack`` and ``DescribeStackResource`` on the client
  the code under test uses: it passes the update on to moto, then does what template.yaml's resources would
  do: the model(s) with the version in their environment, the endpoint config with its variants and
  weights, the endpoint moved to it, and the SSM parameter overwritten with ``ModelVersion``.

The requests themselves are recorded and validated against botocore's service model by the recorder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from tests.integration.model_versions import set_served_version
from tests.integration.template_file import load_template

from shoprec.deploy import rollout

ROLE = "arn:aws:iam::123456789012:role/shoprec-ranker"
INSTANCE_TYPE = "ml.g4dn.xlarge"  # in template.yaml's pattern and in moto's (older) list of types


def double_template(bucket: str) -> dict[str, Any]:
    real = load_template()
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": real["Parameters"],
        "Conditions": {"CreateEndpoint": real["Conditions"]["CreateEndpoint"]},
        "Resources": {  # moto needs one resource; the emulator stands in for the real ones
            "Anchor": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::Sub": "${AWS::StackName}"}},
            }
        },
        "Outputs": {
            rollout.BUCKET_OUTPUT: {"Value": bucket},
            rollout.PARAMETER_OUTPUT: {"Value": {"Fn::Sub": "/shoprec/${Stage}/model-version"}},
            rollout.ENDPOINT_OUTPUT: {
                "Condition": "CreateEndpoint",
                "Value": {"Fn::Sub": "shoprec-${Stage}-ranker"},
            },
        },
    }


STAGE = rollout.STAGE


@dataclass
class StackEmulator:
    """Fakes of ``UpdateStack`` and ``DescribeStackResource`` that apply an update as template.yaml would."""

    cloudformation: Any  # backdoor clients: not recorded, not faked
    sagemaker: Any
    ssm: Any
    cloudwatch: Any
    endpoint_config: dict[str, str] = field(default_factory=dict)
    """Stack name → physical id of its RankerEndpointConfig."""

    def create_stack(self, name: str, bucket: str, stage: str, **values: str) -> None:
        """The stack as `sam deploy` creates it: every parameter given (moto keeps only given ones for
        ``UsePreviousValue``), ``ModelVersion`` written to the SSM parameter, the API's alarms created."""
        template = double_template(bucket)
        given = {STAGE: stage, "EndpointInstanceType": INSTANCE_TYPE, **values}
        parameters = []
        for key, spec in template["Parameters"].items():
            default = spec.get("Default", "")
            value = given.get(key, ",".join(default) if isinstance(default, list) else str(default))
            parameters.append({"ParameterKey": key, "ParameterValue": value})
        self.cloudformation.create_stack(
            StackName=name, TemplateBody=json.dumps(template), Parameters=parameters
        )
        set_served_version(
            f"/shoprec/{stage}/model-version", given.get(rollout.MODEL_VERSION, "v1"), ssm=self.ssm
        )
        names = rollout.alarm_names(stage)
        for role in ("api-5xx", "ranker-fallback-rate"):
            self.cloudwatch.put_metric_alarm(**alarm(names[role]))

    def reset(self, stage: str) -> None:
        """Remove what an earlier test left under ``stage``'s names (moto lives for the whole session)."""
        self.ssm.delete_parameters(Names=[f"/shoprec/{stage}/model-version"])
        self.cloudwatch.delete_alarms(AlarmNames=list(rollout.alarm_names(stage).values()))
        endpoint = f"shoprec-{stage}-ranker"
        if _exists(self.sagemaker.describe_endpoint, EndpointName=endpoint):
            self.sagemaker.delete_endpoint(EndpointName=endpoint)

    def update_stack(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["StackName"]
        before = self._parameters(name)
        self.cloudformation.update_stack(
            StackName=name,
            UsePreviousTemplate=request["UsePreviousTemplate"],
            Parameters=request["Parameters"],
            Capabilities=request.get("Capabilities", []),
        )
        after = self._parameters(name)
        stage = after[STAGE]
        if after[rollout.MODEL_VERSION] != before[rollout.MODEL_VERSION]:
            set_served_version(f"/shoprec/{stage}/model-version", after[rollout.MODEL_VERSION], ssm=self.ssm)
        model_keys = (
            rollout.MODEL_DATA_URL,
            rollout.CHALLENGER_MODEL_DATA_URL,
            rollout.RANKER_IMAGE,
            rollout.PRIMARY_WEIGHT,
            rollout.CHALLENGER_WEIGHT,
        )
        if after[rollout.MODEL_DATA_URL] and any(before[k] != after[k] for k in model_keys):
            self._move_endpoint(name, stage, after)
        stack_id = self.cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackId"]
        return {"StackId": stack_id}

    def describe_stack_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        name, logical_id = request["StackName"], request["LogicalResourceId"]
        assert logical_id == rollout.ENDPOINT_CONFIG_RESOURCE, logical_id
        return {
            "StackResourceDetail": {
                "StackName": name,
                "LogicalResourceId": logical_id,
                # As CloudFormation gives it: the config's ARN, whose name part is in lower case.
                "PhysicalResourceId": (
                    f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{self.endpoint_config[name].lower()}"
                ),
                "ResourceType": "AWS::SageMaker::EndpointConfig",
                "LastUpdatedTimestamp": "2026-11-29T00:00:00Z",
                "ResourceStatus": "UPDATE_COMPLETE",
            }
        }

    def _parameters(self, name: str) -> dict[str, str]:
        stack = self.cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]}

    def _move_endpoint(self, name: str, stage: str, params: dict[str, str]) -> None:
        variants = [("primary", params[rollout.MODEL_DATA_URL], params[rollout.PRIMARY_WEIGHT])]
        if params[rollout.CHALLENGER_MODEL_DATA_URL]:
            variants.append(
                ("challenger", params[rollout.CHALLENGER_MODEL_DATA_URL], params[rollout.CHALLENGER_WEIGHT])
            )
        production = []
        for variant, url, weight in variants:
            model = f"{name}-{variant}-{_digest(url, params[rollout.RANKER_IMAGE])}"
            if not _exists(self.sagemaker.describe_model, ModelName=model):
                self.sagemaker.create_model(
                    ModelName=model,
                    ExecutionRoleArn=ROLE,
                    PrimaryContainer={
                        "Image": params[rollout.RANKER_IMAGE],
                        "ModelDataUrl": url,
                        "Environment": {rollout.VERSION_ENV: url.split("/")[4]},  # !Select [4, !Split]
                    },
                )
            production.append(
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InstanceType": params["EndpointInstanceType"],
                    "InitialInstanceCount": int(params[rollout.MIN_INSTANCES]),
                    "InitialVariantWeight": float(weight),
                }
            )
        config = f"{name}-config-{_digest(json.dumps(production))}"
        if not _exists(self.sagemaker.describe_endpoint_config, EndpointConfigName=config):
            self.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=production)
        endpoint = f"shoprec-{stage}-ranker"
        if _exists(self.sagemaker.describe_endpoint, EndpointName=endpoint):
            self.sagemaker.delete_endpoint(EndpointName=endpoint)  # moto has no UpdateEndpoint
        self.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        self.endpoint_config[name] = config
        # template.yaml's PrimaryVariantErrorsAlarm comes with the endpoint (Condition CreateEndpoint).
        self.cloudwatch.put_metric_alarm(**alarm(rollout.alarm_names(stage)["ranker-primary-errors"]))


def alarm(name: str) -> dict[str, Any]:
    """PutMetricAlarm arguments of a stand-in for one of the stack's alarms (only its name matters here)."""
    return {
        "AlarmName": name,
        "Namespace": "shoprec",
        "MetricName": "RankerFallback",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }


def _exists(describe: Any, **kwargs: str) -> bool:
    try:
        describe(**kwargs)
    except ClientError:
        return False
    return True


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]
