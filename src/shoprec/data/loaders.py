"""Load interaction datasets from disk into :class:`~shoprec.data.model.Dataset`.

Five on-disk formats are understood (see ``docs/data-formats.md`` for the user-facing description):

``amazon-json``
    A folder with ``items.json`` (catalogue keyed by item id) and ``interactions.json`` (user id ->
    chronological list of item ids), as in the CollisionGenRec "Scientific" data.
``sequences``
    A text file, one user per line: ``user_id item_id item_id ...`` (S3-Rec ``Beauty.txt``).
``sasrec``
    A text file, one ``user_id item_id`` pair per line in time order (the original SASRec format).
``generic``
    A shop's own export: ``interactions.csv`` or ``interactions.jsonl`` with optional timestamps and
    event types, plus an optional ``catalog.jsonl``.
``eventlog``
    shoprec's own event log (``docs/event-log.md``): a folder of ``date=YYYY-MM-DD/*.jsonl`` files (the
    local log, or the S3 prefix Firehose delivers to, copied down), or one such file. Records repeated
    by at-least-once delivery (same ``user_id`` and ``event_id``) count once; a last line without its
    newline (an append cut short by a crash) is left out. :func:`with_events` appends a log to a base
    dataset.

Every loader produces the same thing: item and user ids as strings in natural order (numeric ids
numerically, then the rest lexicographically), and per-user ``np.int64`` arrays of internal item
indices in chronological order. Malformed input raises :class:`~shoprec.errors.DataFormatError`
naming the file, the 1-based line and the field; a missing path raises
:class:`~shoprec.errors.DatasetNotFoundError`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data.model import Dataset, IntArray, ItemMeta
from shoprec.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "DATA_FORMATS",
    "DATA_ROOT_ENV",
    "EVENT_TYPES",
    "ProgressCallback",
    "default_data_root",
    "detect_format",
    "load_dataset",
    "natural_sort_key",
    "resolve_dataset_path",
    "split_amazon_categories",
    "with_events",
]

DATA_FORMATS: tuple[str, ...] = ("amazon-json", "sequences", "sasrec", "generic", "eventlog")
"""The accepted values of ``load_dataset(fmt=...)`` besides ``"auto"``."""

DATA_ROOT_ENV = "SHOPREC_DATA_ROOT"
"""Environment variable naming the folder that relative dataset paths are looked up in."""

EVENT_TYPES: frozenset[str] = frozenset({"view", "click", "cart", "purchase"})
"""Accepted values of the optional ``event_type`` column of the generic format (case-insensitive)."""

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``; see :func:`load_dataset` for the units."""

PROGRESS_EVERY = 1000
"""Records (lines, or users for amazon-json) between two progress reports."""

# Epoch numbers at or above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_EPOCH_MS_THRESHOLD = 1e11

# Amazon category paths join names with "," but some names contain ", " themselves
# ("Tapes, Adhesives & Sealants"). In the real data every separator is a comma NOT followed by
# whitespace, and every comma inside a name is followed by a space, so split only on the former.
_AMAZON_CATEGORY_SEP = re.compile(r",(?!\s)")

