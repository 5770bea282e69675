"""How a :class:`ListResult` is stored in the cache: compact JSON, read back defensively."""

from __future__ import annotations

import json

from shoprec.domain import RankedItem
from shoprec.services.results import ListResult


def encode(result: ListResult) -> bytes:
    """The cached form of ``result`` (what a cache hit must return; timings and facets are not kept)."""
    obj = {
        "model_version": result.model_version,
        "degraded": result.degraded,
        "candidates_per_channel": result.candidates_per_channel,
        "items": [[it.item_id, it.score, list(it.channels), it.reason, it.title] for it in result.items],
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(raw: bytes) -> ListResult:
    """The result stored by :func:`encode`; ``ValueError``, ``KeyError`` or ``TypeError`` when unreadable."""
    obj = json.loads(raw)
    items = [
        RankedItem(item_id=str(i), score=float(s), channels=tuple(map(str, ch)), reason=str(r), title=t)
        for i, s, ch, r, t in obj["items"]
    ]
    return ListResult(
        items=items,
        model_version=str(obj["model_version"]),
        degraded=bool(obj["degraded"]),
        candidates_per_channel={str(k): int(v) for k, v in obj["candidates_per_channel"].items()},
    )
