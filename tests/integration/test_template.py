"""The deploy stack, checked offline: template.yaml's structure against the deployment's requirements,
infra/samconfig.toml against the template, the shoprec layer's build, and then the real tools through
scripts/validate_template.sh (cfn-lint, sam validate, checkov, sam build, layer sizes, handler imports).

Everything is marked ``infra`` (deselect with ``-m "not infra"``); the tool runs are also ``slow``. The
tool venvs are created on first use (a few minutes), after which the whole module takes about a minute.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.template_file import layer_sizes, load_template, props
from tests.pythons import find_python, pyc_flags

from shoprec.deploy import rollout
from shoprec.experiments import parse_experiment
from shoprec.settings import Settings

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "infra" / "samconfig.toml"
SCRIPT = ROOT / "scripts" / "validate_template.sh"
SKIPPED_STEP = 3  # validate_template.sh: a named step could not run for a missing prerequisite


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res


def of_type(resources: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == rtype}


def statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, statement) of every IAM policy statement the template defines."""
    for logical_id, res in resources.items():
        p = res.get("Properties", {})
        docs = []
        if res["Type"] == "AWS::IAM::Role":
            docs = [pol["PolicyDocument"] for pol in p.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [p["PolicyDocument"]]
        for doc in docs:
            for st in doc["Statement"]:
                yield logical_id, st


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- intrinsic resolution for env checks
PLACEHOLDERS = {
    "ArtifactBucket": "shoprec-dev-artifactbucket-1a2b3c",
    "StateTable": "shoprec-dev-StateTable-ABC123",
    "IdempotencyTable": "shoprec-dev-IdempotencyTable-DEF456",
    "ModelVersionParameter": "/shoprec/dev/model-version",
    "Cache.Endpoint.Address": "shoprec-dev-abc123.serverless.use1.cache.amazonaws.com",
    "RankerEndpoint.EndpointName": "shoprec-dev-ranker",
    "CacheAppUser": "shoprec-dev-app",
    "Cache": "shoprec-dev",
    "AuditKeySecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:shoprec/dev/audit-key-AbCdEf",
    "EventLogStream": "shoprec-dev-events",
}


NO_VALUE = object()  # what ``Ref: AWS::NoValue`` resolves to: the property is left out


def resolve(value: Any, template: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """Value with Ref/Sub/If resolved: parameters to their defaults, resources to PLACEHOLDERS."""
    params = template["Parameters"]

    def name(ref: str) -> str:
        if ref in PLACEHOLDERS:
            return PLACEHOLDERS[ref]
        if ref in params:
            return str(params[ref]["Default"])
        raise AssertionError(f"no placeholder for {ref}")

    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if fn == "Ref":
            return name(arg)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: name(m.group(1)), arg)
        if fn == "Fn::If":
            cond, yes, no = arg
            return resolve(yes if conditions[cond] else no, template, conditions)
    if isinstance(value, (str, int, float)):
        return value
    raise AssertionError(f"cannot resolve {value!r}")


def function_env(template: dict[str, Any], logical_id: str, conditions: dict[str, bool]) -> dict[str, str]:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    env.update(own)
    resolved = {k: resolve(v, template, conditions) for k, v in env.items()}
    return {k: str(v) for k, v in resolved.items() if v is not NO_VALUE}


# ---------------------------------------------------------------- functions and layers
def test_every_function_and_layer_targets_python312_on_one_architecture(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    (arch,) = glob["Architectures"]
    for logical_id, res in of_type(resources, "AWS::Serverless::Function").items():
        p = res["Properties"]
        assert p.get("Runtime", glob["Runtime"]) == "python3.12", logical_id
        assert p.get("Architectures", glob["Architectures"]) == [arch], logical_id
    layers = of_type(resources, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"RuntimeLayer", "ShoprecLayer"}
    for logical_id, res in layers.items():
        assert res["Metadata"]["BuildArchitecture"] == arch, logical_id
        assert res["Properties"]["CompatibleArchitectures"] == [arch], logical_id
        assert res["Properties"]["CompatibleRuntimes"] == ["python3.12"], logical_id
    # Both layers are built by Makefiles that compile bytecode with python3.12 (layers/runtime/Makefile).
    assert layers["RuntimeLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert layers["ShoprecLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert glob["Layers"] == [{"Ref": "RuntimeLayer"}, {"Ref": "ShoprecLayer"}]


def test_handlers_point_at_the_function_entry_modules(resources: dict[str, Any]) -> None:
    for logical_id, folder in (("ApiFunction", "api"), ("IngestFunction", "ingest")):
        p = props(resources, logical_id)
        assert p["CodeUri"] == f"functions/{folder}/"
        assert p["Handler"] == "handler.handler"
        assert (ROOT / "functions" / folder / "handler.py").is_file()


def test_api_function_shifts_traffic_by_canary_and_rolls_back_on_error_alarms(
    resources: dict[str, Any],
) -> None:
    p = props(resources, "ApiFunction")
    assert p["AutoPublishAlias"] == "live"
    pref = p["DeploymentPreference"]
    assert pref["Type"] == "Canary10Percent5Minutes"
    alarm_ids = [a["Ref"] for a in pref["Alarms"]]
    assert alarm_ids, "a canary without alarms never rolls back"
    for alarm_id in alarm_ids:
        assert resources[alarm_id]["Type"] == "AWS::CloudWatch::Alarm"
        assert "Condition" not in resources[alarm_id], "rollback alarms must always exist"
    canary = props(resources, "ApiCanaryErrorsAlarm")
    dims = {d["Name"]: d["Value"] for d in canary["Dimensions"]}
    assert dims["ExecutedVersion"] == {"Fn::GetAtt": ["ApiFunction", "Version.Version"]}


def test_api_events_are_a_proxy_with_body_validation_on_writes(resources: dict[str, Any]) -> None:
    events = props(resources, "ApiFunction")["Events"]
    assert events["Proxy"]["Properties"]["Path"] == "/{proxy+}"
    assert events["Proxy"]["Properties"]["Method"] == "ANY"
    models = props(resources, "RestApi")["Models"]
    for event, model in (("PostEvents", "EventsRequest"), ("PostRank", "RankRequest")):
        request_model = events[event]["Properties"]["RequestModel"]
        assert request_model == {"Model": model, "Required": True, "ValidateBody": True}
        assert models[model]["type"] == "object"
    assert models["EventsRequest"]["properties"]["events"]["maxItems"] == 100
    assert models["RankRequest"]["properties"]["item_ids"]["maxItems"] == 300


def test_ingest_function_reports_partial_batch_failures_from_its_queue(resources: dict[str, Any]) -> None:
    (event,) = props(resources, "IngestFunction")["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_queue_visibility_covers_six_function_timeouts_plus_the_batching_window(
    resources: dict[str, Any],
) -> None:
    fn = props(resources, "IngestFunction")
    (event,) = fn["Events"].values()
    window = event["Properties"].get("MaximumBatchingWindowInSeconds", 0)
    assert props(resources, "IngestQueue")["VisibilityTimeout"] >= 6 * fn["Timeout"] + window


def test_failed_messages_move_to_a_dead_letter_queue_that_is_alarmed(resources: dict[str, Any]) -> None:
    redrive = props(resources, "IngestQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 10
    dims = props(resources, "DeadLetterQueueDepthAlarm")["Dimensions"]
    assert dims == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]}}]