_TEXT_DETECT_LINES = 50
_GENERIC_INTERACTION_FILES = ("interactions.csv", "interactions.jsonl")
_GENERIC_CATALOG_FILE = "catalog.jsonl"
_AMAZON_FILES = ("items.json", "interactions.json")
_SEQUENCES_FILE = "sequences.txt"
_LOOKED_FOR = (
    "items.json + interactions.json (amazon-json), interactions.csv or interactions.jsonl "
    "with optional catalog.jsonl (generic), sequences.txt or a single *.txt file (sequences/sasrec)"
)


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """The data root used when none is given: ``$SHOPREC_DATA_ROOT`` if set, else ``../shared/data``
    relative to the current working directory."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.path.abspath(Path.cwd() / ".." / "shared" / "data"))


def resolve_dataset_path(path: str | Path, data_root: str | Path | None = None) -> Path:
    """Find a dataset on disk and return its absolute path.

    ``path`` is used as given when it exists. Otherwise, when it is relative, ``data_root / path``
    is tried, where ``data_root`` defaults to :func:`default_data_root`.

    Raises:
        DatasetNotFoundError: neither candidate exists; the message lists every place looked at.
    """
    given = Path(path).expanduser()
    tried = [given]
    if given.exists():
        return given.resolve()
    if not given.is_absolute():
        root = Path(data_root).expanduser() if data_root is not None else default_data_root()
        candidate = root / given
        tried.append(candidate)
        if candidate.exists():
            return candidate.resolve()
    where = " and ".join(f"'{os.path.abspath(p)}'" for p in tried)
    hint = (
        ""
        if given.is_absolute()
        else f" (set the data root with ${DATA_ROOT_ENV} or pass data_root=, default ../shared/data)"
    )
    raise DatasetNotFoundError(f"dataset '{path}' not found: looked for {where}{hint}")


# --------------------------------------------------------------------------------------------------
# Ordering
# --------------------------------------------------------------------------------------------------


def natural_sort_key(item_id: str) -> tuple[int, int, str]:
    """Sort key putting ids made only of ASCII digits first, in numeric order ("2" < "10"), then
    every other id in lexicographic (code point) order. Ties ("7" vs "007") break on the string."""
    if item_id.isascii() and item_id.isdigit():
        return (0, int(item_id), item_id)
    return (1, 0, item_id)


def _natural_sorted(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=natural_sort_key)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def load_dataset(
    path: str | Path,
    fmt: str = "auto",
    *,
    data_root: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Load a dataset from ``path`` (a folder or a file) in one of :data:`DATA_FORMATS`.

    Args:
        path: the dataset folder or file; a relative path that does not exist is looked up under
            ``data_root`` (see :func:`resolve_dataset_path`).
        fmt: one of :data:`DATA_FORMATS`, or ``"auto"`` to detect it (see :func:`detect_format`).
        data_root: folder holding datasets; defaults to ``$SHOPREC_DATA_ROOT`` or ``../shared/data``.
        progress: called as ``progress(done, total)`` every 1,000 records and once at the end with
            ``done == total``. Records are physical lines of the input files (catalogue lines
            included) for the text, CSV and JSONL formats and users for ``amazon-json``; ``total``
            is exact, counted after the file has been read (reading itself is not reported).

    Returns:
        The dataset. ``name`` is the folder name or file stem, ``source`` the absolute path
        loaded and ``fmt`` the format used.

    Raises:
        DatasetNotFoundError: the path, or a file the format needs, does not exist.
        DataFormatError: the data is malformed; names the file, the line and the field.
        ValueError: ``fmt`` is not a known format.
    """
    if fmt != "auto" and fmt not in DATA_FORMATS:
        raise ValueError(
            f"unknown dataset format {fmt!r}; expected 'auto' or one of {', '.join(DATA_FORMATS)}"
        )
    resolved = resolve_dataset_path(path, data_root)
    used = detect_format(resolved) if fmt == "auto" else fmt
    name = resolved.name if resolved.is_dir() else resolved.stem
    source = str(resolved)
    if used == "amazon-json":
        return _load_amazon_json(resolved, name, source, progress)
    if used == "generic":
        return _load_generic(resolved, name, source, progress)
    if used == "eventlog":
        return _load_eventlog(resolved, name, source, progress)
    text_file = _text_file(resolved, used)
    if used == "sequences":
        users = _parse_sequences(text_file, progress)
    else:
        users = _parse_sasrec(text_file, progress)
    return _build(name, source, used, users, universe=None, catalog=None)


def detect_format(path: str | Path) -> str:
    """Guess the format of an existing dataset path.

    * a folder with ``items.json`` and ``interactions.json`` -> ``amazon-json``;
    * a folder with ``interactions.csv`` or ``interactions.jsonl`` -> ``generic``;
    * a folder with ``date=*`` folders (an event log) -> ``eventlog``;
    * a ``.csv`` or ``.jsonl`` file -> ``generic``; ``items.json``/``interactions.json`` ->
      ``amazon-json`` (their folder is loaded); any other ``.json`` file is an error;
    * any other file (or a folder's ``sequences.txt``, else its only ``*.txt`` file) is text: when
      each of the first 50 non-empty lines has exactly 2 tokens and some user id repeats ->
      ``sasrec``, otherwise ``sequences``.

    Raises:
        DatasetNotFoundError: a folder holds none of the files above.
        DataFormatError: a text file holds no data, or a ``.json`` file is not an amazon-json file.
    """
    p = Path(path)
    if p.is_dir():
        if all((p / f).is_file() for f in _AMAZON_FILES):
            return "amazon-json"
        if any((p / f).is_file() for f in _GENERIC_INTERACTION_FILES):
            return "generic"
        if any(d.is_dir() for d in p.glob("date=*")):
            return "eventlog"
        return _detect_text_format(_text_file(p, "auto"))
    if p.suffix.lower() in (".csv", ".jsonl"):
        return "generic"
    if p.name in _AMAZON_FILES:
        return "amazon-json"
    if p.suffix.lower() == ".json":
        raise DataFormatError(
            "cannot tell the format of a .json file: amazon-json is a folder holding items.json and "
            "interactions.json, the generic format reads .csv or .jsonl; pass the folder or fmt=",
            path=p,
        )
    return _detect_text_format(p)


