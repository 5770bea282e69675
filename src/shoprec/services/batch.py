"""Batch recommendations (``shoprec batch``): the served list of every user of a dataset, as JSON lines.

Each line is ``{"user_id": ..., "items": [item ids, best first], "model_version": ...}`` and holds what
``GET /v1/recommendations?user_id=U&k=K`` answers for U's history with the default re-rank (seen items left
out, no filters, the diversity cap): the pipeline is the one the API builds from the bundle
(:func:`shoprec.pipeline.build_pipeline` with the bundle's ONNX ranker in process), and a user's history is
what the state store would hold after ``shoprec state import`` of the same dataset (the last
``MAX_RECENT_ITEMS`` interactions), less the items the bundle does not know, as the API leaves them out.
Users are recalled and ranked in batches (one ranker call per batch, the vector channels' ``recall_many``)
as offline evaluation runs them; batching changes no user's list.

On purpose unlike a request: the ranker has no latency budget (a slow batch is not a degraded one), no
merchandising rules apply, the live catalogue's items are not among the candidates and the live
co-occurrence and trending counts are not blended in (``docs/batch.md``).

The file appears complete or not at all: lines go to a temporary file beside it, renamed over it at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from shoprec.catalog import CatalogIndex, IntArray
from shoprec.data.model import Dataset
from shoprec.domain import ID_PATTERN, MAX_RECENT_ITEMS
from shoprec.errors import DataFormatError, NotFoundError
from shoprec.pipeline import RecommendationPipeline, Request

DEFAULT_BATCH_SIZE = 256
"""Users recalled and ranked together: one ranker call of about 256 x 300 candidates."""

_EMPTY: IntArray = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class UserHistories:
    """The users to list, in output order, with the bundle's indices of their recent items (oldest first)."""

    user_ids: list[str]
    histories: list[IntArray]
    unknown_items: int = 0
    """Interactions left out of the histories because the bundle does not know their item."""
    not_in_dataset: int = 0
    """Users asked for (``--users``) without interactions in the dataset: they get the cold-start list."""


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run wrote."""

    out: Path
    users: int
    k: int
    model_version: str
    cold: int
    """Users without a known history, listed the popular items (as the API lists a new user)."""
    degraded: int
    """Users whose list was fused without the ranker because it failed (0 unless the ranker is broken)."""
    unknown_items: int
    not_in_dataset: int


def user_histories(ds: Dataset, catalog: CatalogIndex, users: Sequence[str] | None = None) -> UserHistories:
    """Each user's last ``MAX_RECENT_ITEMS`` interactions (as the state store keeps them) as ``catalog``
    indices, items it does not know left out. ``users`` (default: every user of ``ds``, in its order)
    picks and orders the users; one without interactions in ``ds`` gets an empty history."""
    index_of = catalog.index_of
    to_bundle = np.asarray([index_of.get(item_id, -1) for item_id in ds.item_ids], dtype=np.int64)
    row_of = {user: u for u, user in enumerate(ds.user_ids)}
    wanted = list(ds.user_ids) if users is None else list(users)
    histories: list[IntArray] = []
    unknown = missing = 0
    for user in wanted:
        u = row_of.get(user)
        if u is None:
            missing += 1
            histories.append(_EMPTY)
            continue
        recent = to_bundle[ds.sequences[u][-MAX_RECENT_ITEMS:]]
        known = recent[recent >= 0]
        unknown += int(recent.size - known.size)
        histories.append(known)
    return UserHistories(wanted, histories, unknown_items=unknown, not_in_dataset=missing)


def read_user_ids(path: str | Path) -> list[str]:
    """The user ids of a text file with one id per line (blank lines skipped, repeats kept once, in file
    order). Raises ``NotFoundError`` for a missing file and ``DataFormatError`` naming the line of an id
    the API would refuse, or for a file without ids."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise NotFoundError(f"user id file {p}: no such file", field="users") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not UTF-8 text ({exc.reason})", path=p) from None
    users: dict[str, None] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        user = line.strip()
        if not user:
            continue
        if not ID_PATTERN.fullmatch(user):
            shown = user if len(user) <= 60 else user[:59] + "…"
            raise DataFormatError(
                f"{shown!r} is not a user id: one id per line, 1..128 characters of letters, digits and "
                "_ . : @ -",
                path=p,
                line=line_no,
                field="user_id",
            )
        users[user] = None
    if not users:
        raise DataFormatError("no user ids: expected one user id per line", path=p)
    return list(users)


