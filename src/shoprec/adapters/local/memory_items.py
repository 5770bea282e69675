"""The live catalogue's overlay in a dict: the ``ItemStore`` of a process that keeps no state (tests, and
the graph built around a state store passed in ready)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from shoprec.errors import BackendUnavailableError
from shoprec.items import CatalogItem


class MemoryItemStore:
    """Items by id in this process only. ``fail = True`` makes every call raise
    ``BackendUnavailableError`` (for tests of the fallbacks); ``reads`` counts :meth:`list` calls."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._items: dict[str, CatalogItem] = {}
        self._version = 0
        self._lock = threading.Lock()
        self._clock = clock
        self.fail = False
        self.reads = 0

    def put(self, item: CatalogItem) -> bool:
        self._check()
        new = dataclasses.replace(item, delisted=False)
        with self._lock:
            old = self._items.get(item.item_id)
            if old is None or old.content() != new.content():
                self._write(dataclasses.replace(new, updated_at=self._clock()))
        return old is None

    def delist(self, item_id: str) -> bool:
        self._check()
        with self._lock:
            old = self._items.get(item_id)
            if old is not None and old.delisted:
                return False
            tombstone = old or CatalogItem(item_id)
            self._write(dataclasses.replace(tombstone, delisted=True, updated_at=self._clock()))
        return True

    def get(self, item_id: str) -> CatalogItem | None:
        self._check()
        return self._items.get(item_id)

    def list(self) -> list[CatalogItem]:
        self.reads += 1
        self._check()
        with self._lock:
            return [self._items[k] for k in sorted(self._items)]

    def version(self) -> str:
        self._check()
        return str(self._version)

    def describe(self) -> str:
        return "memory://items"

    def _write(self, item: CatalogItem) -> None:
        self._items[item.item_id] = item
        self._version += 1

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailableError("memory://items: failing on purpose")