def _detect_text_format(path: Path) -> str:
    rows: list[list[str]] = []
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for raw in fh:
            tokens = raw.split()
            if tokens:
                rows.append(tokens)
                if len(rows) >= _TEXT_DETECT_LINES:
                    break
    if not rows:
        raise DataFormatError("the file holds no data (every line is empty)", path=path)
    if all(len(r) == 2 for r in rows) and len({r[0] for r in rows}) < len(rows):
        return "sasrec"
    return "sequences"


def _text_file(path: Path, fmt: str) -> Path:
    """The text file to read for the sequences/sasrec formats: the file itself, or a folder's
    ``sequences.txt``, or a folder's only ``*.txt`` file."""
    if not path.is_dir():
        return path
    preferred = path / _SEQUENCES_FILE
    if preferred.is_file():
        return preferred
    txt = sorted(p for p in path.glob("*.txt") if p.is_file())
    if len(txt) == 1:
        return txt[0]
    what = _LOOKED_FOR if fmt == "auto" else "sequences.txt or a single *.txt file"
    found = f"; it holds {len(txt)} *.txt files, name one" if len(txt) > 1 else ""
    raise DatasetNotFoundError(f"no dataset files in folder '{path}': looked for {what}{found}")


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The whole file as text (UTF-8, an optional BOM dropped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"dataset file '{path}' not found") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            f"not UTF-8 text (undecodable byte at offset {exc.start}); save the file as UTF-8",
            path=path,
            line=line,
        ) from exc


def _count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