@pytest.mark.parametrize("with_endpoint", [True, False], ids=["endpoint", "in-process-ranker"])
@pytest.mark.parametrize("function", ["ApiFunction", "IngestFunction"])
def test_function_environment_is_valid_shoprec_settings(
    template: dict[str, Any], function: str, with_endpoint: bool
) -> None:
    conditions = {"CreateEndpoint": with_endpoint, "IsProd": False, "HasRankerVariant": False}
    env = function_env(template, function, conditions)
    assert "SHOPREC_RANKER_VARIANT" not in env  # unset by default: the bundle's default_variant
    assert env["SHOPREC_STATE"].startswith("dynamodb://")
    assert env["SHOPREC_CACHE"].startswith("rediss://")
    assert env["SHOPREC_ARTIFACTS"].startswith("s3://")
    assert env["OPENBLAS_NUM_THREADS"] == "1"  # numpy's pool would spin beside every request
    if function == "ApiFunction":
        assert env["SHOPREC_RANKER"] == ("sagemaker://shoprec-dev-ranker" if with_endpoint else "onnx")
    else:  # the ingest graph builds no ranker (shoprec.container.build_ingest_container)
        assert "SHOPREC_RANKER" not in env
    assert (env["SHOPREC_CACHE_IAM_USER"], env["SHOPREC_CACHE_NAME"]) == ("shoprec-dev-app", "shoprec-dev")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "shoprec"
    assert env["POWERTOOLS_SERVICE_NAME"] == "shoprec-api"
    fields = set(Settings.model_fields)
    known = {k.removeprefix("SHOPREC_").lower(): v for k, v in env.items() if k.startswith("SHOPREC_")}
    settings = Settings.model_validate({k: v for k, v in known.items() if k in fields})
    assert settings.state == env["SHOPREC_STATE"]
    assert settings.latency_budget_ms == float(
        env.get("SHOPREC_LATENCY_BUDGET_MS", settings.latency_budget_ms)
    )
    assert settings.cache_iam_user == env["SHOPREC_CACHE_IAM_USER"]


