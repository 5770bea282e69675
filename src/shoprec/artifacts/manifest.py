"""``manifest.json``: the schema of a bundle's manifest, its validation and the content version.

Schema version 2 adds ``pipeline`` (a :class:`~shoprec.artifacts.specs.PipelineSpec`). Version 1 bundles
are still read: their pipeline is the one they were served with (the ranker's score replaces the recall
scores), rebuilt from ``extra.ranker.max_len``. Layout and fields: ``docs/artifact-bundle.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from pydantic import ValidationError

from shoprec.artifacts.specs import MANIFEST, FusionSpec, PipelineSpec, RankerSpec
from shoprec.errors import ArtifactError

if TYPE_CHECKING:
    from shoprec.data.model import Dataset

SCHEMA_VERSION: Final = 2
READABLE_SCHEMA_VERSIONS: Final = (1, 2)
DATASET_FIELDS: Final = ("name", "fingerprint", "format", "n_users", "n_items", "n_interactions")


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: posix path relative to the bundle folder, hex sha256, size in bytes."""

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    """Content of ``manifest.json``. ``pipeline`` describes every model the serving pipeline loads."""

    schema_version: int
    model_version: str
    created_at: str
    dataset: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    files: tuple[FileEntry, ...]
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_version(self) -> str:
        """The first 12 hex digits of the content hash, e.g. ``3f2a9c01b7de``."""
        return self.model_version.removeprefix("sha256:")[:12]

    def entry(self, name: str) -> FileEntry | None:
        for e in self.files:
            if e.name == name:
                return e
        return None

    def to_json(self) -> str:
        obj = {
            "schema_version": self.schema_version,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "dataset": self.dataset,
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "files": [e.to_json() for e in self.files],
            "pipeline": self.pipeline.model_dump(mode="json"),
            "extra": self.extra,
        }
        return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=json_default) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str | Path = MANIFEST) -> Manifest:
        """Parse and validate; raises :class:`ArtifactError` naming ``source`` and the offending field."""
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{source}: manifest is not valid JSON: {exc}") from None
        return cls.from_dict(obj, source=source)

    @classmethod
    def from_dict(cls, obj: Any, *, source: str | Path = MANIFEST) -> Manifest:
        def bad(fld: str, why: str) -> ArtifactError:
            return ArtifactError(f"{source}: manifest field '{fld}' {why}")

        if not isinstance(obj, dict):
            raise ArtifactError(f"{source}: manifest must be a JSON object")
        for fld in ("schema_version", "model_version", "created_at", "dataset", "files"):
            if fld not in obj:
                raise bad(fld, "is missing")
        schema = obj["schema_version"]
        if not _is_int(schema):
            raise bad("schema_version", f"must be an integer, got {schema!r}")
        if schema not in READABLE_SCHEMA_VERSIONS:
            readable = " and ".join(map(str, READABLE_SCHEMA_VERSIONS))
            raise bad("schema_version", f"is {schema}; this shoprec reads versions {readable}")
        version = obj["model_version"]
        if not (isinstance(version, str) and version.startswith("sha256:") and _is_hex(version[7:], 64)):
            raise bad("model_version", f"must be 'sha256:' + 64 hex digits, got {version!r}")
        created = obj["created_at"]
        if not isinstance(created, str) or not _is_iso_utc(created):
            raise bad("created_at", f"must be an ISO-8601 UTC timestamp, got {created!r}")
        dataset = obj["dataset"]
        _check_dataset(dataset, bad)
        dicts: dict[str, dict[str, Any]] = {}
        for fld in ("hyperparameters", "metrics", "extra"):
            value = obj.get(fld, {})
            if not isinstance(value, dict):
                raise bad(fld, f"must be an object, got {type(value).__name__}")
            dicts[fld] = value
        entries = _file_entries(obj["files"], bad)
        names = {e.name for e in entries}
        if schema == 1:
            pipeline = _v1_pipeline(dicts["extra"], names, bad)
        else:
            if "pipeline" not in obj:
                raise bad("pipeline", "is missing")
            pipeline = parse_pipeline(obj["pipeline"], bad)
        return cls(
            schema_version=schema,
            model_version=version,
            created_at=created,
            dataset=dataset,
            hyperparameters=dicts["hyperparameters"],
            metrics=dicts["metrics"],
            files=entries,
            pipeline=pipeline,
            extra=dicts["extra"],
        )