class _Progress:
    """Reports ``(done, total)`` every :data:`PROGRESS_EVERY` records and once at the end."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self.total = total
        self._next = PROGRESS_EVERY

    def at(self, done: int) -> None:
        if self._callback is not None and done >= self._next:
            self._callback(min(done, self.total), self.total)
            self._next = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY

    def finish(self) -> None:
        if self._callback is not None:
            self._callback(self.total, self.total)


def _build(
    name: str,
    source: str,
    fmt: str,
    users: dict[str, list[str]],
    *,
    universe: Iterable[str] | None,
    catalog: dict[str, ItemMeta] | None,
) -> Dataset:
    """Assemble a :class:`Dataset` from user id -> chronological item ids (all already validated)."""
    if universe is None:
        seen: set[str] = set()
        for items in users.values():
            seen.update(items)
        universe = seen
    item_ids = _natural_sorted(universe)
    user_ids = _natural_sorted(users)
    index = {iid: i for i, iid in enumerate(item_ids)}
    sequences: list[IntArray] = [
        np.fromiter((index[iid] for iid in users[uid]), dtype=np.int64, count=len(users[uid]))
        for uid in user_ids
    ]
    return Dataset(
        name=name,
        source=source,
        item_ids=item_ids,
        user_ids=user_ids,
        sequences=sequences,
        catalog=catalog,
        fmt=fmt,
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _json_id(value: object, *, path: Path, line: int | None, field: str, what: str) -> str:
    """An id given in JSON as a string or an integer, stripped; empty ids are rejected."""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise DataFormatError(
            f"{what} must be a string or an integer, got {_json_type(value)}",
            path=path,
            line=line,
            field=field,
        )
    if not text:
        raise DataFormatError(f"{what} is empty", path=path, line=line, field=field)
    return text


# --------------------------------------------------------------------------------------------------
# sequences / sasrec
# --------------------------------------------------------------------------------------------------


def _parse_sequences(path: Path, progress: ProgressCallback | None) -> dict[str, list[str]]:
    text = _read_text(path)
    lines = text.split("\n")
    report = _Progress(progress, _count_lines(text))
    users: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(lines, 1):
        tokens = raw.split()
        if tokens:
            uid = tokens[0]
            if len(tokens) == 1:
                raise DataFormatError(
                    f"user '{uid}' has no items; expected 'user_id item_id [item_id ...]'",
                    path=path,
                    line=lineno,
                    field="item_id",
                )
            if uid in users:
                raise DataFormatError(
                    f"user '{uid}' already has a line (line {first_line[uid]}); each user must be on one "
                    "line in the sequences format (for one 'user_id item_id' pair per line use "
                    "fmt='sasrec')",
                    path=path,
                    line=lineno,
                    field="user_id",
                )
            users[uid] = tokens[1:]
            first_line[uid] = lineno
        if lineno % PROGRESS_EVERY == 0:
            report.at(lineno)
    if not users:
        raise DataFormatError("the file holds no data (every line is empty)", path=path)
    report.finish()
    return users


def _parse_sasrec(path: Path, progress: ProgressCallback | None) -> dict[str, list[str]]:
    text = _read_text(path)
    lines = text.split("\n")
    report = _Progress(progress, _count_lines(text))
    users: dict[str, list[str]] = {}
    for lineno, raw in enumerate(lines, 1):
        tokens = raw.split()
        if tokens:
            if len(tokens) != 2:
                field = "item_id" if len(tokens) == 1 else None
                hint = (
                    "; for 'user_id item_id item_id ...' lines use fmt='sequences'" if len(tokens) > 2 else ""
                )
                raise DataFormatError(
                    f"expected 2 whitespace-separated values 'user_id item_id', found {len(tokens)}{hint}",
                    path=path,
                    line=lineno,
                    field=field,
                )
            uid, iid = tokens
            seq = users.get(uid)
            if seq is None:
                users[uid] = [iid]
            else:
                seq.append(iid)
        if lineno % PROGRESS_EVERY == 0:
            report.at(lineno)
    if not users:
        raise DataFormatError("the file holds no data (every line is empty)", path=path)
    report.finish()
    return users


# --------------------------------------------------------------------------------------------------
# amazon-json
# --------------------------------------------------------------------------------------------------


def split_amazon_categories(path_text: str) -> tuple[str, ...]:
    """Split an Amazon category path such as
    ``"Industrial & Scientific,Tapes, Adhesives & Sealants,Tapes"`` into its names.

    Names are separated by a comma *not* followed by whitespace; a comma followed by a space belongs
    to a name ("Tapes, Adhesives & Sealants"). Names are stripped, HTML entities decoded
    ("&amp;" -> "&") and empty names dropped.
    """
    names = (html.unescape(part).strip() for part in _AMAZON_CATEGORY_SEP.split(path_text))
    return tuple(n for n in names if n)


def _locate_json_key(text: str, key: str) -> int | None:
    """Best-effort 1-based line of the first ``"key":`` in a JSON text (for error messages)."""
    match = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
    if match is None:
        return None
    return text.count("\n", 0, match.start()) + 1


def _load_json_file(path: Path) -> tuple[str, Any]:
    text = _read_text(path)
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno
        ) from exc


def _amazon_text(meta: dict[str, Any], name: str, *, path: Path, line: int | None, key: str) -> str:
    value = meta.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(
            f"item '{key}': '{name}' must be a string, got {_json_type(value)}",
            path=path,
            line=line,
            field=f"{key}.{name}",
        )
    return value.strip()


def _load_amazon_json(path: Path, name: str, source: str, progress: ProgressCallback | None) -> Dataset:
    if not path.is_dir():
        if path.name not in _AMAZON_FILES:
            raise DatasetNotFoundError(
                f"amazon-json needs a folder holding items.json and interactions.json, got the file '{path}'"
            )
        path = path.parent
        name, source = path.name, str(path)
    folder = path
    missing = [f for f in _AMAZON_FILES if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"folder '{folder}' is not an amazon-json dataset: missing {' and '.join(missing)} "
            "(needs items.json and interactions.json)"
        )
    items_path = folder / "items.json"
    inter_path = folder / "interactions.json"

    items_text, items_raw = _load_json_file(items_path)
    if not isinstance(items_raw, dict):
        raise DataFormatError(
            f"expected a JSON object keyed by item id, got {_json_type(items_raw)}", path=items_path, line=1
        )
    catalog: dict[str, ItemMeta] = {}
    for key, meta in items_raw.items():
        iid = key.strip()
        if not iid or iid in catalog or not isinstance(meta, dict):
            line = _locate_json_key(items_text, key)
            if not iid:
                raise DataFormatError("empty item id", path=items_path, line=line, field=key)
            if iid in catalog:
                raise DataFormatError(f"item id '{iid}' appears twice", path=items_path, line=line, field=key)
            raise DataFormatError(
                f"item '{iid}' must map to an object with title/description/brand/categories, "
                f"got {_json_type(meta)}",
                path=items_path,
                line=line,
                field=key,
            )
        try:
            title = _amazon_text(meta, "title", path=items_path, line=None, key=iid)
            brand = _amazon_text(meta, "brand", path=items_path, line=None, key=iid)
            description = _amazon_text(meta, "description", path=items_path, line=None, key=iid)
            categories = split_amazon_categories(
                _amazon_text(meta, "categories", path=items_path, line=None, key=iid)
            )
        except DataFormatError as exc:
            raise DataFormatError(
                exc.reason, path=items_path, line=_locate_json_key(items_text, key), field=exc.field
            ) from None
        catalog[iid] = ItemMeta(title=title, brand=brand, categories=categories, description=description)

    inter_text, inter_raw = _load_json_file(inter_path)
    if not isinstance(inter_raw, dict):
        raise DataFormatError(
            f"expected a JSON object keyed by user id, got {_json_type(inter_raw)}", path=inter_path, line=1
        )
    report = _Progress(progress, len(inter_raw))
    users: dict[str, list[str]] = {}
    for n, (key, items) in enumerate(inter_raw.items(), 1):
        uid = key.strip()
        problem = ""
        if not uid:
            problem = "empty user id"
        elif uid in users:
            problem = f"user id '{uid}' appears twice"
        elif not isinstance(items, list):
            problem = f"user '{uid}' must map to an array of item ids, got {_json_type(items)}"
        elif not items:
            problem = f"user '{uid}' has no interactions (empty array)"
        if problem:
            raise DataFormatError(problem, path=inter_path, line=_locate_json_key(inter_text, key), field=key)
        seq: list[str] = []
        for pos, value in enumerate(items, 1):
            if isinstance(value, str) and value in catalog:
                seq.append(value)
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                iid = str(value)
                if iid in catalog:
                    seq.append(iid)
                    continue
            line = _locate_json_key(inter_text, key)
            iid = _json_id(value, path=inter_path, line=line, field=key, what=f"item at position {pos}")
            if iid not in catalog:
                raise DataFormatError(
                    f"user '{uid}': item '{iid}' at position {pos} (1-based) is not in {items_path.name}",
                    path=inter_path,
                    line=line,
                    field=key,
                )
            seq.append(iid)
        users[uid] = seq
        if n % PROGRESS_EVERY == 0:
            report.at(n)
    if not users:
        raise DataFormatError("no users in the file (empty object)", path=inter_path, line=1)
    report.finish()
    return _build(name, source, "amazon-json", users, universe=catalog.keys(), catalog=catalog)


# --------------------------------------------------------------------------------------------------
# generic
# --------------------------------------------------------------------------------------------------


def _parse_timestamp(value: object, *, path: Path, line: int, field: str) -> float:
    """Epoch seconds from an ISO-8601 string or an epoch number in seconds or milliseconds."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise DataFormatError("timestamp is empty", path=path, line=line, field=field)
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise DataFormatError(
                    f"bad timestamp {text!r}: expected ISO-8601 (e.g. 2024-05-01T12:30:00Z) "
                    "or epoch seconds/milliseconds",
                    path=path,
                    line=line,
                    field=field,
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    else:
        raise DataFormatError(
            f"timestamp must be a number or an ISO-8601 string, got {_json_type(value)}",
            path=path,
            line=line,
            field=field,
        )
    if not math.isfinite(number):
        raise DataFormatError(
            f"bad timestamp {value!r}: not a finite number", path=path, line=line, field=field
        )
    return number / 1000.0 if abs(number) >= _EPOCH_MS_THRESHOLD else number


def _check_event_type(value: object, *, path: Path, line: int, field: str) -> None:
    if isinstance(value, str) and value.strip().lower() in EVENT_TYPES:
        return
    shown = repr(value.strip()) if isinstance(value, str) else _json_type(value)
    raise DataFormatError(
        f"bad event_type {shown}: expected one of {', '.join(sorted(EVENT_TYPES))}",
        path=path,
        line=line,
        field=field,
    )


_ABSENT: Any = object()  # marks an event_type the record does not give


class _Events:
    """Collects validated interactions of the generic format, per user, in file order."""

    def __init__(self, path: Path, catalog: dict[str, ItemMeta] | None, catalog_path: Path | None) -> None:
        self.path = path
        self.catalog = catalog
        self.catalog_path = catalog_path
        self.timed: dict[str, list[tuple[float, str]]] = {}
        self.untimed: dict[str, list[str]] = {}

    def add(
        self, user: object, item: object, timestamp: object, event: object, *, line: int, timed: bool
    ) -> None:
        uid = _json_id(user, path=self.path, line=line, field="user_id", what="user_id")
        iid = _json_id(item, path=self.path, line=line, field="item_id", what="item_id")
        if self.catalog is not None and iid not in self.catalog:
            raise DataFormatError(
                f"item '{iid}' is not in the catalogue {self.catalog_path}",
                path=self.path,
                line=line,
                field="item_id",
            )
        if event is not _ABSENT:
            _check_event_type(event, path=self.path, line=line, field="event_type")
        if timed:
            ts = _parse_timestamp(timestamp, path=self.path, line=line, field="timestamp")
            self.timed.setdefault(uid, []).append((ts, iid))
        else:
            self.untimed.setdefault(uid, []).append(iid)

    def users(self) -> dict[str, list[str]]:
        if not self.timed and not self.untimed:
            raise DataFormatError("no interactions in the file", path=self.path)
        out = dict(self.untimed)
        for uid, events in self.timed.items():
            events.sort(key=lambda e: e[0])  # stable: equal timestamps keep file order
            out[uid] = [iid for _, iid in events]
        return out


def _generic_files(path: Path) -> tuple[Path, Path | None]:
    """(interactions file, catalogue file or None) for a generic dataset folder or file."""
    if path.is_dir():
        found = [path / f for f in _GENERIC_INTERACTION_FILES if (path / f).is_file()]
        if not found:
            raise DatasetNotFoundError(
                f"folder '{path}' is not a generic dataset: looked for interactions.csv or interactions.jsonl"
            )
        if len(found) > 1:
            raise DataFormatError(
                "both interactions.csv and interactions.jsonl exist; keep one or pass the file to load",
                path=path,
            )
        interactions = found[0]
    else:
        interactions = path
        if path.name == _GENERIC_CATALOG_FILE:
            raise DataFormatError(
                "this is a catalogue, not interactions; pass the folder or interactions.csv/.jsonl",
                path=path,
            )
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise DataFormatError("the generic format reads a .csv or .jsonl interactions file", path=path)
    catalog = interactions.parent / _GENERIC_CATALOG_FILE
    return interactions, (catalog if catalog.is_file() else None)


def _load_generic(path: Path, name: str, source: str, progress: ProgressCallback | None) -> Dataset:
    inter_path, catalog_path = _generic_files(path)
    inter_text = _read_text(inter_path)
    catalog_text = _read_text(catalog_path) if catalog_path is not None else ""
    report = _Progress(progress, _count_lines(catalog_text) + _count_lines(inter_text))
    catalog = _parse_catalog(catalog_path, catalog_text, report) if catalog_path is not None else None
    offset = _count_lines(catalog_text)
    events = _Events(inter_path, catalog, catalog_path)
    if inter_path.suffix.lower() == ".csv":
        _parse_generic_csv(inter_path, inter_text, events, report, offset)
    else:
        _parse_generic_jsonl(inter_path, inter_text, events, report, offset)
    users = events.users()
    report.finish()
    universe = catalog.keys() if catalog is not None else None
    return _build(name, source, "generic", users, universe=universe, catalog=catalog)


def _parse_generic_csv(path: Path, text: str, events: _Events, report: _Progress, offset: int) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: dict[str, int] | None = None
    line_end = 0
    try:
        for row in reader:
            line = line_end + 1
            line_end = reader.line_num
            report.at(offset + line_end)
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _csv_header(path, row, line)
                continue
            values: dict[str, str] = {}
            width = max(columns.values()) + 1
            for name, idx in columns.items():
                if idx >= len(row):
                    raise DataFormatError(
                        f"missing value: the row has {len(row)} column(s), the header names {width}",
                        path=path,
                        line=line,
                        field=name,
                    )
                values[name] = row[idx]
            events.add(
                values["user_id"],
                values["item_id"],
                values.get("timestamp"),
                values.get("event_type", _ABSENT),
                line=line,
                timed="timestamp" in columns,
            )
    except csv.Error as exc:
        raise DataFormatError(f"unreadable CSV: {exc}", path=path, line=reader.line_num) from exc
    if columns is None:
        raise DataFormatError(
            "empty file: expected a header row 'user_id,item_id[,timestamp][,event_type]'", path=path
        )


def _csv_header(path: Path, row: list[str], line: int) -> dict[str, int]:
    names = [cell.strip().lower() for cell in row]
    columns: dict[str, int] = {}
    for idx, col in enumerate(names):
        if col in ("user_id", "item_id", "timestamp", "event_type"):
            if col in columns:
                raise DataFormatError(
                    f"column '{col}' appears twice in the header", path=path, line=line, field=col
                )
            columns[col] = idx
    for required in ("user_id", "item_id"):
        if required not in columns:
            raise DataFormatError(
                f"header has no '{required}' column (found: {', '.join(repr(c) for c in row)}); the first "
                "row must name the columns: user_id,item_id[,timestamp][,event_type]",
                path=path,
                line=line,
                field=required,
            )
    return columns


def _jsonl_records(
    path: Path, text: str, report: _Progress, offset: int
) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line, object) for each non-empty line of a JSON Lines text."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        if lineno % PROGRESS_EVERY == 0:
            report.at(offset + lineno)
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=lineno
            ) from exc
        if not isinstance(record, dict):
            raise DataFormatError(
                f"expected a JSON object per line, got {_json_type(record)}", path=path, line=lineno
            )
        yield lineno, record


