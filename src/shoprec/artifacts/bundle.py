"""Artifact bundles: a folder of model files plus ``manifest.json`` with checksums and a content version.

Layout and manifest schema are documented in ``docs/artifact-bundle.md``.  This module is serving code: it
uses numpy and the standard library only.

Writing is atomic: :class:`BundleWriter` stages every file in a hidden sibling folder and, on ``commit``,
renames it into place; readers see either the old complete bundle or the new complete bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import numpy as np
import numpy.typing as npt

from shoprec.errors import ArtifactError, CorruptBundleError
from shoprec.recall.itemcf import ItemCFNeighbours

if TYPE_CHECKING:
    from shoprec.data.model import Dataset

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1

# --- file names: writer (training) and loader (serving) agree on these ---------------------------------
MANIFEST: Final = "manifest.json"
ITEM_IDS: Final = "item_ids.json"  # JSON list of the dataset's item ids (strings); position = item index
POPULARITY: Final = "popularity.npy"  # float32 [n_items]
ITEMCF: Final = "itemcf.npz"  # arrays "indices" int32 [n_items, k] (-1 padded), "scores" float32 [n_items, k]
ITEM_EMBEDDINGS: Final = "item_embeddings.npy"  # float32 [n_items, d]
CATALOG: Final = "catalog.jsonl"  # optional; one JSON object per line with "item_id" plus metadata
RANKER_ONNX: Final = "ranker.onnx"  # optional; the ranking model, found with Bundle.file(RANKER_ONNX)
RANKER_INT8_ONNX: Final = "ranker.int8.onnx"  # optional; its int8 dynamically quantised variant

REQUIRED_FILES: Final = (ITEM_IDS, POPULARITY, ITEMCF, ITEM_EMBEDDINGS)
DATASET_FIELDS: Final = ("name", "fingerprint", "format", "n_users", "n_items", "n_interactions")

_CHUNK = 1 << 20  # stream hashing in 1 MiB chunks
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp, so identical arrays give identical bytes


# --- manifest -----------------------------------------------------------------------------------------


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
    """Content of ``manifest.json``."""

    schema_version: int
    model_version: str
    created_at: str
    dataset: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    files: tuple[FileEntry, ...]
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
            "extra": self.extra,
        }
        return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n"

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
        if schema != SCHEMA_VERSION:
            raise bad("schema_version", f"is {schema}; this shoprec reads version {SCHEMA_VERSION}")
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
        files = obj["files"]
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
                _check_name(name)
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
        return cls(
            schema_version=schema,
            model_version=version,
            created_at=created,
            dataset=dataset,
            hyperparameters=dicts["hyperparameters"],
            metrics=dicts["metrics"],
            files=tuple(entries),
            extra=dicts["extra"],
        )


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


# --- writing ------------------------------------------------------------------------------------------


class BundleWriter:
    """Stages a bundle next to ``out_dir`` and atomically swaps it into place on :meth:`commit`.

    Usage::

        with BundleWriter(out) as w:
            w.add_json(ITEM_IDS, item_ids)
            w.add_npy(POPULARITY, pop)
            export_onnx(model, w.path_for(RANKER_ONNX))
            manifest = w.commit(dataset=..., hyperparameters=..., metrics=...)

    Leaving the ``with`` block without committing (normally or by an exception) removes the staging
    folder; an existing bundle at ``out_dir`` is only ever replaced by a complete, hashed new one.
    An existing ``out_dir`` must be a bundle (hold ``manifest.json``) or be empty, otherwise ``commit``
    refuses to replace it.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(os.path.abspath(out_dir))  # normalised, so ".." or "." have a real name
        _check_replaceable(self.out_dir)  # fail before any training output is written, and again on commit
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.out_dir.parent / f".{self.out_dir.name}.staging-{secrets.token_hex(6)}"
        self.staging.mkdir()
        self._state = "open"  # open -> committed | aborted

    # context manager
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "open":
            if exc_type is None:
                log.warning("bundle %s was never committed; discarding the staged files", self.out_dir)
            self.abort()

    @property
    def committed(self) -> bool:
        return self._state == "committed"

    def abort(self) -> None:
        """Discard the staged files (idempotent; a no-op after a successful commit)."""
        if self._state == "open":
            self._state = "aborted"
            shutil.rmtree(self.staging, ignore_errors=True)

    def path_for(self, name: str) -> Path:
        """Where file ``name`` goes in the staging folder (parent folders are created); write it yourself."""
        self._require_open()
        try:
            _check_name(name)
        except ValueError as exc:
            raise ArtifactError(f"invalid bundle file name {name!r}: {exc}") from None
        if name == MANIFEST:
            raise ArtifactError(f"{MANIFEST} is written by commit(), not added")
        path = self.staging.joinpath(*PurePosixPath(name).parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_bytes(self, name: str, data: bytes) -> Path:
        path = self.path_for(name)
        path.write_bytes(data)
        return path

    def add_file(self, name: str, src_path: str | Path) -> Path:
        path = self.path_for(name)
        shutil.copyfile(src_path, path)
        return path

    def add_npy(self, name: str, array: npt.ArrayLike) -> Path:
        path = self.path_for(name)
        with path.open("wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
        return path

    def add_npz(self, name: str, arrays: Mapping[str, npt.ArrayLike]) -> Path:
        """A deterministic ``.npz`` (uncompressed zip with fixed timestamps), readable by ``np.load``.

        ``np.savez`` stamps zip members with the current time, so the same arrays would get a new
        checksum (and model version) every time; this writer does not.
        """
        path = self.path_for(name)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
        return path

    def add_json(self, name: str, obj: Any) -> Path:
        text = (
            json.dumps(
                obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_json_default
            )
            + "\n"
        )
        return self.add_bytes(name, text.encode("utf-8"))

    def add_jsonl(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        path = self.path_for(name)
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                line = json.dumps(
                    row, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_json_default
                )
                f.write(line + "\n")
        return path

    def commit(
        self,
        *,
        dataset: Mapping[str, Any],
        hyperparameters: Mapping[str, Any],
        metrics: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Hash every staged file, write ``manifest.json`` and swap the bundle into ``out_dir``.

        On any exception the staging folder is removed and an existing ``out_dir`` is left as it was.
        """
        self._require_open()
        try:
            entries = tuple(_hash_tree(self.staging))
            draft = Manifest(
                schema_version=SCHEMA_VERSION,
                model_version=content_version(entries),
                created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                dataset=dict(dataset),
                hyperparameters=dict(hyperparameters),
                metrics=dict(metrics),
                files=entries,
                extra=dict(extra or {}),
            )
            text = draft.to_json()
            # Validate exactly what readers will check (dataset fields, JSON values) before swapping; the
            # returned manifest is the parsed one, so it equals what load_bundle later reads.
            manifest = Manifest.from_json(text, source=self.staging / MANIFEST)
            (self.staging / MANIFEST).write_text(text, encoding="utf-8")
            self._swap_into_place()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        log.info("wrote bundle %s version %s (%d files)", self.out_dir, manifest.short_version, len(entries))
        return manifest

    def _swap_into_place(self) -> None:
        out = self.out_dir
        aside: Path | None = None
        if _check_replaceable(out):
            aside = out.parent / f".{out.name}.old-{secrets.token_hex(6)}"
            os.rename(out, aside)
        try:
            os.rename(self.staging, out)
        except BaseException:
            if aside is not None:
                os.rename(aside, out)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def _require_open(self) -> None:
        if self._state != "open":
            raise ArtifactError(f"bundle writer for {self.out_dir} is already {self._state}")


def _check_replaceable(out: Path) -> bool:
    """True if ``out`` exists and may be replaced; False if absent; ArtifactError if it must be kept."""
    if not (out.exists() or out.is_symlink()):
        return False
    if out.is_symlink() or not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a directory; refusing to replace it")
    if not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise ArtifactError(f"{out}: is not empty and not a shoprec bundle; refusing to replace it")
    return True


# --- reading ------------------------------------------------------------------------------------------


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate ``path/manifest.json`` without checking the files."""
    root = Path(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        why = "folder does not exist" if not root.exists() else f"{MANIFEST} missing"
        raise ArtifactError(f"not a shoprec bundle: {root}: {why}")
    return Manifest.from_json(mpath.read_bytes(), source=mpath)


def verify_bundle(path: str | Path) -> Manifest:
    """Check every file listed in the manifest for presence, size and sha256; return the manifest.

    Files present in the folder but not listed are ignored.  Raises :class:`ArtifactError` for a
    missing or malformed manifest and :class:`CorruptBundleError` (naming the file) for a mismatch.
    """
    root = Path(path)
    manifest = read_manifest(root)
    for e in manifest.files:
        fpath = root.joinpath(*PurePosixPath(e.name).parts)
        if not fpath.is_file():
            raise CorruptBundleError(
                f"file '{e.name}' listed in the manifest is missing", path=root, file=e.name
            )
        size = fpath.stat().st_size
        if size != e.size:
            raise CorruptBundleError(
                f"file '{e.name}' size mismatch: expected {e.size} bytes, found {size}",
                path=root,
                file=e.name,
            )
        actual = sha256_file(fpath)
        if actual != e.sha256:
            raise CorruptBundleError(
                f"file '{e.name}' checksum mismatch: expected sha256 {e.sha256}, found {actual}",
                path=root,
                file=e.name,
            )
    expected_version = content_version(manifest.files)
    if manifest.model_version != expected_version:
        raise CorruptBundleError(
            f"model_version {manifest.model_version} does not match the listed files ({expected_version})",
            path=root,
            file=MANIFEST,
        )
    return manifest


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: the manifest plus the arrays serving needs."""

    path: Path
    manifest: Manifest
    item_ids: list[str]
    popularity: npt.NDArray[np.float32]
    itemcf: ItemCFNeighbours
    item_embeddings: npt.NDArray[np.float32]
    catalog: dict[str, dict[str, Any]] | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    def file(self, name: str) -> Path:
        """Path of a file listed in the manifest (e.g. ``RANKER_ONNX``); :class:`ArtifactError` otherwise."""
        if self.manifest.entry(name) is None:
            raise ArtifactError(f"{self.path}: bundle has no file '{name}'")
        return self.path.joinpath(*PurePosixPath(name).parts)

    def has_file(self, name: str) -> bool:
        return self.manifest.entry(name) is not None


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Load a bundle; with ``verify`` (default) every listed file is checked first (see verify_bundle)."""
    root = Path(path)
    manifest = verify_bundle(root) if verify else read_manifest(root)

    def required(name: str) -> Path:
        fpath = root.joinpath(*PurePosixPath(name).parts)
        if manifest.entry(name) is None or not fpath.is_file():
            raise ArtifactError(f"{root}: required file '{name}' is missing from the bundle")
        return fpath

    item_ids = _load_item_ids(required(ITEM_IDS), root)
    n = len(item_ids)
    popularity = _load_npy(required(POPULARITY), root, POPULARITY)
    _check_shape(popularity, (n,), root, POPULARITY)
    itemcf = _load_itemcf(required(ITEMCF), root, n)
    embeddings = _load_npy(required(ITEM_EMBEDDINGS), root, ITEM_EMBEDDINGS)
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ArtifactError(f"{root}: '{ITEM_EMBEDDINGS}' has shape {embeddings.shape}, expected ({n}, d)")

    catalog = None
    if manifest.entry(CATALOG) is not None:
        catalog = _load_catalog(required(CATALOG), root)

    return Bundle(
        path=root,
        manifest=manifest,
        item_ids=item_ids,
        popularity=popularity.astype(np.float32, copy=False),
        itemcf=itemcf,
        item_embeddings=embeddings.astype(np.float32, copy=False),
        catalog=catalog,
    )


# --- helpers ------------------------------------------------------------------------------------------


def _load_item_ids(fpath: Path, root: Path) -> list[str]:
    try:
        ids = json.loads(fpath.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root}: '{ITEM_IDS}' is not valid JSON: {exc}") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArtifactError(f"{root}: '{ITEM_IDS}' must be a JSON list of strings")
    if len(set(ids)) != len(ids):
        raise ArtifactError(f"{root}: '{ITEM_IDS}' contains duplicate ids")
    return ids


def _load_npy(fpath: Path, root: Path, name: str) -> npt.NDArray[Any]:
    try:
        arr = np.load(fpath, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"{root}: '{name}' is not a readable .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise ArtifactError(f"{root}: '{name}' is not a .npy array")
    if not np.issubdtype(arr.dtype, np.number):
        raise ArtifactError(f"{root}: '{name}' has non-numeric dtype {arr.dtype}")
    return arr


def _load_itemcf(fpath: Path, root: Path, n: int) -> ItemCFNeighbours:
    try:
        with np.load(fpath, allow_pickle=False) as npz:
            indices = npz["indices"]
            scores = npz["scores"]
    except KeyError as exc:
        raise ArtifactError(f"{root}: '{ITEMCF}' lacks array {exc}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: '{ITEMCF}' is not a readable .npz archive: {exc}") from None
    if indices.ndim != 2 or indices.shape[0] != n or scores.shape != indices.shape:
        raise ArtifactError(
            f"{root}: '{ITEMCF}' has indices {indices.shape}, scores {scores.shape}; expected ({n}, k) both"
        )
    try:
        return ItemCFNeighbours(
            indices=indices.astype(np.int32, copy=False), scores=scores.astype(np.float32, copy=False)
        )
    except ValueError as exc:
        raise ArtifactError(f"{root}: '{ITEMCF}': {exc}") from None


def _load_catalog(fpath: Path, root: Path) -> dict[str, dict[str, Any]]:
    catalog: dict[str, dict[str, Any]] = {}
    with fpath.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArtifactError(f"{root}: '{CATALOG}' line {lineno}: invalid JSON: {exc}") from None
            if not isinstance(row, dict) or not isinstance(row.get("item_id"), str):
                raise ArtifactError(f"{root}: '{CATALOG}' line {lineno}: expected an object with 'item_id'")
            catalog[row["item_id"]] = row
    return catalog


def _check_shape(arr: npt.NDArray[Any], shape: tuple[int, ...], root: Path, name: str) -> None:
    if arr.shape != shape:
        raise ArtifactError(f"{root}: '{name}' has shape {arr.shape}, expected {shape}")


def _hash_tree(root: Path) -> list[FileEntry]:
    entries: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            fpath = Path(dirpath) / fn
            name = fpath.relative_to(root).as_posix()
            if name == MANIFEST:
                continue
            if fpath.is_symlink() or not fpath.is_file():
                raise ArtifactError(f"bundle file '{name}' must be a regular file")
            entries.append(FileEntry(name=name, sha256=sha256_file(fpath), size=fpath.stat().st_size))
    entries.sort(key=lambda e: e.name)
    return entries


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks (the digest the manifest records)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a safe relative posix path inside the bundle."""
    if not name or "\\" in name or "\0" in name:
        raise ValueError("must be a non-empty posix path without backslashes")
    p = PurePosixPath(name)
    if p.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError("must be a relative path without '.', '..' or empty parts")


def _check_dataset(dataset: Any, bad: Callable[[str, str], ArtifactError]) -> None:
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


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays (e.g. metrics computed with numpy)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


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
