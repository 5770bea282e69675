"""An in-process ``Cache``: TTL + LRU with tags, for a single process (local runs, one Lambda instance)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class _Entry:
    value: bytes
    expires_at: float
    tags: tuple[str, ...]


class MemoryCache:
    """A thread-safe byte cache holding at most ``max_entries`` entries.

    Entries expire ``ttl_seconds`` after they are set (measured with ``clock``, ``time.monotonic`` by
    default; tests pass a fake clock instead of sleeping). When full, the least recently used entry is
    evicted. Each tag remembers the keys stored with it, so ``invalidate_tag`` drops exactly those.

    Generations are numbers from one counter that only grows: an invalidation gives its tag the next
    one. At most ``max_entries`` tags keep their own generation (the most recently invalidated); the
    others share the *floor*, the counter's value when a tag's generation was last forgotten. A tag
    therefore never gets back a generation it had: forgetting moves it up to the floor, never down.
    """

    def __init__(self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._counter = 0
        self._floor = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry.value

    def set(self, key: str, value: bytes, ttl_seconds: float, *, tags: Sequence[str] = ()) -> None:
        with self._lock:
            self._remove(key)
            if ttl_seconds <= 0:
                return
            self._entries[key] = _Entry(bytes(value), self._clock() + ttl_seconds, tuple(dict.fromkeys(tags)))
            for tag in tags:
                self._tags.setdefault(tag, set()).add(key)
            self._evict()

    def generation(self, tag: str) -> str:
        with self._lock:
            return str(self._generations.get(tag, self._floor))

    def invalidate_tag(self, tag: str) -> int:
        now = self._clock()
        dropped = 0
        with self._lock:
            self._counter += 1
            self._generations[tag] = self._counter
            self._generations.move_to_end(tag)
            while len(self._generations) > self.max_entries:
                # The oldest tags fall back to the floor, which is above every generation they ever had.
                self._generations.popitem(last=False)
                self._floor = self._counter
            for key in self._tags.pop(tag, set()):
                entry = self._remove(key)
                if entry is not None and entry.expires_at > now:
                    dropped += 1
        return dropped

    def __len__(self) -> int:
        """Entries held, expired ones included until they are touched or evicted."""
        return len(self._entries)

    def describe(self) -> str:
        return "memory://"

    def _evict(self) -> None:
        # Plain LRU: scanning for expired entries would make every set at capacity O(n).
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))

    def _remove(self, key: str) -> _Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            for tag in entry.tags:
                keys = self._tags.get(tag)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._tags[tag]
        return entry