def test_the_experiment_parameter_is_the_api_functions_experiment_json(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """docs/experiments.md: the stack's Experiment parameter is SHOPREC_EXPERIMENT of the API function
    alone (it serves the lists; the ingest function builds no pipeline), the JSON itself, empty by default."""
    param = template["Parameters"]["Experiment"]
    assert param["Default"] == ""
    doc = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    compact = json.dumps(json.loads(example), separators=(",", ":"))
    assert parse_experiment(compact).name == "fusion-2026-12"
    assert len(compact) <= param["MaxLength"]
    for accepted in ("", compact, example):
        assert re.fullmatch(param["AllowedPattern"], accepted)
    assert not re.fullmatch(param["AllowedPattern"], "/var/task/experiment.json")  # no file to point at
    readers = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and "SHOPREC_EXPERIMENT" in str(resource["Properties"].get("Environment"))
    }
    assert readers == {"ApiFunction"}
    assert "SHOPREC_EXPERIMENT" not in template["Globals"]["Function"]["Environment"]["Variables"]
    variables = props(resources, "ApiFunction")["Environment"]["Variables"]
    assert variables["SHOPREC_EXPERIMENT"] == {"Ref": "Experiment"}


def test_the_ranker_variant_parameter_reaches_every_ranker_and_is_unset_by_default(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """docs/compression.md: one stack parameter picks the ranker file wherever it is served (the API
    function's in-process ranker and both endpoint models); empty leaves SHOPREC_RANKER_VARIANT unset, so the
    bundle's default_variant is served (an empty variable would fail the settings' validation)."""
    param = template["Parameters"]["RankerVariant"]
    assert param["Default"] == ""
    for accepted in ("", "fp32", "int8", "int8-static", "kd.small_2"):
        assert re.fullmatch(param["AllowedPattern"], accepted)
    for refused in ("INT8", "-int8", "int8/../../x", "x" * 65):
        assert not re.fullmatch(param["AllowedPattern"], refused)
    assert template["Conditions"]["HasRankerVariant"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RankerVariant"}, ""]}]
    }
    expected = {"Fn::If": ["HasRankerVariant", {"Ref": "RankerVariant"}, {"Ref": "AWS::NoValue"}]}
    readers = {
        logical_id
        for logical_id, resource in resources.items()
        if "SHOPREC_RANKER_VARIANT" in str(resource.get("Properties", {}))
    }
    assert readers == {"ApiFunction", "RankerModel", "ChallengerModel"}
    assert props(resources, "ApiFunction")["Environment"]["Variables"]["SHOPREC_RANKER_VARIANT"] == expected
    for model in ("RankerModel", "ChallengerModel"):
        assert (
            props(resources, model)["PrimaryContainer"]["Environment"]["SHOPREC_RANKER_VARIANT"] == expected
        )


def test_the_invoke_permission_names_the_endpoint_the_functions_are_given(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """IAM compares SageMaker endpoint ARNs in lower case; the name is fixed and lower case to match."""
    name = resolve(props(resources, "RankerEndpoint")["EndpointName"], template, {})
    assert name == name.lower()
    (statement,) = props(resources, "ApiFunctionInvokeRankerPolicy")["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"]["Fn::Sub"].endswith(":endpoint/shoprec-${Stage}-ranker")
    assert resources["ApiFunctionInvokeRankerPolicy"]["Condition"] == "CreateEndpoint"


# ---------------------------------------------------------------- data stores
def test_state_table_is_on_demand_with_pitr_ttl_and_encryption(resources: dict[str, Any]) -> None:
    p = props(resources, "StateTable")
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert {(a["AttributeName"], a["KeyType"]) for a in p["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert {(a["AttributeName"], a["AttributeType"]) for a in p["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert resources["StateTable"]["DeletionPolicy"] == "Retain"


def test_idempotency_table_has_the_powertools_shape(resources: dict[str, Any]) -> None:
    p = props(resources, "IdempotencyTable")
    assert p["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert p["BillingMode"] == "PAY_PER_REQUEST"


def test_artifact_bucket_is_versioned_encrypted_private_logged_and_tls_only(
    resources: dict[str, Any],
) -> None:
    p = props(resources, "ArtifactBucket")
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(p["PublicAccessBlockConfiguration"].values())
    assert p["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    (deny,) = props(resources, "ArtifactBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cache_is_serverless_valkey_reachable_only_from_the_functions_on_6379(
    resources: dict[str, Any],
) -> None:
    p = props(resources, "Cache")
    assert p["Engine"] == "valkey"
    assert p["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroup"}]
    ingress = [
        r["Properties"]
        for r in of_type(resources, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Ref": "CacheSecurityGroup"}
    ]
    assert ingress == [
        {
            "GroupId": {"Ref": "CacheSecurityGroup"},
            "Description": "Valkey over TLS from the functions",
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6379,
            "SourceSecurityGroupId": {"Ref": "LambdaSecurityGroup"},
        }
    ]
    assert "SecurityGroupIngress" not in props(resources, "CacheSecurityGroup")


def test_created_vpc_reaches_every_aws_api_the_functions_call_without_nat(resources: dict[str, Any]) -> None:
    assert not of_type(resources, "AWS::EC2::NatGateway")
    assert not of_type(resources, "AWS::EC2::InternetGateway")
    endpoints = [p["Properties"] for p in of_type(resources, "AWS::EC2::VPCEndpoint").values()]
    services = {e["ServiceName"]["Fn::Sub"].rsplit("}.", 1)[1]: e["VpcEndpointType"] for e in endpoints}
    assert services == {
        "s3": "Gateway",
        "dynamodb": "Gateway",
        "ssm": "Interface",
        "sagemaker.runtime": "Interface",
        "kinesis-firehose": "Interface",
    }


def test_the_event_log_stream_delivers_dated_json_lines_to_an_unversioned_bucket(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    dest = props(resources, "EventLogStream")["ExtendedS3DestinationConfiguration"]
    assert dest["BucketARN"] == {"Fn::GetAtt": ["EventLogBucket", "Arn"]}
    assert dest["Prefix"] == "events/date=!{timestamp:yyyy-MM-dd}/"  # the layout the eventlog loader reads
    assert dest["ErrorOutputPrefix"].startswith("errors/")
    assert (dest["FileExtension"], dest["CompressionFormat"]) == (".jsonl", "UNCOMPRESSED")
    bucket = props(resources, "EventLogBucket")
    assert "VersioningConfiguration" not in bucket  # erasure rewrites objects; old versions would keep them
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    env = function_env(template, "IngestFunction", {"CreateEndpoint": True})
    assert env["SHOPREC_EVENT_LOG"] == "firehose://shoprec-dev-events"
    for role in ("ApiFunctionRole", "IngestFunctionRole"):
        puts = [
            st
            for lid, st in statements(resources)
            if lid == role and st["Action"] == "firehose:PutRecordBatch"
        ]
        assert [st["Resource"] for st in puts] == [{"Fn::GetAtt": ["EventLogStream", "Arn"]}], role
    erase = [
        st
        for lid, st in statements(resources)
        if lid == "ApiFunctionRole" and "s3:DeleteObject" in st["Action"]
    ]
    assert [st["Resource"] for st in erase] == [{"Fn::Sub": "${EventLogBucket.Arn}/events/*"}]


# ---------------------------------------------------------------- ranking endpoint
def test_endpoint_config_has_a_primary_and_an_optional_challenger_variant(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["EndpointInstanceType"]["Default"] == "ml.g5.xlarge"
    primary, challenger = props(resources, "RankerEndpointConfig")["ProductionVariants"]
    assert primary["VariantName"] == "primary"
    assert primary["InitialVariantWeight"] == {"Ref": "PrimaryVariantWeight"}
    cond, variant, otherwise = challenger["Fn::If"]
    assert cond == "CreateChallenger"
    assert variant["VariantName"] == "challenger"
    assert variant["InitialVariantWeight"] == {"Ref": "ChallengerVariantWeight"}
    assert otherwise == {"Ref": "AWS::NoValue"}


def test_each_variant_scales_on_invocations_per_instance(resources: dict[str, Any]) -> None:
    targets = of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget")
    variants = {t["Properties"]["ResourceId"]["Fn::Sub"].rsplit("/", 1)[1] for t in targets.values()}
    assert variants == {"primary", "challenger"}
    for policy in of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        spec = config["PredefinedMetricSpecification"]
        assert spec["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


# ---------------------------------------------------------------- IAM
# Actions with no resource-level permissions, so "*" is the only possible resource.
RESOURCELESS_ACTIONS = frozenset(
    {"ecr:GetAuthorizationToken", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
    # Step Functions' execution logging (RetrainStateMachineRole): log deliveries take no resource ARNs.
    | {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
)


def test_no_policy_statement_grants_data_actions_on_every_resource(resources: dict[str, Any]) -> None:
    for logical_id, st in statements(resources):
        if st["Effect"] != "Allow" or "*" not in as_list(st["Resource"]):
            continue
        assert set(as_list(st["Action"])) <= RESOURCELESS_ACTIONS, (logical_id, st)


def test_no_policy_statement_uses_wildcard_actions(resources: dict[str, Any]) -> None:
    for logical_id, st in statements(resources):
        if st["Effect"] == "Allow":
            for action in as_list(st["Action"]):
                assert "*" not in action, (logical_id, action)


def test_functions_use_their_own_roles_with_only_the_services_they_call(resources: dict[str, Any]) -> None:
    expected = {
        "ApiFunctionRole": {"logs", "s3", "dynamodb", "ssm", "firehose"},
        "IngestFunctionRole": {"logs", "sqs", "s3", "dynamodb", "ssm", "firehose"},
    }
    for function, role in (("ApiFunction", "ApiFunctionRole"), ("IngestFunction", "IngestFunctionRole")):
        assert props(resources, function)["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        services = {
            action.split(":")[0]
            for logical_id, st in statements(resources)
            if logical_id == role
            for action in as_list(st["Action"])
        }
        assert services == expected[role], role


# ---------------------------------------------------------------- API, alarms, dashboard, outputs
def test_api_requires_keys_has_a_usage_plan_access_logs_and_tracing(resources: dict[str, Any]) -> None:
    p = props(resources, "RestApi")
    assert p["Auth"]["ApiKeyRequired"] is True
    plan = p["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert plan["Quota"]["Period"] == "DAY"
    assert p["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert json.loads(p["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    assert p["TracingEnabled"] is True
    assert p["StageName"] == {"Ref": "Stage"}


def test_alarms_cover_api_errors_latency_ranker_fallbacks_dead_letters_and_the_endpoint(
    resources: dict[str, Any],
) -> None:
    watched = set()
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if "MetricName" in p:
            watched.add((p["Namespace"], p["MetricName"], p.get("ExtendedStatistic", p.get("Statistic"))))
        for metric in p.get("Metrics", []):
            if "MetricStat" in metric:
                m = metric["MetricStat"]["Metric"]
                watched.add((m["Namespace"], m["MetricName"], metric["MetricStat"]["Stat"]))
    assert {
        ("AWS/ApiGateway", "5XXError", "Average"),
        ("AWS/ApiGateway", "Latency", "p99"),
        ("shoprec", "RankerFallback", "Sum"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
        ("AWS/SageMaker", "Invocation5XXErrors", "Sum"),
        ("AWS/SageMaker", "InvocationModelErrors", "Sum"),
    } <= watched


def test_dashboard_body_is_json_once_substituted(resources: dict[str, Any]) -> None:
    body, variables = props(resources, "Dashboard")["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"EndpointName"}
    filled = re.sub(r"\$\{[^}]+\}", "1", body)
    widgets = json.loads(filled)["widgets"]
    assert {w["type"] for w in widgets} == {"alarm", "metric"}
    referenced = set(re.findall(r"\$\{([A-Za-z]+)[.}]", body)) - {"AWS", "EndpointName"}
    assert referenced <= set(resources) | {"Stage", "ApiP99LatencyThresholdMs"}


def test_outputs_name_everything_a_client_or_operator_needs(template: dict[str, Any]) -> None:
    assert {
        "ApiUrl",
        "ApiKeyId",
        "RankerEndpointName",
        "StateTableName",
        "IdempotencyTableName",
        "ArtifactBucketName",
        "IngestQueueUrl",
    } <= set(template["Outputs"])
    assert template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "RestApiApiKey"}


def test_every_checkov_skip_says_why(resources: dict[str, Any]) -> None:
    for logical_id, res in resources.items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip.get("comment", "")) > 20, (logical_id, skip)


# ---------------------------------------------------------------- samconfig
def test_samconfig_environments_override_declared_parameters_with_allowed_values(
    template: dict[str, Any],
) -> None:
    config = tomllib.loads(SAMCONFIG.read_text())
    params = template["Parameters"]
    envs = {k for k, v in config.items() if isinstance(v, dict) and "deploy" in v}
    assert envs == {"dev", "prod"}
    for env in envs:
        deploy = config[env]["deploy"]["parameters"]
        assert config[env]["global"]["parameters"]["template_file"] == "template.yaml"
        assert deploy["stack_name"] == f"shoprec-{env}"
        overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
        assert overrides["Stage"] == env
        for name, value in overrides.items():
            spec = params[name]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], (env, name, value)
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), (env, name, value)
            if spec["Type"] == "Number":
                number = float(value)
                assert number >= spec.get("MinValue", number), (env, name, value)
                assert number <= spec.get("MaxValue", number), (env, name, value)


# ---------------------------------------------------------------- rollouts (shoprec sagemaker, one owner)
def _refs(value: Any) -> set[str]:
    """Every parameter or resource ``value`` refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(arg, str):
                    found |= _refs(arg[1])
            else:
                found |= _refs(arg)
    elif isinstance(value, list):
        for item in value:
            found |= _refs(item)
    return found


def test_the_rollout_parameters_are_the_stacks_and_samconfig_leaves_them_to_the_cli(
    template: dict[str, Any],
) -> None:
    """`sam deploy` keeps a parameter's previous value unless samconfig names it: naming a rollout parameter
    there would undo every promotion on the next infrastructure deploy."""
    assert set(rollout.ROLLOUT_PARAMETERS) <= set(template["Parameters"])
    config = tomllib.loads(SAMCONFIG.read_text())
    for env in ("dev", "prod"):
        overrides = {i.split("=", 1)[0] for i in config[env]["deploy"]["parameters"]["parameter_overrides"]}
        assert not overrides & set(rollout.ROLLOUT_PARAMETERS), env
    assert {rollout.BUCKET_OUTPUT, rollout.PARAMETER_OUTPUT, rollout.ENDPOINT_OUTPUT} <= set(
        template["Outputs"]
    )
    assert template["Resources"][rollout.ENDPOINT_CONFIG_RESOURCE]["Type"] == "AWS::SageMaker::EndpointConfig"


def test_a_promotion_changes_only_the_served_version_parameter(template: dict[str, Any]) -> None:
    """ModelVersion reaches the functions only through SSM: a promotion publishes no new function version
    (no CodeDeploy shift), and the functions follow within the Powertools cache's minute."""
    users = {lid for lid, res in template["Resources"].items() if "ModelVersion" in _refs(res)}
    assert users == {"ModelVersionParameter"}
    assert "ModelVersion" not in _refs(template["Globals"])
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SHOPREC_ARTIFACTS"] == {"Fn::Sub": "s3://${ArtifactBucket}/models"}
    assert env["SHOPREC_MODEL_VERSION_PARAMETER"] == {"Ref": "ModelVersionParameter"}


def test_a_new_model_moves_the_endpoint_blue_green_under_the_rollback_alarms(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    guarded, config, plain = props(resources, "RankerEndpoint")["DeploymentConfig"]["Fn::If"]
    assert guarded == "UseDeploymentGuardrails"
    assert template["Conditions"][guarded] == {"Fn::Equals": [{"Ref": rollout.GUARDRAILS}, "true"]}
    assert plain == {"Ref": "AWS::NoValue"}  # SageMaker's plain blue/green: rollbacks, variant changes
    policy = config["BlueGreenUpdatePolicy"]
    cond, canary, all_at_once = policy["TrafficRoutingConfiguration"]["Fn::If"]
    assert cond == "CanaryDeployment"
    assert template["Conditions"]["CanaryDeployment"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": rollout.CANARY_INSTANCES}, 0]}]
    }
    assert canary["Type"] == "CANARY"
    assert canary["CanarySize"] == {"Type": "INSTANCE_COUNT", "Value": {"Ref": rollout.CANARY_INSTANCES}}
    assert (
        canary["WaitIntervalInSeconds"]
        == all_at_once["WaitIntervalInSeconds"]
        == {"Ref": rollout.BAKE_SECONDS}
    )
    assert all_at_once["Type"] == "ALL_AT_ONCE"
    assert policy["TerminationWaitInSeconds"] == {"Ref": rollout.TERMINATION_WAIT_SECONDS}
    assert policy["MaximumExecutionTimeoutInSeconds"] == {"Ref": rollout.MAX_EXECUTION_SECONDS}
    # The endpoint's rollback alarms, and the ones the CLI gives CloudFormation, are the stack's alarms.
    listed = [a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
    assert listed == ["PrimaryVariantErrorsAlarm", "RankerFallbackRateAlarm"]
    named = {
        resolve(props(resources, lid)["AlarmName"], template, {})
        for lid in ("Api5xxAlarm", "RankerFallbackRateAlarm", "PrimaryVariantErrorsAlarm")
    }
    assert named == set(rollout.alarm_names("dev").values())
    # Alarms name the endpoint by its fixed name: a GetAtt would make the endpoint and its alarms a cycle.
    for lid, res in of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert "RankerEndpoint" not in _refs(res), lid


def test_the_model_version_the_stack_gives_the_container_is_the_folder_of_its_model_data(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    hex_ = "0123456789abcdef" * 4
    url = f"s3://shoprec-dev-artifactbucket-1a2b3c/models/{hex_}/model.tar.gz"
    for param, model in (("ModelDataUrl", "RankerModel"), ("ChallengerModelDataUrl", "ChallengerModel")):
        assert re.fullmatch(template["Parameters"][param]["AllowedPattern"], url)
        assert not re.fullmatch(template["Parameters"][param]["AllowedPattern"], url.replace(hex_, "v1"))
        container = props(resources, model)["PrimaryContainer"]
        index, split = container["Environment"][rollout.VERSION_ENV]["Fn::Select"]
        sep, ref = split["Fn::Split"]
        assert ref == {"Ref": param}
        assert url.split(sep)[index] == hex_
        assert rollout.version_of(url) == f"sha256:{hex_}"


@pytest.mark.parametrize(
    ("spec", "fleet"),
    [
        (rollout.RolloutSpec(), 2),
        (rollout.RolloutSpec(weight=0.25, bake_minutes=60, termination_wait_minutes=60), 8),
        (rollout.RolloutSpec(weight=0, bake_minutes=0, termination_wait_minutes=0), 1),
    ],
)
def test_the_deployment_parameters_the_cli_writes_are_within_the_templates_bounds(
    template: dict[str, Any], spec: rollout.RolloutSpec, fleet: int
) -> None:
    for name, value in spec.deployment_parameters(fleet).items():
        declared = template["Parameters"][name]
        assert declared["Type"] == "Number"
        assert (
            declared.get("MinValue", float("-inf")) <= float(value) <= declared.get("MaxValue", float("inf"))
        )


# ---------------------------------------------------------------- layer staging and sizes
def test_layer_makefile_stages_the_package_without_offline_only_code(tmp_path: Path) -> None:
    makefile = ROOT / "layers" / "shoprec" / "Makefile"
    python = find_python("3.12")
    if python is None:
        pytest.skip("no python3.12 to compile the layer's bytecode with (the runtime's version)")
    subprocess.run(
        ["make", "--no-print-directory", "-f", str(makefile), "build-ShoprecLayer", f"PYTHON={python}"],
        env={**os.environ, "ARTIFACTS_DIR": str(tmp_path)},
        cwd=tmp_path,  # sam runs make in a scratch folder, not the repository
        check=True,
        capture_output=True,
    )
    package = tmp_path / "python" / "shoprec"
    assert (package / "__init__.py").is_file()
    assert (package / "api" / "app.py").is_file()
    assert not (package / "training").exists()
    assert not (package / "cli").exists()
    # Every module is compiled by python3.12 into unchecked-hash bytecode (read-only /opt: no compiling at
    # a cold start), and the working tree's own __pycache__ folders are not what was shipped.
    modules = list(package.rglob("*.py"))
    compiled = list(package.rglob("__pycache__/*.cpython-312.pyc"))
    assert len(compiled) == len(modules) > 50
    assert {pyc_flags(p) for p in compiled} == {1}
    assert not list(package.rglob("*.cpython-311.pyc"))


def fake_build(root: Path, layer_bytes: int) -> Path:
    build = root / "build"
    (build / "Fn").mkdir(parents=True)
    (build / "Fn" / "handler.py").write_bytes(b"x" * 1000)
    (build / "Deps" / "python").mkdir(parents=True)
    (build / "Deps" / "python" / "big.so").write_bytes(b"\0" * layer_bytes)
    (build / "template.yaml").write_text(
        "Globals:\n  Function:\n    Layers:\n      - !Ref Deps\n"
        "Resources:\n"
        "  Deps:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n      ContentUri: Deps\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: Fn\n"
    )
    return build


def test_layer_sizes_counts_a_function_with_its_layers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = fake_build(tmp_path, layer_bytes=2 * 1024 * 1024)
    assert layer_sizes.main(["--build-dir", str(build), "--limit-mib", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Fn\s+2\.0 MiB .* ok\s+\(Fn \+ Deps\)", out), out


def test_layer_sizes_fails_a_function_over_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = fake_build(tmp_path, layer_bytes=2 * 1024 * 1024)
    assert layer_sizes.main(["--build-dir", str(build), "--limit-mib", "1"]) == 1
    assert "OVER THE LIMIT" in capsys.readouterr().out


def test_layer_sizes_without_a_build_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert layer_sizes.main(["--build-dir", str(tmp_path)]) == 2
    assert "sam build" in capsys.readouterr().err


# ---------------------------------------------------------------- the tools (scripts/validate_template.sh)
def run_steps(*steps: str) -> str:
    """Run validation steps; a step skipped for a missing prerequisite skips the test with its reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # e.g. a moto endpoint
    env["SHOPREC_PROJECT_PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(SCRIPT), *steps], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == SKIPPED_STEP:
        reasons = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("SKIPPED")]
        pytest.skip("; ".join(dict.fromkeys(reasons)) or output[-2000:])
    assert proc.returncode == 0, output[-8000:]
    return output


@pytest.fixture(scope="module")
def tools() -> None:
    """The tool venvs (created on the first run, a few minutes; then instant)."""
    run_steps("setup")


@pytest.mark.slow
@pytest.mark.usefixtures("tools")
def test_cfn_lint_finds_nothing() -> None:
    assert "0 errors, 0 warnings" in run_steps("cfn-lint")


@pytest.mark.slow
@pytest.mark.usefixtures("tools")
def test_sam_validate_and_lint_pass_for_every_samconfig_environment() -> None:
    output = run_steps("sam-validate")
    assert "config env 'dev'" in output
    assert "config env 'prod'" in output


@pytest.mark.slow
@pytest.mark.usefixtures("tools")
def test_checkov_reports_no_failed_check() -> None:
    output = run_steps("checkov")
    assert re.search(r"Failed checks: 0\b", output), output[-4000:]


@pytest.mark.slow
@pytest.mark.usefixtures("tools")
def test_sam_build_fits_lambda_limits_and_handlers_import_from_the_layers() -> None:
    output = run_steps("build", "sizes", "imports")
    assert "OVER THE LIMIT" not in output
    assert "ApiFunction: handler.handler imports" in output
    assert "IngestFunction: handler.handler imports" in output
    # Both layers ship bytecode of the runtime's Python that no zip timestamp invalidates.
    build = ROOT / ".aws-sam" / "build"
    for layer in ("RuntimeLayer", "ShoprecLayer"):
        site = build / layer / "python"
        modules = [p for p in site.rglob("*.py") if "__pycache__" not in p.parts]
        compiled = list(site.rglob("__pycache__/*.cpython-312.pyc"))
        assert len(compiled) >= 0.95 * len(modules), (layer, len(compiled), len(modules))
        assert {pyc_flags(p) for p in compiled[:200]} == {1}, layer
