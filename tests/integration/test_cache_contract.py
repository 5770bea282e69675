"""The Cache specification, run against every implementation (in-process, and a real redis-server).

Time is advanced without sleeping: the in-process cache gets a fake clock; for Redis every key under the
test's prefix has its remaining TTL shortened by the same amount (dropped when it would have expired).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from shoprec.adapters.aws.redis_cache import RedisCache
from shoprec.adapters.local.memory_cache import MemoryCache
from shoprec.ports import Cache


@dataclass
class CacheUnderTest:
    cache: Cache
    advance: Callable[[float], None]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def subject(request: pytest.FixtureRequest) -> Iterator[CacheUnderTest]:
    if request.param == "memory":
        clock = FakeClock()

        def tick(seconds: float) -> None:
            clock.now += seconds

        yield CacheUnderTest(MemoryCache(clock=clock), tick)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    raw = redis.Redis.from_url(url)

    def age(seconds: float) -> None:
        for key in raw.scan_iter(match=f"{prefix}*"):
            left = raw.pttl(key)
            if left >= 0 and left <= seconds * 1000:
                raw.delete(key)
            elif left >= 0:
                raw.pexpire(key, left - int(seconds * 1000))

    cache = RedisCache(url, prefix=prefix)
    yield CacheUnderTest(cache, age)
    cache.close()
    raw.close()


def test_implements_the_port(subject: CacheUnderTest) -> None:
    assert isinstance(subject.cache, Cache)


def test_a_missing_key_is_a_miss(subject: CacheUnderTest) -> None:
    assert subject.cache.get("nothing") is None


def test_a_stored_value_is_returned_byte_for_byte(subject: CacheUnderTest) -> None:
    value = bytes(range(256)) + "é✓".encode()
    subject.cache.set("k", value, 60)
    assert subject.cache.get("k") == value


def test_setting_a_key_again_replaces_its_value(subject: CacheUnderTest) -> None:
    subject.cache.set("k", b"one", 60)
    subject.cache.set("k", b"two", 60)
    assert subject.cache.get("k") == b"two"


def test_an_entry_expires_after_its_ttl(subject: CacheUnderTest) -> None:
    subject.cache.set("short", b"s", 10)
    subject.cache.set("long", b"l", 100)
    subject.advance(9)
    assert subject.cache.get("short") == b"s"
    subject.advance(2)
    assert subject.cache.get("short") is None
    assert subject.cache.get("long") == b"l"


def test_a_non_positive_ttl_stores_nothing(subject: CacheUnderTest) -> None:
    subject.cache.set("k", b"old", 60)
    subject.cache.set("k", b"new", 0)
    assert subject.cache.get("k") is None


def test_invalidating_a_tag_drops_exactly_its_entries(subject: CacheUnderTest) -> None:
    subject.cache.set("a1", b"1", 60, tags=["user:a"])
    subject.cache.set("a2", b"2", 60, tags=["user:a", "home"])
    subject.cache.set("b1", b"3", 60, tags=["user:b"])
    subject.cache.set("plain", b"4", 60)
    assert subject.cache.invalidate_tag("user:a") == 2
    assert subject.cache.get("a1") is None
    assert subject.cache.get("a2") is None
    assert subject.cache.get("b1") == b"3"
    assert subject.cache.get("plain") == b"4"
    assert subject.cache.invalidate_tag("user:a") == 0


def test_invalidating_an_unknown_tag_drops_nothing(subject: CacheUnderTest) -> None:
    subject.cache.set("k", b"v", 60, tags=["t"])
    assert subject.cache.invalidate_tag("never-used") == 0
    assert subject.cache.get("k") == b"v"


def test_a_tag_outlives_short_entries_to_reach_longer_ones(subject: CacheUnderTest) -> None:
    subject.cache.set("long", b"l", 100, tags=["t"])
    subject.cache.set("short", b"s", 5, tags=["t"])
    subject.advance(50)
    assert subject.cache.invalidate_tag("t") == 1
    assert subject.cache.get("long") is None


def test_describe_names_the_backend(subject: CacheUnderTest) -> None:
    assert subject.cache.describe().split("://")[0] in ("memory", "redis")


def test_a_tag_keeps_its_generation_until_it_is_invalidated(subject: CacheUnderTest) -> None:
    before = subject.cache.generation("user:a")
    subject.cache.set("a1", b"1", 60, tags=["user:a"])
    subject.cache.invalidate_tag("user:b")
    assert subject.cache.generation("user:a") == before


def test_every_invalidation_gives_the_tag_a_generation_it_never_had(subject: CacheUnderTest) -> None:
    seen = [subject.cache.generation("t")]
    for _ in range(20):
        subject.cache.invalidate_tag("t")  # with or without entries
        seen.append(subject.cache.generation("t"))
    assert len(set(seen)) == len(seen)


def test_generations_are_kept_per_tag(subject: CacheUnderTest) -> None:
    other = subject.cache.generation("user:b")
    subject.cache.invalidate_tag("user:a")
    assert subject.cache.generation("user:b") == other
