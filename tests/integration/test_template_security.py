"""The stack's security model, checked offline in template.yaml: who may call what, what is in front of the
API, what each role may do, and how the cache is reached. infra/README.md and docs/api.md
("Authentication and authorization") describe the model these tests hold the template to.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.integration.template_file import load_template, props

from shoprec.adapters.aws.redis_cache import DEFAULT_PREFIX
from shoprec.api.app import create_app

pytestmark = pytest.mark.infra

# The routes that change or erase data, or administer the service: the events router's (server to server)
# and the merchandising rules' (an admin tool; reads included).
WRITE_TAGS = frozenset({"events", "rules", "items"})


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res


def api_events(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = props(resources, "ApiFunction")["Events"]
    return {name: e["Properties"] for name, e in events.items() if e["Type"] == "Api"}


def app_write_routes() -> set[tuple[str, str]]:
    """(method, path) of every operation of the app's write router, from its OpenAPI schema."""
    paths = create_app().openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if WRITE_TAGS & set(operation.get("tags", []))
    }


# ---------------------------------------------------------------- a tiny evaluator of intrinsic functions
def evaluate(value: Any, refs: dict[str, str], conditions: dict[str, bool]) -> Any:
    """``value`` with Ref, Sub (both forms), Select, Split and If evaluated; refs maps names to values."""
    if isinstance(value, list):
        return [evaluate(v, refs, conditions) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((fn, arg),) = value.items()
    if fn == "Ref":
        return refs[arg]
    if fn == "Fn::Select":
        index, items = arg
        return evaluate(items, refs, conditions)[index]
    if fn == "Fn::Split":
        sep, text = arg
        return str(evaluate(text, refs, conditions)).split(sep)
    if fn == "Fn::If":
        cond, yes, no = arg
        return evaluate(yes if conditions[cond] else no, refs, conditions)
    if fn == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else arg
        names = {**refs, **{k: evaluate(v, refs, conditions) for k, v in local.items()}}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(names[m.group(1)]), text)
    return value


# ---------------------------------------------------------------- who may call what
def test_every_write_route_of_the_app_needs_sigv4_and_the_reads_do_not(resources: dict[str, Any]) -> None:
    """A shopper's API key reads; only an IAM principal with the writer or eraser policy writes or erases."""
    events = api_events(resources)
    iam = {
        (e["Method"].upper(), e["Path"])
        for e in events.values()
        if e.get("Auth", {}).get("Authorizer") == "AWS_IAM"
    }
    writes = app_write_routes()
    assert {
        ("POST", "/v1/events"),
        ("DELETE", "/v1/users/{user_id}"),
        ("PUT", "/v1/rules/{rule_id}"),
    } <= writes
    assert writes == iam
    for e in events.values():
        if e.get("Auth", {}).get("Authorizer") == "AWS_IAM":
            # The gateway invokes the function with its own resource permission, not the caller's.
            assert e["Auth"]["InvokeRole"] == "NONE"
        else:
            assert "Auth" not in e, e  # the proxy and POST /v1/rank: reads, API key only
    assert props(resources, "RestApi")["Auth"]["ApiKeyRequired"] is True  # quotas on every route


