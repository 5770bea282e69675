"""The Lambda handlers with events shaped as AWS sends them, against a real container: the Amazon
Scientific bundle, sqlite state in a temporary folder, the in-process cache and the ONNX ranker.

Every test loads a fresh copy of the handler module (``lambda_events.load_handler``), which is exactly what
a new Lambda execution environment does.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.integration.lambda_events import (
    ROOT,
    LambdaContext,
    load_handler,
    popular,
    sqs_event,
)

from shoprec.adapters.local.sqlite_items import SqliteItemStore
from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.artifacts import Bundle


def rest_v1_event(
    method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None
) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) proxy event for resource ``/{proxy+}`` on stage ``prod``."""
    request_id = str(uuid.uuid4())
    headers = {
        "Accept": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-65f1a2b3-0123456789abcdef01234567",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "JJbxmHjcvHcFtNg=",
            "requestTime": "10/Mar/2026:00:03:59 +0000",
            "path": f"/prod{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1773100239000,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "curl/8.5.0",
                "user": None,
            },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def http_v2_event(
    method: str, path: str, *, query: str = "", body: Any = None, base64_body: bool = False
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event on the ``$default`` stage and route."""
    headers = {
        "accept": "application/json",
        "content-length": "0",
        "host": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-65f1a2b3-abcdef0123456789abcdef01",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    raw_body: str | None = None
    if body is not None:
        data = json.dumps(body).encode()
        raw_body = base64.b64encode(data).decode() if base64_body else data.decode()
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(data))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2026:00:03:59 +0000",
            "timeEpoch": 1773100239000,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(part.split("=", 1) for part in query.split("&"))
    if raw_body is not None:
        event["body"] = raw_body
    return event


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


# --- API handler ---------------------------------------------------------------------------------------


def test_rest_v1_recommendations_for_an_unknown_user_are_cold_start(
    function_env: Path, bundle: Bundle
) -> None:
    api = load_handler("api")
    event = rest_v1_event("GET", "/v1/recommendations/new-user", query={"k": "5"})
    response = api.handler(event, LambdaContext())
    assert response["statusCode"] == 200
    body = body_of(response)
    assert len(body["items"]) == 5
    assert body["model_version"] == bundle.model_version
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert response["headers"]["x-request-id"] == event["requestContext"]["requestId"]
    assert all(item["item_id"] in bundle.item_ids for item in body["items"])


def test_http_v2_events_then_recommendations_change_and_exclude_seen(
    function_env: Path, bundle: Bundle
) -> None:
    api = load_handler("api")
    top = popular(bundle, 3)
    before = body_of(
        api.handler(http_v2_event("GET", "/v1/recommendations/u-42", query="k=10"), LambdaContext())
    )
    events = {
        "events": [
            {"event_id": f"ev-{i}", "user_id": "u-42", "item_id": it, "type": "view"}
            for i, it in enumerate(top)
        ]
    }
    posted = api.handler(http_v2_event("POST", "/v1/events", body=events, base64_body=True), LambdaContext())
    assert posted["statusCode"] == 200, posted["body"]
    assert body_of(posted)["applied"] == 3
    after = body_of(
        api.handler(http_v2_event("GET", "/v1/recommendations/u-42", query="k=10"), LambdaContext())
    )
    ids_after = [item["item_id"] for item in after["items"]]
    assert ids_after != [item["item_id"] for item in before["items"]]
    assert not set(top) & set(ids_after)
    assert after["request_id"] == "JKJaXmPLvHcESHA="


def test_http_v2_similar_for_an_unknown_item_is_a_404_problem(function_env: Path) -> None:
    api = load_handler("api")
    response = api.handler(http_v2_event("GET", "/v1/items/not-an-item/similar"), LambdaContext())
    assert response["statusCode"] == 404
    assert response["headers"]["content-type"] == "application/problem+json"
    assert response["isBase64Encoded"] is False  # API Gateway passes the problem to clients as text
    problem = body_of(response)
    assert problem["errors"] == [{"field": "item_id", "message": "unknown item id 'not-an-item'"}]
    assert problem["request_id"] == "JKJaXmPLvHcESHA="


def test_rest_v1_search_rank_and_health(function_env: Path, bundle: Bundle) -> None:
    api = load_handler("api")
    search = api.handler(
        rest_v1_event("GET", "/v1/search", query={"q": "glass beaker", "k": "5"}), LambdaContext()
    )
    assert search["statusCode"] == 200
    assert body_of(search)["facets"]["brand"]
    top = popular(bundle, 4)
    ranked = api.handler(
        rest_v1_event("POST", "/v1/rank", body={"user_id": "u1", "item_ids": top}), LambdaContext()
    )
    assert sorted(item["item_id"] for item in body_of(ranked)["items"]) == sorted(top)
    health = body_of(api.handler(rest_v1_event("GET", "/v1/health"), LambdaContext()))
    assert health["backends"]["state"].startswith("sqlite:///")
    assert health["backends"]["ranker"].startswith("onnxruntime://")


def test_the_container_is_built_on_the_first_event_and_reused_while_warm(function_env: Path) -> None:
    api = load_handler("api")
    provider = api.app.state.containers
    assert not provider.built  # importing the handler loads no model
    api.handler(rest_v1_event("GET", "/v1/health"), LambdaContext())
    first = provider.get()
    api.handler(rest_v1_event("GET", "/v1/recommendations/u1"), LambdaContext())
    assert provider.get() is first


def test_stage_latencies_go_out_as_emf_on_stdout(
    function_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = load_handler("api")
    api.handler(rest_v1_event("GET", "/v1/recommendations/u1"), LambdaContext())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for doc in lines for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"RecommendLatency", "RecallLatency", "CacheMiss"} <= names
    assert lines[-1]["service"] == "shoprec-api"


def test_the_packages_own_log_records_carry_the_invocations_keys(
    function_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning from inside shoprec (stdlib logging) comes out as the handler's JSON, with the request and
    correlation ids of the invocation, once, not as a bare line from the runtime's root handler."""
    api = load_handler("api")
    out = io.StringIO()
    monkeypatch.setattr(api.logger.registered_handler, "stream", out)
    event = rest_v1_event("GET", "/v1/recommendations/u1")
    api.handler(event, LambdaContext())
    logging.getLogger("shoprec.services.recommendation").warning("ranker fell back: %s", "timeout")
    (record,) = [json.loads(line) for line in out.getvalue().splitlines() if "ranker fell back" in line]
    assert record["message"] == "ranker fell back: timeout"
    assert record["level"] == "WARNING"
    assert record["function_request_id"] == LambdaContext().aws_request_id
    assert record["correlation_id"] == event["requestContext"]["requestId"]
    assert record["service"] == "shoprec-api"


TRACED_INVOCATION = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("api_handler", sys.argv[1])
api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api)
import botocore.client
class Context:
    function_name = "shoprec-api"; memory_limit_in_mb = 1024; aws_request_id = "traced"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:shoprec-api"
