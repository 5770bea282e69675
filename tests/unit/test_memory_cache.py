"""MemoryCache: LRU eviction, TTL with an injected clock, tag bookkeeping, thread safety."""

from __future__ import annotations

import threading

import pytest

from shoprec.adapters.local.memory_cache import MemoryCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_entry_is_evicted_when_full() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", 60)
    cache.set("b", b"2", 60)
    assert cache.get("a") == b"1"  # a is now more recent than b
    cache.set("c", b"3", 60)
    assert cache.get("b") is None
    assert cache.get("a") == b"1"
    assert cache.get("c") == b"3"
    assert len(cache) == 2


def test_eviction_also_forgets_the_entry_in_its_tags() -> None:
    cache = MemoryCache(max_entries=1)
    cache.set("a", b"1", 60, tags=["t"])
    cache.set("b", b"2", 60, tags=["u"])
    assert cache.invalidate_tag("t") == 0
    assert cache._tags == {"u": {"b"}}


def test_expired_entries_are_not_counted_as_invalidated() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("short", b"s", 1, tags=["t"])
    cache.set("long", b"l", 10, tags=["t"])
    clock.now = 5
    assert cache.invalidate_tag("t") == 1
    assert len(cache) == 0


def test_an_entry_expires_exactly_at_its_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("k", b"v", 2.5)
    clock.now = 2.4999
    assert cache.get("k") == b"v"
    clock.now = 2.5
    assert cache.get("k") is None
    assert len(cache) == 0


def test_replacing_an_entry_drops_its_old_tags() -> None:
    cache = MemoryCache()
    cache.set("k", b"old", 60, tags=["t"])
    cache.set("k", b"new", 60, tags=["u"])
    assert cache.invalidate_tag("t") == 0
    assert cache.get("k") == b"new"
    assert cache.invalidate_tag("u") == 1


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)


def test_concurrent_use_keeps_the_cache_consistent() -> None:
    cache = MemoryCache(max_entries=50)

    def worker(n: int) -> None:
        for i in range(300):
            cache.set(f"{n}-{i}", b"x", 60, tags=[f"tag{i % 7}"])
            cache.get(f"{n}-{i - 1}")
            if i % 50 == 0:
                cache.invalidate_tag(f"tag{n}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) <= 50
    tagged = {key for keys in cache._tags.values() for key in keys}
    assert tagged <= set(cache._entries)


def test_describe() -> None:
    assert MemoryCache().describe() == "memory://"


def test_forgotten_generations_move_up_never_back() -> None:
    cache = MemoryCache(max_entries=3)
    history: dict[str, list[str]] = {f"t{i}": [cache.generation(f"t{i}")] for i in range(10)}
    for round_ in range(5):
        for i in range(10):
            if (i + round_) % 3:
                cache.invalidate_tag(f"t{i}")
            for tag, seen in history.items():
                if cache.generation(tag) != seen[-1]:
                    seen.append(cache.generation(tag))
    assert len(cache._generations) <= 3
    for seen in history.values():
        numbers = [int(g) for g in seen]
        assert numbers == sorted(set(numbers))  # strictly increasing: no generation comes back