def test_the_caller_policies_grant_exactly_the_write_routes(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    refs = {
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "RestApi": "a1b2c3",
        "Stage": "dev",
    }
    granted: dict[str, set[str]] = {}
    for policy in (
        "ApiEventWriterPolicy",
        "ApiUserEraserPolicy",
        "ApiMerchandiserPolicy",
        "ApiCatalogWriterPolicy",
    ):
        assert resources[policy]["Type"] == "AWS::IAM::ManagedPolicy"
        for st in props(resources, policy)["PolicyDocument"]["Statement"]:
            if st["Action"] == "execute-api:Invoke":
                arns = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                granted.setdefault(policy, set()).update(evaluate(a, refs, {}) for a in arns)
    base = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3/dev"
    assert granted == {
        "ApiEventWriterPolicy": {f"{base}/POST/v1/events"},
        "ApiUserEraserPolicy": {f"{base}/DELETE/v1/users/*"},
        "ApiMerchandiserPolicy": {
            f"{base}/PUT/v1/rules/*",
            f"{base}/GET/v1/rules/*",
            f"{base}/DELETE/v1/rules/*",
            f"{base}/GET/v1/rules",
        },
        "ApiCatalogWriterPolicy": {f"{base}/PUT/v1/items/*", f"{base}/DELETE/v1/items/*"},
    }
    assert {
        "ApiEventWriterPolicyArn",
        "ApiUserEraserPolicyArn",
        "ApiMerchandiserPolicyArn",
        "ApiCatalogWriterPolicyArn",
    } <= set(template["Outputs"])


# ---------------------------------------------------------------- in front of the API
def test_a_regional_web_acl_with_the_common_rules_and_a_rate_limit_guards_the_stage(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    acl = props(resources, "WebAcl")
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    statements = {rule["Name"]: rule["Statement"] for rule in acl["Rules"]}
    managed = {
        s["ManagedRuleGroupStatement"]["Name"]
        for s in statements.values()
        if "ManagedRuleGroupStatement" in s
    }
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= managed
    (rate,) = [s["RateBasedStatement"] for s in statements.values() if "RateBasedStatement" in s]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["Limit"] == {"Ref": "WafRateLimitPerAddress"}
    assert template["Parameters"]["WafRateLimitPerAddress"]["MinValue"] >= 10  # WAF's own minimum
    assert len({rule["Priority"] for rule in acl["Rules"]}) == len(acl["Rules"])

    association = props(resources, "WebAclAssociation")
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    assert association["ResourceArn"]["Fn::Sub"].endswith("/restapis/${RestApi}/stages/${RestApi.Stage}")


def test_waf_logs_only_blocked_and_counted_requests_without_credentials(resources: dict[str, Any]) -> None:
    logging = props(resources, "WafLogging")
    assert logging["ResourceArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    assert props(resources, "WafLogGroup")["LogGroupName"]["Fn::Sub"].startswith("aws-waf-logs-")
    redacted = {f["SingleHeader"]["Name"] for f in logging["RedactedFields"]}
    assert redacted == {"authorization", "x-api-key"}
    assert logging["LoggingFilter"]["DefaultBehavior"] == "DROP"


# ---------------------------------------------------------------- roles
def test_no_role_keeps_the_vpc_managed_policy_and_its_logs_star(resources: dict[str, Any]) -> None:
    for logical_id, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            arns = [
                a["Fn::Sub"] if isinstance(a, dict) and "Fn::Sub" in a else a
                for a in res["Properties"].get("ManagedPolicyArns", [])
            ]
            assert not any("AWSLambdaVPCAccessExecutionRole" in str(a) for a in arns), logical_id
    for role in ("ApiFunctionRole", "IngestFunctionRole"):
        assert {"Ref": "FunctionVpcAccessPolicy"} in props(resources, role)["ManagedPolicyArns"]
        logs = [
            st
            for pol in props(resources, role)["Policies"]
            for st in pol["PolicyDocument"]["Statement"]
            if any(
                str(a).startswith("logs:")
                for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            )
        ]
        (own,) = logs
        assert set(own["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
        assert own["Resource"]["Fn::GetAtt"][0].endswith("LogGroup")


def test_function_network_permissions_are_the_eni_actions_within_the_account(
    resources: dict[str, Any],
) -> None:
    by_sid = {
        st["Sid"]: st for st in props(resources, "FunctionVpcAccessPolicy")["PolicyDocument"]["Statement"]
    }
    assert by_sid["DescribeNetwork"]["Resource"] == "*"
    assert set(by_sid["DescribeNetwork"]["Action"]) == {
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
    }
    manage = by_sid["ManageFunctionNetworkInterfaces"]
    assert set(manage["Action"]) == {
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
    assert manage["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*/*"}
    assert not any(
        a.startswith("logs:")
        for st in by_sid.values()
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    )


@pytest.mark.parametrize(
    ("image", "partition", "repository"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shoprec-ranker:v3", "aws", "shoprec-ranker"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/shoprec-ranker@sha256:" + "a" * 64,
            "aws",
            "team/shoprec-ranker",
        ),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/shoprec-ranker:latest",
            "aws-cn",
            "shoprec-ranker",
        ),
    ],
)
def test_the_endpoint_role_pulls_only_the_images_own_repository(
    template: dict[str, Any], resources: dict[str, Any], image: str, partition: str, repository: str
) -> None:
    assert re.fullmatch(template["Parameters"]["RankerImageUri"]["AllowedPattern"], image)
    statements = props(resources, "SageMakerExecutionRole")["Policies"][0]["PolicyDocument"]["Statement"]
    (pull,) = [st for st in statements if st["Sid"] == "PullInferenceImage"]
    region = image.split(".")[3]
    arn = evaluate(
        pull["Resource"],
        {"RankerImageUri": image, "AWS::Partition": partition},
        {"ChinaPartition": partition == "aws-cn"},
    )
    assert arn == f"arn:{partition}:ecr:{region}:123456789012:repository/{repository}"
    assert template["Conditions"]["ChinaPartition"] == {"Fn::Equals": [{"Ref": "AWS::Partition"}, "aws-cn"]}


# ---------------------------------------------------------------- cache access
def test_the_cache_admits_only_its_rbac_users_and_the_app_user_authenticates_with_iam(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert props(resources, "Cache")["UserGroupId"] == {"Ref": "CacheUserGroup"}
    group = props(resources, "CacheUserGroup")
    assert group["Engine"] == "valkey"
    members = {ref["Ref"] for ref in group["UserIds"]}
    assert members == {"CacheDefaultUser", "CacheAppUser"}
    default = props(resources, "CacheDefaultUser")
    assert default["UserName"] == "default"  # required in every group: switched off
    assert default["AccessString"].split()[0] == "off"
    app = props(resources, "CacheAppUser")
    assert app["AuthenticationMode"] == {"Type": "iam"}
    assert app["UserName"] == app["UserId"]  # IAM authentication requires it
    keys = [token for token in app["AccessString"].split() if token.startswith("~")]
    assert keys == [f"~{DEFAULT_PREFIX}*"]  # the app's own keys only
    assert "-@dangerous" in app["AccessString"].split()

    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["SHOPREC_CACHE"]["Fn::Sub"].startswith("rediss://")
    assert env["SHOPREC_CACHE_IAM_USER"] == {"Ref": "CacheAppUser"}
    assert env["SHOPREC_CACHE_NAME"] == {"Ref": "Cache"}
    (connect,) = [
        st
        for st in props(resources, "FunctionVpcAccessPolicy")["PolicyDocument"]["Statement"]
        if st["Action"] == "elasticache:Connect"
    ]
    cache_arn = "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}:serverlesscache:${Cache}"
    assert connect["Resource"] == [{"Fn::Sub": cache_arn}, {"Fn::GetAtt": ["CacheAppUser", "Arn"]}]


# ---------------------------------------------------------------- the ingest function's graph
def test_only_the_api_function_is_given_a_ranker(template: dict[str, Any], resources: dict[str, Any]) -> None:
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert "SHOPREC_RANKER" not in globals_env
    assert "SHOPREC_LATENCY_BUDGET_MS" not in globals_env
    assert "SHOPREC_RANKER" in props(resources, "ApiFunction")["Environment"]["Variables"]
    ingest_env = props(resources, "IngestFunction").get("Environment", {}).get("Variables", {})
    assert not {"SHOPREC_RANKER", "SHOPREC_LATENCY_BUDGET_MS"} & set(ingest_env)


def test_deletion_audit_records_are_keyed_by_a_generated_secret_the_stack_keeps(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    secret = resources["AuditKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"] == "Retain"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32  # SHOPREC_AUDIT_KEY needs 16 at least
    assert not any(r["Type"] == "AWS::SecretsManager::RotationSchedule" for r in resources.values())
    env = template["Globals"]["Function"]["Environment"]["Variables"]  # both functions delete or ingest
    assert env["SHOPREC_AUDIT_KEY"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${AuditKeySecret}:SecretString}}"
    }
