"""RedisCache beyond the shared contract, against a private redis-server (see the redis_url fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from shoprec.adapters.aws.redis_cache import (
    GENERATION_TTL_S,
    MAX_TAGGED_TTL_S,
    NO_GENERATION,
    RedisCache,
    redact_url,
)
from shoprec.errors import BackendUnavailableError


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_keys_and_tag_sets_live_under_the_prefix_with_ttls(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_url, prefix=prefix)
    cache.set("home:u1", b"v", 30, tags=["user:u1"])
    assert raw.get(f"{prefix}home:u1") == b"v"
    assert 29_000 < raw.pttl(f"{prefix}home:u1") <= 30_000
    assert raw.smembers(f"{prefix}tag:user:u1") == {f"{prefix}home:u1".encode()}
    assert 29_000 < raw.pttl(f"{prefix}tag:user:u1") <= 30_000


def test_a_tag_set_is_extended_by_longer_entries_and_never_shortened(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_url, prefix=prefix)
    cache.set("a", b"1", 30, tags=["t"])
    cache.set("b", b"2", 300, tags=["t"])
    assert raw.pttl(f"{prefix}tag:t") > 290_000
    cache.set("c", b"3", 5, tags=["t"])
    assert raw.pttl(f"{prefix}tag:t") > 290_000


def test_invalidating_a_large_tag_drops_every_entry(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=prefix)
    for i in range(1_200):
        cache.set(f"k{i}", b"v", 60, tags=["big"])
    assert cache.invalidate_tag("big") == 1_200
    assert list(raw.scan_iter(match=f"{prefix}*")) == [f"{prefix}gen:big".encode()]  # the new generation


def test_an_injected_client_is_used_as_is(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    cache = RedisCache(raw, prefix=prefix)
    cache.set("k", b"v", 60)
    assert cache.get("k") == b"v"
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    assert cache.describe() == f"redis://127.0.0.1:{port}/0"


def test_an_unreachable_server_is_reported_as_backend_unavailable(nowhere: str) -> None:
    cache = RedisCache(nowhere.replace("http://", "redis://") + "/0")
    with pytest.raises(BackendUnavailableError, match="GET failed"):
        cache.get("k")
    with pytest.raises(BackendUnavailableError, match="SET failed"):
        cache.set("k", b"v", 60, tags=["t"])
    with pytest.raises(BackendUnavailableError, match="invalidate failed"):
        cache.invalidate_tag("t")
    with pytest.raises(BackendUnavailableError, match="GET generation failed"):
        cache.generation("t")


def test_describe_redacts_the_password() -> None:
    cache = RedisCache("rediss://default:s3cret@my-cache.serverless.use1.cache.amazonaws.com:6379/0")
    assert cache.describe() == "rediss://default:***@my-cache.serverless.use1.cache.amazonaws.com:6379/0"
    assert "s3cret" not in redact_url("redis://:s3cret@localhost:6380")
    assert redact_url("redis://localhost:6379/2") == "redis://localhost:6379/2"


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="redis:// or rediss://"):
        RedisCache("http://user:pw@localhost:6379")


def test_an_invalidation_writes_a_fresh_generation_token_that_lives_a_week(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_url, prefix=prefix)
    assert cache.generation("user:u1") == NO_GENERATION
    assert raw.exists(f"{prefix}gen:user:u1") == 0  # reading creates nothing
    cache.invalidate_tag("user:u1")
    token = raw.get(f"{prefix}gen:user:u1")
    assert token is not None
    assert cache.generation("user:u1") == token.decode() != NO_GENERATION
    assert GENERATION_TTL_S * 1000 - 5_000 < raw.pttl(f"{prefix}gen:user:u1") <= GENERATION_TTL_S * 1000


def test_a_tagged_entry_lives_at_most_a_day_so_generations_outlive_it(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_url, prefix=prefix)
    cache.set("tagged", b"v", 30 * 24 * 3600, tags=["t"])
    cache.set("plain", b"v", 30 * 24 * 3600)
    assert raw.pttl(f"{prefix}tagged") <= MAX_TAGGED_TTL_S * 1000 < GENERATION_TTL_S * 1000
    assert raw.pttl(f"{prefix}plain") > MAX_TAGGED_TTL_S * 1000