os.environ["_X_AMZN_TRACE_ID"] = sys.argv[3]  # what the runtime sets for each invocation
response = api.handler(json.loads(sys.argv[2]), Context())
print(json.dumps({
    "status": response["statusCode"],
    "tracer_enabled": not api.tracer.disabled,
    "botocore_patched": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
}))
"""


def test_with_lambda_active_tracing_the_api_handler_sends_its_subsegment_to_the_xray_daemon(
    function_env: Path,
) -> None:
    """In Lambda (``LAMBDA_TASK_ROOT`` set; the stack turns on Active tracing) the tracer is on from the
    import, AWS SDK calls are patched, and each invocation's subsegment reaches the daemon inside the
    invocation's trace. A fresh process, as in Lambda: an active tracer patches botocore process-wide."""
    trace_id, parent_id = "1-6a2f3b10-0123456789abcdef01234567", "53995c3f42cd8ad8"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        environment = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"} | {
            "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "api"),
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                TRACED_INVOCATION,
                str(ROOT / "functions" / "api" / "handler.py"),
                json.dumps(rest_v1_event("GET", "/v1/recommendations/u1")),
                f"Root={trace_id};Parent={parent_id};Sampled=1",
            ],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        daemon.setblocking(False)
        documents = []
        while True:
            try:
                documents.append(json.loads(daemon.recv(65536).decode().partition("\n")[2]))
            except BlockingIOError:
                break
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "status": 200,
        "tracer_enabled": True,
        "botocore_patched": True,
    }
    [subsegment] = [d for d in documents if d.get("name") == "## handler"]
    assert (subsegment["trace_id"], subsegment["parent_id"]) == (trace_id, parent_id)
    assert subsegment["annotations"] == {"ColdStart": True, "Service": "shoprec-api"}