@dataclass(frozen=True)
class UserList:
    """One user's list: item indices, best first, and whether it was made without the ranker."""

    items: IntArray
    degraded: bool
    cold: bool


def recommend_all(
    pipeline: RecommendationPipeline,
    histories: Sequence[IntArray],
    *,
    k: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[UserList]:
    """The pipeline's ``k``-item list for each history, in order, computed ``batch_size`` users at a time
    (:meth:`RecommendationPipeline.prepare` and ``finish_each_k``, as offline evaluation runs them)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(histories)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        requests = [Request(history=histories[u], k=k) for u in range(start, stop)]
        prepared = pipeline.prepare(requests, deadline=False)
        for request, listed in zip(requests, pipeline.finish_each_k(prepared, [k])[k], strict=True):
            yield UserList(listed.items, listed.degraded, cold=request.history.size == 0)
        if progress is not None:
            progress(stop, n)


def write_batch(
    pipeline: RecommendationPipeline,
    users: UserHistories,
    out: str | Path,
    *,
    k: int,
    model_version: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Write one JSON line per user of ``users`` to ``out``, atomically (see the module docstring)."""
    target = Path(out)
    if target.is_dir():
        raise ValueError(f"--out {target} is a folder; name the file to write")
    ids = pipeline.catalog.item_ids
    cold = degraded = 0

    def write(fh: TextIO) -> None:
        nonlocal cold, degraded
        lists = recommend_all(pipeline, users.histories, k=k, batch_size=batch_size, progress=progress)
        for user, listed in zip(users.user_ids, lists, strict=True):
            cold += listed.cold
            degraded += listed.degraded
            line = {
                "user_id": user,
                "items": [ids[i] for i in listed.items.tolist()],
                "model_version": model_version,
            }
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")

    _write_atomically(target, write)
    return BatchSummary(
        out=target,
        users=len(users.user_ids),
        k=k,
        model_version=model_version,
        cold=cold,
        degraded=degraded,
        unknown_items=users.unknown_items,
        not_in_dataset=users.not_in_dataset,
    )


def run_batch(
    artifacts: str | Path,
    dataset: str | Path,
    out: str | Path,
    *,
    k: int = 20,
    fmt: str = "auto",
    data_root: Path | None = None,
    users_file: str | Path | None = None,
    threads: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """``shoprec batch``: load the bundle (verified) and the dataset (``load_dataset``'s path and format
    rules), build the served pipeline with the bundle's ONNX ranker (``threads`` onnxruntime threads, 0: all
    cores) and write every user's list (or those of ``users_file``) to ``out``.

    ``shard=(i, n)`` lists every n-th user from the i-th alone (the share of one of n Processing
    instances); the n files together hold every user once."""
    # The in-process ranker itself, not the composition root's choice of backends: the Processing job's
    # image then needs numpy, pydantic and onnxruntime alone (no boto3, Powertools or settings).
    from shoprec.adapters.local.onnx_ranker import LocalOnnxRanker
    from shoprec.artifacts import load_bundle
    from shoprec.data import load_dataset
    from shoprec.pipeline import build_pipeline

    if k < 1:
        raise ValueError(f"--k must be >= 1, got {k}")
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}: expected 0 <= shard < count")
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a folder; name the file to write")
    users = read_user_ids(users_file) if users_file is not None else None
    bundle = load_bundle(artifacts)
    ds = load_dataset(dataset, fmt, data_root=data_root)
    catalog = CatalogIndex.from_bundle(bundle)
    wanted = list(ds.user_ids) if users is None else users
    histories = user_histories(ds, catalog, wanted[index::count])
    if histories.unknown_items and not any(h.size for h in histories.histories):
        raise ValueError(
            f"{ds.source}: none of the users' items are in the bundle {bundle.path}; "
            "batch a bundle trained on this dataset"
        )
    pipeline = build_pipeline(bundle, catalog, LocalOnnxRanker.from_bundle(bundle, threads=threads))
    return write_batch(
        pipeline,
        histories,
        out,
        k=k,
        model_version=bundle.model_version,
        batch_size=batch_size,
        progress=progress,
    )


def _write_atomically(target: Path, write: Callable[[TextIO], None]) -> None:
    """``write`` into a temporary file beside ``target``, then rename it over ``target``: a reader (or a
    campaign job) sees the previous file or the complete new one, and a failed run leaves no partial file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ValueError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
