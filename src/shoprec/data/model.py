"""In-memory form of a dataset: users' chronological item sequences plus optional catalogue metadata."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ItemMeta:
    """Catalogue metadata of one item. Every field is optional in the source data."""

    title: str = ""
    brand: str = ""
    categories: tuple[str, ...] = ()
    description: str = ""
    price: float | None = None
    available: bool = True
    """False for an item the live catalogue made unavailable or delisted (:mod:`shoprec.data.overlay`):
    its interactions are real and stay, but the bundle's catalogue row says it must not be served."""


@dataclass(frozen=True)
class Dataset:
    """Interactions as per-user sequences of internal item indices.

    Internal item indices are ``0 .. n_items-1``; ``item_ids[i]`` is the dataset's own id (a string) of
    internal item ``i``. ``sequences[u]`` holds user ``user_ids[u]``'s items in chronological order.
    ``catalog`` maps the dataset's item id to its metadata when the dataset has any.
    """

    name: str
    source: str
    item_ids: list[str]
    user_ids: list[str]
    sequences: list[IntArray]
    catalog: dict[str, ItemMeta] | None = None
    fmt: str = ""
    _fingerprint: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def fingerprint(self) -> str:
        """A content hash of the interactions and item ids (stable across loads of the same data)."""
        if not self._fingerprint:
            h = hashlib.sha256()
            h.update("\x1f".join(self.item_ids).encode())
            for uid, seq in zip(self.user_ids, self.sequences, strict=True):
                h.update(uid.encode() + b"\x1e")
                h.update(np.ascontiguousarray(seq, dtype=np.int64).tobytes())
            self._fingerprint.append("sha256:" + h.hexdigest())
        return self._fingerprint[0]
