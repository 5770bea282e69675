"""IAM authentication to the cache: the token the functions sign, and the stack's cache user, whose access
string (template.yaml, CacheAppUser) is applied to a real redis-server to show that it allows every command
the cache adapter sends on its own keys and nothing beyond them.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import botocore.session
import pytest
import redis
from redis.exceptions import NoPermissionError
from tests.integration.template_file import load_template

from shoprec.adapters.aws.elasticache_auth import (
    TOKEN_LIFETIME_S,
    TOKEN_REUSE_S,
    ElastiCacheIamAuth,
    iam_redis_client,
)
from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.container import cache_for

USER = "shoprec-test-app"
CACHE = "shoprec-test"


@pytest.fixture
def session(aws_env: None) -> botocore.session.Session:
    return botocore.session.get_session()


def test_the_token_is_a_presigned_connect_request_for_the_user_without_a_scheme(
    session: botocore.session.Session,
) -> None:
    token = ElastiCacheIamAuth(USER, CACHE, region="eu-west-1", session=session).token()
    host, _, query = token.partition("/?")
    assert host == CACHE
    params = {k: v[0] for k, v in parse_qs(query).items()}
    assert params["Action"] == "connect"
    assert params["User"] == USER
    assert params["ResourceType"] == "ServerlessCache"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"].endswith("/eu-west-1/elasticache/aws4_request")
    assert params["X-Amz-Credential"].startswith("testing/")
    assert params["X-Amz-Expires"] == str(TOKEN_LIFETIME_S)
    assert len(params["X-Amz-Signature"]) == 64


def test_a_node_based_cluster_token_names_no_resource_type(session: botocore.session.Session) -> None:
    token = ElastiCacheIamAuth(USER, CACHE, serverless=False, session=session).token()
    assert "ResourceType" not in token


def test_a_token_is_reused_for_ten_minutes_then_signed_again(session: botocore.session.Session) -> None:
    now = [1000.0]
    auth = ElastiCacheIamAuth(USER, CACHE, session=session, clock=lambda: now[0])
    signed: list[str] = []
    original = auth.token

    def counting() -> str:
        signed.append(original())
        return signed[-1]

    auth.token = counting  # type: ignore[method-assign]
    first = auth.get_credentials()
    now[0] += TOKEN_REUSE_S - 1
    assert auth.get_credentials() == first
    now[0] += 1
    assert auth.get_credentials()[0] == USER
    assert len(signed) == 2
    assert TOKEN_REUSE_S < TOKEN_LIFETIME_S


@pytest.fixture
def app_user(redis_url: str) -> Iterator[str]:
    """The stack's CacheAppUser on the session's redis-server, with any password (redis cannot check a
    SigV4 token); removed afterwards."""
    access = load_template()["Resources"]["CacheAppUser"]["Properties"]["AccessString"]
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", USER, "reset", "nopass", *access.split())
    try:
        yield USER
    finally:
        admin.execute_command("ACL", "DELUSER", USER)
        admin.close()


def test_the_app_user_runs_the_cache_on_its_own_keys_and_nothing_else(
    redis_url: str, app_user: str, session: botocore.session.Session
) -> None:
    auth = ElastiCacheIamAuth(app_user, CACHE, session=session)
    client = iam_redis_client(redis_url, auth, timeout_s=2.0)
    cache = RedisCache(client)

    cache.set("iam:list", b"[1, 2]", 60, tags=["user:u1"])
    assert cache.get("iam:list") == b"[1, 2]"
    assert cache.invalidate_tag("user:u1") == 1
    assert cache.get("iam:list") is None
    cache.set("iam:gone", b"x", 0)  # a zero TTL deletes

    with pytest.raises(NoPermissionError):
        client.set("elsewhere:key", b"x")  # outside the app's prefix
    with pytest.raises(NoPermissionError):
        client.flushall()  # -@dangerous
    with pytest.raises(NoPermissionError):
        client.keys("shoprec:*")
    client.close()


def test_the_composition_root_connects_as_the_configured_user(
    redis_url: str, app_user: str, aws_env: None
) -> None:
    cache = cache_for(redis_url, timeout_s=2.0, iam_user=app_user, cache_name=CACHE)
    cache.set("iam:root", b"ok", 60)
    assert cache.get("iam:root") == b"ok"
