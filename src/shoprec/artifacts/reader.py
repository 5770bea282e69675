"""Reading bundles: verification of every listed file against the manifest, and loading the arrays that
serving needs into a :class:`Bundle`. numpy and the standard library only; arrays are read with
``allow_pickle=False``, so a bundle can never execute code on load.

Loading maps rather than reads: the item table, popularity, text vectors, the item-CF table (the members
of an uncompressed ``.npz`` are mapped in place) and the columnar catalogue (``catalog/``) are
memory-mapped, so a cold start costs what requests touch, not the size of the bundle. Verification
hashes each file once: a stamp beside the bundle (:data:`STAMP_FILE`) records the size, modification and
change times and inode of every file whose sha256 matched, and a later verification hashes only the files
whose record no longer matches (``docs/artifact-bundle.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.manifest import FileEntry, Manifest, content_version
from shoprec.artifacts.specs import (
    CATALOG,
    CATALOG_COLUMNS,
    CATALOG_COLUMNS_DIR,
    CATALOG_TABLES,
    ITEM_IDS,
    MANIFEST,
    PipelineSpec,
)
from shoprec.errors import ArtifactError, CorruptBundleError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # stream hashing in 1 MiB chunks
STAMP_FILE: Final = ".shoprec-verified.json"
"""The verification stamp in a bundle folder (not listed in the manifest, so not part of the bundle)."""
STAMP_FORMAT: Final = 1
STAMP_DIR: Final = Path(tempfile.gettempdir()) / "shoprec-verified"
"""Where stamps go when the bundle folder is read-only (one file per bundle path)."""


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate ``path/manifest.json`` without checking the files."""
    root = Path(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        why = "folder does not exist" if not root.exists() else f"{MANIFEST} missing"
        raise ArtifactError(f"not a shoprec bundle: {root}: {why}")
    return Manifest.from_json(mpath.read_bytes(), source=mpath)


def verify_bundle(path: str | Path, *, use_stamp: bool = True) -> Manifest:
    """Check every file listed in the manifest for presence, size and sha256; return the manifest.

    Files present in the folder but not listed are ignored.  Raises :class:`ArtifactError` for a
    missing or malformed manifest and :class:`CorruptBundleError` (naming the file) for a mismatch.

    With ``use_stamp`` (default) a file whose size, modification and change times (ns), inode and device
    are those recorded in the folder's stamp when its sha256 last matched the manifest's is not hashed
    again: any write, truncation, copy or replacement changes the change time or the inode, so what was
    verified is still what is there. Every file hashed and found intact is recorded in the stamp (written
    beside the manifest, or under :data:`STAMP_DIR` when the folder is read-only). ``use_stamp=False``
    hashes every file, as publishing a bundle should.
    """
    root = Path(path)
    manifest = read_manifest(root)
    stamp = read_stamp(root) if use_stamp else {}
    verified: dict[str, list[Any]] = {}
    for e in manifest.files:
        fpath = root.joinpath(*PurePosixPath(e.name).parts)
        if not fpath.is_file():
            raise CorruptBundleError(
                f"file '{e.name}' listed in the manifest is missing", path=root, file=e.name
            )
        before = fpath.stat()
        if before.st_size != e.size:
            raise CorruptBundleError(
                f"file '{e.name}' size mismatch: expected {e.size} bytes, found {before.st_size}",
                path=root,
                file=e.name,
            )
        record = [e.sha256, *_stat_key(before)]
        if stamp.get(e.name) == record:
            verified[e.name] = record
            continue
        actual = sha256_file(fpath)
        if actual != e.sha256:
            raise CorruptBundleError(
                f"file '{e.name}' checksum mismatch: expected sha256 {e.sha256}, found {actual}",
                path=root,
                file=e.name,
            )
        if _stat_key(fpath.stat()) == record[1:]:  # not changed while it was hashed
            verified[e.name] = record
    expected_version = content_version(manifest.files)
    if manifest.model_version != expected_version:
        raise CorruptBundleError(
            f"model_version {manifest.model_version} does not match the listed files ({expected_version})",
            path=root,
            file=MANIFEST,
        )
    if use_stamp and verified != stamp:
        write_stamp(root, verified)
    return manifest


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def stamp_record(fpath: Path, entry: FileEntry) -> list[Any]:
    """The stamp's record of ``fpath`` holding ``entry``'s content (the writer stamps what it hashed)."""
    return [entry.sha256, *_stat_key(fpath.stat())]


def _stamp_paths(root: Path) -> list[Path]:
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return [root / STAMP_FILE, STAMP_DIR / f"{digest}.json"]


def read_stamp(root: Path) -> dict[str, list[Any]]:
    """The records of ``root``'s stamp (file name -> [sha256, size, mtime_ns, ctime_ns, inode, device]);
    empty when there is none or it is unreadable (then every file is hashed)."""
    for stamp_path in _stamp_paths(root):
        try:
            obj = json.loads(stamp_path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(obj, dict) and obj.get("format") == STAMP_FORMAT and isinstance(obj.get("files"), dict):
            return {k: v for k, v in obj["files"].items() if isinstance(v, list)}
    return {}


def write_stamp(root: Path, records: Mapping[str, list[Any]]) -> None:
    """Record ``records`` as ``root``'s stamp (atomically); a folder that cannot take it gets one under
    :data:`STAMP_DIR`, and where neither can be written every verification hashes (logged)."""
    text = json.dumps({"format": STAMP_FORMAT, "files": dict(records)}, sort_keys=True)
    for stamp_path in _stamp_paths(root):
        tmp = stamp_path.with_name(f".{stamp_path.name}.{secrets.token_hex(4)}.tmp")
        try:
            stamp_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, stamp_path)
            return
        except OSError:
            tmp.unlink(missing_ok=True)
    log.warning("cannot write a verification stamp for %s: every load will hash the bundle", root)


@dataclass(frozen=True, eq=False)
class CatalogColumns:
    """A bundle's columnar catalogue: its arrays (memory-mapped) and small tables, as
    ``shoprec.catalog.CatalogIndex.from_columns`` reads them."""

    arrays: dict[str, npt.NDArray[Any]]
    tables: dict[str, Any]


class CatalogRows(Mapping[str, dict[str, Any]]):
    """``catalog.jsonl`` by item id, parsed on first use (a columnar bundle serves without it)."""

    def __init__(self, fpath: Path, root: Path) -> None:
        self._fpath = fpath
        self._root = root
        self._rows: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._rows is None:
            self._rows = _load_catalog(self._fpath, self._root)
        return self._rows

    def __getitem__(self, item_id: str) -> dict[str, Any]:
        return self._load()[item_id]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: the manifest plus the arrays serving needs."""

    path: Path
    manifest: Manifest
    item_ids: list[str]
    popularity: npt.NDArray[np.float32]
    itemcf_indices: npt.NDArray[np.int32]
    itemcf_scores: npt.NDArray[np.float32]
    item_embeddings: npt.NDArray[np.float32]
    catalog: Mapping[str, Mapping[str, Any]] | None = None
    """``catalog.jsonl``'s rows by item id (parsed when first read if the bundle has ``catalog_columns``)."""
    text_embeddings: npt.NDArray[np.float32] | None = None
    """Sentence embeddings of the items' texts (``pipeline.text``), when the bundle has them."""
    catalog_columns: CatalogColumns | None = field(default=None)
    """The columnar catalogue (``catalog/``), when the bundle has one: what serving indexes."""

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    @property
    def pipeline(self) -> PipelineSpec:
        """The models of the pipeline and how they are combined (the manifest's ``pipeline``)."""
        return self.manifest.pipeline

    def file(self, name: str) -> Path:
        """Path of a file listed in the manifest (e.g. ``RANKER_ONNX``); :class:`ArtifactError` otherwise."""
        if self.manifest.entry(name) is None:
            raise ArtifactError(f"{self.path}: bundle has no file '{name}'")
        return self.path.joinpath(*PurePosixPath(name).parts)

    def has_file(self, name: str) -> bool:
        return self.manifest.entry(name) is not None

    def arrays(self, name: str) -> dict[str, npt.NDArray[Any]]:
        """Every array of the listed ``.npz`` file ``name``; :class:`ArtifactError` if it is unreadable."""
        fpath = self.file(name)
        try:
            with np.load(fpath, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ArtifactError(f"{self.path}: '{name}' is not a readable .npz archive: {exc}") from None


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Load a bundle; with ``verify`` (default) every listed file is checked first (see verify_bundle)."""
    root = Path(path)
    manifest = verify_bundle(root) if verify else read_manifest(root)

    def required(name: str) -> Path:
        fpath = root.joinpath(*PurePosixPath(name).parts)
        if manifest.entry(name) is None or not fpath.is_file():
            raise ArtifactError(f"{root}: required file '{name}' is missing from the bundle")
        return fpath

    spec = manifest.pipeline
    required(ITEM_IDS)
    columns = None
    if manifest.entry(CATALOG_TABLES) is not None:
        columns = _load_catalog_columns(root, required)
        item_ids = _column_item_ids(columns, root)
    else:
        item_ids = _load_item_ids(required(ITEM_IDS), root)
    n = len(item_ids)
    popularity = _load_npy(required(spec.popularity.file), root, spec.popularity.file)
    _check_shape(popularity, (n,), root, spec.popularity.file)
    itemcf_indices, itemcf_scores = _load_itemcf(required(spec.itemcf.file), root, n)
    emb_file = spec.embedding.file
    embeddings = _load_npy(required(emb_file), root, emb_file)
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ArtifactError(f"{root}: '{emb_file}' has shape {embeddings.shape}, expected ({n}, d)")

    catalog: Mapping[str, Mapping[str, Any]] | None = None
    if manifest.entry(CATALOG) is not None:
        # With columns the rows are only read by whoever asks for them; without, serving indexes them now.
        rows = CatalogRows(required(CATALOG), root)
        catalog = rows if columns is not None else rows._load()

    text_embeddings = None
    if spec.text is not None:
        # The encoder itself is loaded on the first search (shoprec.search.build), not with the bundle.
        required(spec.text.encoder_file)
        required(spec.text.tokenizer_file)
        text_file = spec.text.embeddings_file
        text_embeddings = _load_npy(required(text_file), root, text_file)
        _check_shape(text_embeddings, (n, spec.text.dim), root, text_file)

    if spec.search is not None:
        # Loaded (memory-mapped) on the first search by shoprec.search.build; checked here with the rest.
        for name in spec.search.files():
            required(name)
        if spec.search.n_items != n:
            raise ArtifactError(f"{root}: the search index has {spec.search.n_items} items, the bundle {n}")

    return Bundle(
        path=root,
        manifest=manifest,
        item_ids=item_ids,
        popularity=popularity.astype(np.float32, copy=False),
        itemcf_indices=itemcf_indices,
        itemcf_scores=itemcf_scores,
        item_embeddings=embeddings.astype(np.float32, copy=False),
        catalog=catalog,
        text_embeddings=None if text_embeddings is None else text_embeddings.astype(np.float32, copy=False),
        catalog_columns=columns,
    )


# --- helpers ----------------------------------------------------------------------------------------


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


def _load_npy(fpath: Path, root: Path, name: str, *, numeric: bool = True) -> npt.NDArray[Any]:
    """The array of ``fpath``, memory-mapped read-only (pages are read when touched)."""
    try:
        arr = np.load(fpath, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"{root}: '{name}' is not a readable .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise ArtifactError(f"{root}: '{name}' is not a .npy array")
    if numeric and not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ArtifactError(f"{root}: '{name}' has non-numeric dtype {arr.dtype}")
    # A plain ndarray over the map: results of operations on it are ndarrays, not memmaps.
    return arr.view(np.ndarray) if isinstance(arr, np.memmap) else arr


def npz_member(fpath: Path, key: str) -> npt.NDArray[Any]:
    """Array ``key`` of the ``.npz`` archive ``fpath``: memory-mapped in place when the member is stored
    uncompressed (as ``BundleWriter.add_npz`` and ``np.savez`` write them), else read. ``KeyError`` when
    the archive has no such array; ``ValueError`` / ``OSError`` / ``BadZipFile`` when it is malformed."""
    with zipfile.ZipFile(fpath) as zf:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with zf.open(info) as member:
                arr: npt.NDArray[Any] = np.lib.format.read_array(member, allow_pickle=False)
                return arr
    with fpath.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"member {key}.npy has no local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"member {key}.npy has .npy format {version}")
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"member {key}.npy holds Python objects")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset - start + nbytes > info.file_size:
        raise ValueError(f"member {key}.npy is shorter than its header says")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    mapped = np.memmap(
        fpath, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )
    return mapped.view(np.ndarray)


def _load_itemcf(fpath: Path, root: Path, n: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """The neighbour table, memory-mapped. Its indices are checked where they are read (each request
    checks the rows it gathers: ``ItemCFNeighbours``), not by a scan of the whole table at load."""
    name = fpath.relative_to(root).as_posix()
    try:
        indices = npz_member(fpath, "indices")
        scores = npz_member(fpath, "scores")
    except KeyError:
        raise ArtifactError(f"{root}: '{name}' lacks array 'indices' or 'scores'") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: '{name}' is not a readable .npz archive: {exc}") from None
    if indices.ndim != 2 or indices.shape[0] != n or scores.shape != indices.shape:
        raise ArtifactError(
            f"{root}: '{name}' has indices {indices.shape}, scores {scores.shape}; expected ({n}, k) both"
        )
    if not np.issubdtype(indices.dtype, np.integer) or not np.issubdtype(scores.dtype, np.floating):
        raise ArtifactError(f"{root}: '{name}' must hold integer indices and float scores")
    return indices.astype(np.int32, copy=False), scores.astype(np.float32, copy=False)


def _load_catalog_columns(root: Path, required: Any) -> CatalogColumns:
    try:
        tables = json.loads(required(CATALOG_TABLES).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root}: '{CATALOG_TABLES}' is not valid JSON: {exc}") from None
    if not isinstance(tables, dict):
        raise ArtifactError(f"{root}: '{CATALOG_TABLES}' must be a JSON object")
    arrays = {}
    for column in CATALOG_COLUMNS:
        name = f"{CATALOG_COLUMNS_DIR}/{column}.npy"
        arrays[column] = _load_npy(required(name), root, name, numeric=column != "ids")
    return CatalogColumns(arrays, tables)


def _column_item_ids(columns: CatalogColumns, root: Path) -> list[str]:
    ids = columns.arrays["ids"]
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise ArtifactError(f"{root}: '{CATALOG_COLUMNS_DIR}/ids.npy' must be a 1-d array of strings")
    out: list[str] = ids.tolist()
    return out


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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks (the digest the manifest records)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
