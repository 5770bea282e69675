"""Hostile input at the edges of the API: bodies that are not JSON in ways the JSON parser itself fails on,
huge values that a problem could echo, and paths that a redirect would build from the Host header.

Every answer is the documented problem+json (never ``400 about:blank``, never a 5xx), short whatever the
request, and nothing reaches the state store. The app is the unit tier's: the tiny bundle behind the real
composition root, with in-memory fakes for state, cache and ranker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.unit.api_fakes import Api, assert_problem, make_api

from shoprec.api.errors import MAX_PROBLEM_ERRORS

# A problem that echoed its input would be at least this long.
HUGE = 100_000
URL_HUGE = 60_000  # httpx refuses URLs over 65,536 characters
SHORT_PROBLEM_BYTES = 3_000


@pytest.fixture
def edge_api(fault_bundle_dir: Path) -> Api:
    return make_api(fault_bundle_dir)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "user_id": "u1", "item_id": "p5", "type": "view", **extra}


UNDECODABLE = {
    "bytes that are not UTF-8": b'{"events": [{"event_id": "\xff\xfe", "user_id": "u1"}]}',
    "nested 100,000 deep": b'{"events": ' + b"[" * HUGE + b"]" * HUGE + b"}",
    "an integer of 5,000 digits": b'{"events": [' + b"7" * 5_000 + b"]}",
}


@pytest.mark.parametrize("path", ["/v1/events", "/v1/rank"])
@pytest.mark.parametrize("body", UNDECODABLE.values(), ids=list(UNDECODABLE))
def test_a_body_the_json_parser_fails_on_is_a_422_naming_body(edge_api: Api, path: str, body: bytes) -> None:
    r = edge_api.client.post(path, content=body, headers={"content-type": "application/json"})
    problem = assert_problem(r, 422, "body")
    assert problem["type"] == "urn:shoprec:problem:validation-error"
    assert edge_api.state.apply_calls == 0


@pytest.mark.parametrize(
    ("method", "url", "json", "field"),
    [
        ("GET", f"/v1/recommendations/{'u' * URL_HUGE}", None, "user_id"),
        ("GET", f"/v1/items/{'i' * URL_HUGE}/similar", None, "item_id"),
        ("DELETE", f"/v1/users/{'u' * URL_HUGE}", None, "user_id"),
        ("GET", f"/v1/search?q={'q' * URL_HUGE}", None, "q"),
        ("POST", "/v1/events", {"events": [event(1, user_id="u" * HUGE)]}, "events[0].user_id"),
        ("POST", "/v1/events", {"events": [event(1)], "k" * HUGE: 1}, "k" * 255 + "…"),
    ],
    ids=["user id", "item id", "deleted user id", "query", "event's user id", "unknown field name"],
)
def test_a_huge_value_is_refused_in_a_short_problem(
    edge_api: Api, method: str, url: str, json: Any, field: str
) -> None:
    r = edge_api.client.request(method, url, json=json)
    problem = assert_problem(r, 422, field)
    assert len(r.content) < SHORT_PROBLEM_BYTES
    assert len(problem["instance"]) <= 256


def test_a_body_breaking_hundreds_of_fields_lists_the_first_ones_only(edge_api: Api) -> None:
    body = {"events": [event(n, item_id="bad id", type="like") for n in range(100)]}  # 200 errors
    r = edge_api.client.post("/v1/events", json=body)
    first = [f"events[{n // 2}].{('item_id', 'type')[n % 2]}" for n in range(MAX_PROBLEM_ERRORS)]
    assert_problem(r, 422, *first)
    assert len(r.content) < 10 * SHORT_PROBLEM_BYTES


@pytest.mark.parametrize("host", ["evil.example", "testserver"])
@pytest.mark.parametrize("path", ["/v1/health/", "/v1/recommendations/u1/", "/v1/events/"])
def test_a_trailing_slash_is_a_404_problem_not_a_redirect_built_from_the_host_header(
    edge_api: Api, host: str, path: str
) -> None:
    r = edge_api.client.get(path, headers={"host": host}, follow_redirects=False)
    assert_problem(r, 404)
    assert "location" not in r.headers
    assert host not in r.text