def _parse_generic_jsonl(path: Path, text: str, events: _Events, report: _Progress, offset: int) -> None:
    timed: bool | None = None
    first_line = 0
    for line, record in _jsonl_records(path, text, report, offset):
        if record.get("record") == "exposure":  # an event log file: a list an experiment served
            continue
        for required in ("user_id", "item_id"):
            if record.get(required) is None:
                raise DataFormatError(f"missing '{required}'", path=path, line=line, field=required)
        has_ts = record.get("timestamp") is not None
        if timed is None:
            timed, first_line = has_ts, line
        elif has_ts != timed:
            if timed:
                problem = f"missing timestamp, but the record on line {first_line} has one"
            else:
                problem = f"timestamp given, but the record on line {first_line} has none"
            raise DataFormatError(
                f"{problem}; give every record a timestamp or none",
                path=path,
                line=line,
                field="timestamp",
            )
        event = (
            record["event_type"] if "event_type" in record and record["event_type"] is not None else _ABSENT
        )
        events.add(
            record["user_id"], record["item_id"], record.get("timestamp"), event, line=line, timed=timed
        )
    if timed is None:
        raise DataFormatError("no interactions in the file", path=path)


def _catalog_categories(value: object, *, path: Path, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        sep = ">" if ">" in value else ","
        parts: list[object] = list(value.split(sep))
    elif isinstance(value, list):
        parts = list(value)
    else:
        raise DataFormatError(
            f"categories must be an array of strings or a string, got {_json_type(value)}",
            path=path,
            line=line,
            field="categories",
        )
    names: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise DataFormatError(
                f"categories must hold strings, got {_json_type(part)}",
                path=path,
                line=line,
                field="categories",
            )
        if part.strip():
            names.append(part.strip())
    return tuple(names)


def _catalog_price(value: object, *, path: Path, line: int) -> float | None:
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise DataFormatError(
            f"price must be a non-negative number, got {value!r}", path=path, line=line, field="price"
        )
    return number


def _parse_catalog(path: Path, text: str, report: _Progress) -> dict[str, ItemMeta]:
    catalog: dict[str, ItemMeta] = {}
    first_line: dict[str, int] = {}
    for line, record in _jsonl_records(path, text, report, 0):
        if record.get("item_id") is None:
            raise DataFormatError("missing 'item_id'", path=path, line=line, field="item_id")
        iid = _json_id(record["item_id"], path=path, line=line, field="item_id", what="item_id")
        if iid in catalog:
            raise DataFormatError(
                f"item '{iid}' is already listed on line {first_line[iid]}",
                path=path,
                line=line,
                field="item_id",
            )
        texts: dict[str, str] = {}
        for name in ("title", "brand", "description"):
            value = record.get(name)
            if value is None:
                texts[name] = ""
            elif isinstance(value, str):
                texts[name] = value.strip()
            else:
                raise DataFormatError(
                    f"{name} must be a string, got {_json_type(value)}", path=path, line=line, field=name
                )
        catalog[iid] = ItemMeta(
            title=texts["title"],
            brand=texts["brand"],
            description=texts["description"],
            categories=_catalog_categories(record.get("categories"), path=path, line=line),
            price=_catalog_price(record.get("price"), path=path, line=line),
        )
        first_line[iid] = line
    return catalog


# --------------------------------------------------------------------------------------------------
# eventlog
# --------------------------------------------------------------------------------------------------


def _eventlog_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("date=*/*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DatasetNotFoundError(
            f"folder '{path}' is not an event log: no files in date=YYYY-MM-DD/ folders"
        )
    return files


def _load_eventlog(path: Path, name: str, source: str, progress: ProgressCallback | None) -> Dataset:
    files = _eventlog_files(path)
    texts = [_read_text(f) for f in files]
    report = _Progress(progress, sum(_count_lines(t) for t in texts))
    seen: set[tuple[str, str]] = set()
    timed: dict[str, list[tuple[float, str]]] = {}
    done = 0
    for file, text in zip(files, texts, strict=True):
        # Only complete lines: a last one without its newline is an append a crash cut short.
        complete = text[: text.rfind("\n") + 1]
        events = _Events(file, None, None)
        for line, record in _jsonl_records(file, complete, report, done):
            if record.get("record") == "exposure":  # a list an experiment served, not an interaction
                continue
            for required in ("event_id", "user_id", "item_id", "timestamp"):
                if record.get(required) is None:
                    raise DataFormatError(f"missing '{required}'", path=file, line=line, field=required)
            uid = _json_id(record["user_id"], path=file, line=line, field="user_id", what="user_id")
            key = (uid, _json_id(record["event_id"], path=file, line=line, field="event_id", what="event_id"))
            if key in seen:
                continue
            seen.add(key)
            event = record["event_type"] if record.get("event_type") is not None else _ABSENT
            events.add(uid, record["item_id"], record["timestamp"], event, line=line, timed=True)
        for uid, pairs in events.timed.items():
            timed.setdefault(uid, []).extend(pairs)
        done += _count_lines(text)
    if not timed:
        raise DataFormatError("no events in the log", path=path)
    users = {}
    for uid, pairs in timed.items():
        pairs.sort(key=lambda e: e[0])  # stable: equal timestamps keep log order
        users[uid] = [iid for _, iid in pairs]
    report.finish()
    return _build(name, source, "eventlog", users, universe=None, catalog=None)


def with_events(base: Dataset, events: Dataset) -> Dataset:
    """``base`` with the interactions of ``events`` (an event log) appended to each user's sequence: a
    log holds what happened after the base was exported, so its events follow the base's. Users and items
    the base does not know are added (new items with an empty catalogue row when the base has a
    catalogue); ``name``, ``source`` and ``fmt`` are the base's."""
    users = {
        uid: [base.item_ids[i] for i in seq] for uid, seq in zip(base.user_ids, base.sequences, strict=True)
    }
    for uid, seq in zip(events.user_ids, events.sequences, strict=True):
        users.setdefault(uid, []).extend(events.item_ids[i] for i in seq)
    universe = set(base.item_ids) | set(events.item_ids)
    catalog = None
    if base.catalog is not None:  # every item keeps a row: the new ones an empty one
        catalog = {iid: base.catalog.get(iid, ItemMeta()) for iid in universe}
    return _build(base.name, base.source, base.fmt, users, universe=universe, catalog=catalog)