Bad = Callable[[str, str], ArtifactError]


def parse_pipeline(obj: Any, bad: Bad) -> PipelineSpec:
    """The manifest's ``pipeline`` object as a :class:`PipelineSpec`; the first error names its field."""
    try:
        return PipelineSpec.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["pipeline", *(str(p) for p in err["loc"])])
        value = f", got {err['input']!r}" if err["type"] not in ("missing",) and "input" in err else ""
        raise bad(where, f"is invalid: {err['msg']}{value}") from None


def _v1_pipeline(extra: dict[str, Any], names: set[str], bad: Bad) -> PipelineSpec:
    """The pipeline a schema-1 bundle was served with: the recall merge, then the ranker's score alone.

    Its ranker's ``max_len`` was ``extra.ranker.max_len`` (the model's default when absent: a bundle served
    by a remote ranker did not need it)."""
    ranker = extra.get("ranker")
    ranker = ranker if isinstance(ranker, dict) else {}
    max_len = ranker.get("max_len", RankerSpec().max_len)
    if not _is_int(max_len) or max_len < 1:
        raise bad("extra.ranker.max_len", f"must be a positive integer, got {max_len!r}")
    int8 = ranker.get("int8_file")
    spec = RankerSpec(max_len=max_len, int8_file=int8 if isinstance(int8, str) and int8 in names else None)
    return PipelineSpec(ranker=spec, fusion=FusionSpec(kind="ranker"))


def _file_entries(files: Any, bad: Bad) -> tuple[FileEntry, ...]:
    if not isinstance(files, list):
        raise bad("files", "must be a list")
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(f, dict):
            raise bad(where, "must be an object {name, sha256, size}")
        name, sha, size = f.get("name"), f.get("sha256"), f.get("size")
        if not isinstance(name, str):
            raise bad(f"{where}.name", f"must be a string, got {name!r}")
        try:
            check_name(name)
        except ValueError as exc:
            raise bad(f"{where}.name", str(exc)) from None
        if name in seen:
            raise bad(f"{where}.name", f"lists '{name}' twice")
        seen.add(name)
        if not (isinstance(sha, str) and _is_hex(sha, 64)):
            raise bad(f"{where}.sha256", f"must be 64 hex digits, got {sha!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{where}.size", f"must be a non-negative integer, got {size!r}")
        entries.append(FileEntry(name=name, sha256=sha, size=size))
    return tuple(entries)


def content_version(files: Iterable[FileEntry]) -> str:
    """``"sha256:" + hex`` of the sha256 over the sorted ``name\\0sha256\\n`` lines of ``files``."""
    h = hashlib.sha256()
    for line in sorted(f"{e.name}\0{e.sha256}\n" for e in files):
        h.update(line.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    """The manifest's ``dataset`` object for a :class:`shoprec.data.model.Dataset`."""
    return {
        "name": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "format": dataset.fmt,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": dataset.n_interactions,
    }


def check_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a safe relative posix path inside the bundle."""
    if not name or "\\" in name or "\0" in name:
        raise ValueError("must be a non-empty posix path without backslashes")
    p = PurePosixPath(name)
    if p.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError("must be a relative path without '.', '..' or empty parts")


def json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays (e.g. metrics computed with numpy)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _check_dataset(dataset: Any, bad: Bad) -> None:
    if not isinstance(dataset, dict):
        raise bad("dataset", f"must be an object, got {type(dataset).__name__}")
    for key in DATASET_FIELDS:
        if key not in dataset:
            raise bad(f"dataset.{key}", "is missing")
    for key in ("name", "fingerprint", "format"):
        if not isinstance(dataset[key], str):
            raise bad(f"dataset.{key}", f"must be a string, got {dataset[key]!r}")
    for key in ("n_users", "n_items", "n_interactions"):
        if not (_is_int(dataset[key]) and dataset[key] >= 0):
            raise bad(f"dataset.{key}", f"must be a non-negative integer, got {dataset[key]!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and all(c in "0123456789abcdef" for c in value)


def _is_iso_utc(value: str) -> bool:
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return False
    return ts.utcoffset() is not None and ts.utcoffset() == UTC.utcoffset(None)
