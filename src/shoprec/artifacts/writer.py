"""Writing bundles atomically: :class:`BundleWriter` stages every file in a hidden sibling folder and, on
``commit``, hashes them, writes ``manifest.json`` and renames the folder into place; readers see either
the old complete bundle or the new complete bundle.

``commit`` also derives the columnar catalogue (``catalog/``, memory-mapped by serving) from a staged
``catalog.jsonl`` and ``item_ids.json``, and stamps the new bundle as verified (it has just hashed every
file), so that its first load does not hash it again (``shoprec.artifacts.reader.verify_bundle``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shoprec.artifacts.manifest import (
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    check_name,
    content_version,
    json_default,
)
from shoprec.artifacts.reader import (
    _load_catalog,
    _load_item_ids,
    _stat_key,
    sha256_file,
    stamp_record,
    write_stamp,
)
from shoprec.artifacts.specs import (
    CATALOG,
    CATALOG_COLUMNS_DIR,
    CATALOG_TABLES,
    ITEM_IDS,
    MANIFEST,
    PipelineSpec,
)
from shoprec.errors import ArtifactError

log = logging.getLogger(__name__)

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp, so identical arrays give identical bytes


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

    def __init__(self, out_dir: str | Path, *, columnar_catalog: bool = True) -> None:
        """``columnar_catalog=False`` leaves the catalogue as ``catalog.jsonl`` alone (as bundles written
        before the columnar catalogue were)."""
        self.out_dir = Path(os.path.abspath(out_dir))  # normalised, so ".." or "." have a real name
        self.columnar_catalog = columnar_catalog
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
            check_name(name)
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
                obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=json_default
            )
            + "\n"
        )
        return self.add_bytes(name, text.encode("utf-8"))

    def add_jsonl(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        path = self.path_for(name)
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                line = json.dumps(
                    row, sort_keys=True, ensure_ascii=False, allow_nan=False, default=json_default
                )
                f.write(line + "\n")
        return path

    def commit(
        self,
        *,
        dataset: Mapping[str, Any],
        hyperparameters: Mapping[str, Any],
        metrics: Mapping[str, Any],
        pipeline: PipelineSpec,
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Hash every staged file, write ``manifest.json`` and swap the bundle into ``out_dir``.

        On any exception the staging folder is removed and an existing ``out_dir`` is left as it was.
        """
        self._require_open()
        try:
            if self.columnar_catalog:
                self._add_catalog_columns()
            hashed = _hash_tree(self.staging)
            entries = tuple(entry for entry, _ in hashed)
            draft = Manifest(
                schema_version=SCHEMA_VERSION,
                model_version=content_version(entries),
                created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                dataset=dict(dataset),
                hyperparameters=dict(hyperparameters),
                metrics=dict(metrics),
                files=entries,
                pipeline=pipeline,
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
        self._stamp(hashed)
        log.info("wrote bundle %s version %s (%d files)", self.out_dir, manifest.short_version, len(entries))
        return manifest

    def _add_catalog_columns(self) -> None:
        """The columnar catalogue of the staged ``catalog.jsonl`` over the staged ``item_ids.json``
        (``shoprec.catalog.CatalogIndex.to_columns``), unless staged already (a copied bundle) or either
        file is missing. Malformed rows fail the commit, naming the line."""
        rows_path, ids_path = self.staging / CATALOG, self.staging / ITEM_IDS
        if not rows_path.is_file() or not ids_path.is_file() or (self.staging / CATALOG_TABLES).exists():
            return
        from shoprec.catalog import CatalogIndex

        catalog = CatalogIndex.build(
            _load_item_ids(ids_path, self.staging), _load_catalog(rows_path, self.staging)
        )
        columns = catalog.to_columns()
        if columns is None:
            log.info("item ids do not fit fixed-width strings; %s keeps %s alone", self.out_dir, CATALOG)
            return
        arrays, tables = columns
        for name, array in arrays.items():
            self.add_npy(f"{CATALOG_COLUMNS_DIR}/{name}.npy", array)
        self.add_json(CATALOG_TABLES, tables)

    def _stamp(self, hashed: list[tuple[FileEntry, list[int]]]) -> None:
        """Record the files hashed for the manifest as verified, those unchanged since (all, normally)."""
        records = {}
        for entry, before in hashed:
            fpath = self.out_dir.joinpath(*PurePosixPath(entry.name).parts)
            try:
                record = stamp_record(fpath, entry)
            except OSError:
                continue
            if record[1:] == before:
                records[entry.name] = record
        write_stamp(self.out_dir, records)

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


def _hash_tree(root: Path) -> list[tuple[FileEntry, list[int]]]:
    """Every file under ``root`` but the manifest, hashed, with its stat key as it was before hashing."""
    entries: list[tuple[FileEntry, list[int]]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            fpath = Path(dirpath) / fn
            name = fpath.relative_to(root).as_posix()
            if name == MANIFEST:
                continue
            if fpath.is_symlink() or not fpath.is_file():
                raise ArtifactError(f"bundle file '{name}' must be a regular file")
            before = _stat_key(fpath.stat())
            entries.append((FileEntry(name=name, sha256=sha256_file(fpath), size=before[0]), before))
    entries.sort(key=lambda e: e[0].name)
    return entries