# --- ingest handler ------------------------------------------------------------------------------------


def test_sqs_batch_reports_only_the_poison_message_and_applies_the_rest_exactly_once(
    function_env: Path, bundle: Bundle
) -> None:
    ingest = load_handler("ingest")
    a, b, c = popular(bundle, 3)
    batch = sqs_event(
        json.dumps(
            {
                "events": [
                    {
                        "event_id": "sqs-1",
                        "user_id": "buyer",
                        "item_id": a,
                        "type": "view",
                        "timestamp": "2026-03-01T10:00:00Z",
                    },
                    {
                        "event_id": "sqs-2",
                        "user_id": "buyer",
                        "item_id": b,
                        "type": "cart",
                        "timestamp": "2026-03-01T10:01:00Z",
                    },
                ]
            }
        ),
        '{"events": [{"event_id": "sqs-3", "user_id": "buyer", "item_id": ',  # truncated JSON: the poison
        json.dumps(
            {
                "event_id": "sqs-4",
                "user_id": "buyer",
                "item_id": c,
                "type": "purchase",
                "timestamp": "2026-03-01T10:02:00Z",
            }
        ),
    )
    poison_id = batch["Records"][1]["messageId"]

    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    store = SqliteUserStateStore(function_env)
    assert store.recent_items("buyer") == [a, b, c]

    # SQS redelivers the whole batch (e.g. after a timeout): nothing is applied twice.
    assert ingest.handler(batch, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert store.recent_items("buyer") == [a, b, c]


def test_a_message_with_unknown_items_fails_alone_and_stores_none_of_its_events(
    function_env: Path, bundle: Bundle
) -> None:
    ingest = load_handler("ingest")
    (a,) = popular(bundle, 1)
    batch = sqs_event(
        json.dumps(
            {
                "events": [
                    {"event_id": "x-1", "user_id": "mixed", "item_id": a, "type": "view"},
                    {"event_id": "x-2", "user_id": "mixed", "item_id": "no-such-item", "type": "view"},
                ]
            }
        ),
        json.dumps({"event_id": "x-3", "user_id": "other", "item_id": a, "type": "click"}),
        json.dumps({"event_id": "x-4", "user_id": "other", "item_id": a, "type": "like"}),  # invalid type
    )
    result = ingest.handler(batch, LambdaContext())
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {batch["Records"][0]["messageId"], batch["Records"][2]["messageId"]}
    store = SqliteUserStateStore(function_env)
    assert store.recent_items("mixed") == []
    assert store.recent_items("other") == [a]


def test_sqs_item_messages_write_the_live_catalogue_and_the_item_is_usable_in_the_next_message(
    function_env: Path, bundle: Bundle
) -> None:
    ingest = load_handler("ingest")
    (a,) = popular(bundle, 1)
    put = {
        "put_item": {
            "item_id": "sqs-new-1",
            "title": "Handheld Digital Anemometer Wind Speed Meter",
            "categories": ["Industrial & Scientific", "Test, Measure & Inspect"],
            "price": 24.99,
        }
    }
    batch = sqs_event(
        json.dumps(put),
        json.dumps({"event_id": "it-1", "user_id": "shopper", "item_id": "sqs-new-1", "type": "view"}),
        json.dumps({"delist_item": a}),
        json.dumps({"delist_item": "never-heard-of"}),  # unknown to the bundle and the store
        json.dumps({"put_item": {"item_id": "sqs-new-2"}}),  # no title
        json.dumps({"put_item": put["put_item"], "delist_item": a}),  # two writes in one message
    )
    result = ingest.handler(batch, LambdaContext())
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {batch["Records"][i]["messageId"] for i in (3, 4, 5)}
    items = SqliteItemStore(function_env)
    stored = items.get("sqs-new-1")
    assert stored is not None
    assert stored.title == put["put_item"]["title"]
    assert stored.price == 24.99
    delisted = items.get(a)
    assert delisted is not None
    assert delisted.delisted
    assert SqliteUserStateStore(function_env).recent_items("shopper") == ["sqs-new-1"]
    version = items.version()
    # Redelivered: the same content changes nothing, not even the store's version.
    again = ingest.handler(sqs_event(json.dumps(put), json.dumps({"delist_item": a})), LambdaContext())
    assert again == {"batchItemFailures": []}
    assert items.version() == version
