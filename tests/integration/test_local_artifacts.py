"""LocalArtifactStore: a bundle folder is only handed out once every checksum matches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shoprec.adapters.local.artifacts import LocalArtifactStore
from shoprec.artifacts import ITEMCF
from shoprec.errors import ArtifactError, CorruptBundleError
from shoprec.ports import ArtifactStore


def test_a_verified_bundle_folder_is_returned(bundle_dir: Path) -> None:
    store = LocalArtifactStore(bundle_dir)
    assert isinstance(store, ArtifactStore)
    assert store.local_path() == bundle_dir.resolve()
    assert store.describe() == f"file://{bundle_dir.resolve()}"


def test_a_corrupted_file_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    data = bytearray((copy / ITEMCF).read_bytes())
    data[100] ^= 0xFF  # one flipped byte, same size: only the checksum can tell
    (copy / ITEMCF).write_bytes(bytes(data))
    with pytest.raises(CorruptBundleError, match=ITEMCF):
        LocalArtifactStore(copy).local_path()


def test_a_folder_without_a_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a shoprec bundle"):
        LocalArtifactStore(tmp_path).local_path()
