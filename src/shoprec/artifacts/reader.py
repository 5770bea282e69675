"""Reading bundles: verification of every listed file against the manifest, and loading the arrays that
serving needs into a :class:`Bundle`. numpy and the standard library only; arrays are read with
``allow_pickle=False``, so a bundle can never execute code on load.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.manifest import Manifest, content_version
from shoprec.artifacts.specs import (
    CATALOG,
    ITEM_IDS,
    MANIFEST,
    PipelineSpec,
)
from shoprec.errors import ArtifactError, CorruptBundleError

_CHUNK = 1 << 20  # stream hashing in 1 MiB chunks


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
    itemcf_indices: npt.NDArray[np.int32]
    itemcf_scores: npt.NDArray[np.float32]
    item_embeddings: npt.NDArray[np.float32]
    catalog: dict[str, dict[str, Any]] | None = None
    text_embeddings: npt.NDArray[np.float32] | None = None
    """Sentence embeddings of the items' texts (``pipeline.text``), when the bundle has them."""

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
    item_ids = _load_item_ids(required(ITEM_IDS), root)
    n = len(item_ids)
    popularity = _load_npy(required(spec.popularity.file), root, spec.popularity.file)
    _check_shape(popularity, (n,), root, spec.popularity.file)
    itemcf_indices, itemcf_scores = _load_itemcf(required(spec.itemcf.file), root, n)
    emb_file = spec.embedding.file
    embeddings = _load_npy(required(emb_file), root, emb_file)
    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ArtifactError(f"{root}: '{emb_file}' has shape {embeddings.shape}, expected ({n}, d)")

    catalog = None
    if manifest.entry(CATALOG) is not None:
        catalog = _load_catalog(required(CATALOG), root)

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


def _load_itemcf(fpath: Path, root: Path, n: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    name = fpath.relative_to(root).as_posix()
    try:
        with np.load(fpath, allow_pickle=False) as npz:
            indices = npz["indices"]
            scores = npz["scores"]
    except KeyError as exc:
        raise ArtifactError(f"{root}: '{name}' lacks array {exc}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: '{name}' is not a readable .npz archive: {exc}") from None
    if indices.ndim != 2 or indices.shape[0] != n or scores.shape != indices.shape:
        raise ArtifactError(
            f"{root}: '{name}' has indices {indices.shape}, scores {scores.shape}; expected ({n}, k) both"
        )
    if not np.issubdtype(indices.dtype, np.integer) or not np.issubdtype(scores.dtype, np.floating):
        raise ArtifactError(f"{root}: '{name}' must hold integer indices and float scores")
    if indices.size and (indices.min() < -1 or indices.max() >= n):
        raise ArtifactError(f"{root}: '{name}': neighbour indices must lie in [-1, {n})")
    return indices.astype(np.int32, copy=False), scores.astype(np.float32, copy=False)


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
