"""Verification hashes each file once: the stamp records what was verified, and any change to a file since
(a write, even one that keeps its size and modification time, a replacement, a copy) hashes it again, so
a tampered or corrupt file is still refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from shoprec.artifacts import (
    CATALOG,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    BundleWriter,
    FusionSpec,
    PipelineSpec,
    load_bundle,
    reader,
    verify_bundle,
)
from shoprec.errors import CorruptBundleError

NO_RANKER = PipelineSpec(ranker=None, fusion=FusionSpec(kind="weighted", weights={"itemcf": 1.0}))
DATASET = {
    "name": "tiny",
    "fingerprint": "sha256:" + "0" * 64,
    "format": "test",
    "n_users": 1,
    "n_items": 3,
    "n_interactions": 1,
}


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The names of the files hashed by verification (and a stamp folder of the test's own)."""
    monkeypatch.setattr(reader, "STAMP_DIR", tmp_path / "stamps")
    names: list[str] = []
    real = reader.sha256_file

    def counting(path: Path) -> str:
        names.append(path.name)
        return real(path)

    monkeypatch.setattr(reader, "sha256_file", counting)
    return names


def write(out: Path) -> None:
    with BundleWriter(out) as w:
        w.add_json(ITEM_IDS, ["a", "b", "c"])
        w.add_npy(POPULARITY, np.array([3, 1, 1], dtype=np.float32))
        w.add_npz(ITEMCF, {"indices": np.full((3, 2), -1, np.int32), "scores": np.zeros((3, 2), np.float32)})
        w.add_npy(ITEM_EMBEDDINGS, np.ones((3, 4), dtype=np.float32))
        w.add_jsonl(CATALOG, [{"item_id": i, "title": f"Item {i}"} for i in "abc"])
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)


def flip_a_byte(path: Path) -> None:
    """Change one byte in place: same size; the modification time put back as it was."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_bundle_just_written_is_not_hashed_again(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    assert (tmp_path / "b" / reader.STAMP_FILE).is_file()
    verify_bundle(tmp_path / "b")
    load_bundle(tmp_path / "b")
    assert hashed == []
    verify_bundle(tmp_path / "b", use_stamp=False)  # publishing hashes every file
    assert sorted(hashed) == sorted(Path(e.name).name for e in reader.read_manifest(tmp_path / "b").files)


def test_a_file_changed_in_place_is_hashed_and_refused(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    flip_a_byte(tmp_path / "b" / POPULARITY)
    with pytest.raises(CorruptBundleError, match=f"'{POPULARITY}' checksum mismatch"):
        verify_bundle(tmp_path / "b")
    assert hashed == [POPULARITY]  # the only file whose record no longer matches
    with pytest.raises(CorruptBundleError, match=POPULARITY):
        load_bundle(tmp_path / "b")  # and again: a refused file is never recorded


def test_a_replaced_file_is_hashed_again_and_recorded(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    path = tmp_path / "b" / ITEM_EMBEDDINGS
    shutil.copyfile(path, tmp_path / "copy")
    os.replace(tmp_path / "copy", path)  # same content, another inode
    verify_bundle(tmp_path / "b")
    assert hashed == [ITEM_EMBEDDINGS]
    verify_bundle(tmp_path / "b")
    assert hashed == [ITEM_EMBEDDINGS]  # recorded again


def test_a_copied_bundle_is_hashed_once(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    shutil.copytree(tmp_path / "b", tmp_path / "c")  # the stamp comes along, the inodes do not
    verify_bundle(tmp_path / "c")
    assert len(hashed) == len(reader.read_manifest(tmp_path / "c").files)
    hashed.clear()
    verify_bundle(tmp_path / "c")
    assert hashed == []


def test_a_damaged_stamp_means_hashing(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    stamp = tmp_path / "b" / reader.STAMP_FILE
    stamp.write_text("{not json")
    verify_bundle(tmp_path / "b")
    n_files = len(reader.read_manifest(tmp_path / "b").files)
    assert len(hashed) == n_files
    assert json.loads(stamp.read_text())["format"] == reader.STAMP_FORMAT
    # a record that names another checksum than the manifest's is not trusted either
    obj = json.loads(stamp.read_text())
    obj["files"][POPULARITY][0] = "0" * 64
    stamp.write_text(json.dumps(obj))
    verify_bundle(tmp_path / "b")
    assert hashed[n_files:] == [POPULARITY]


def test_a_folder_that_cannot_take_the_stamp_keeps_it_aside(tmp_path: Path, hashed: list[str]) -> None:
    write(tmp_path / "b")
    stamp = tmp_path / "b" / reader.STAMP_FILE
    stamp.unlink()
    stamp.mkdir()  # the stamp cannot be written there (as in a read-only folder)
    verify_bundle(tmp_path / "b")
    assert hashed
    assert list((tmp_path / "stamps").iterdir())
    hashed.clear()
    verify_bundle(tmp_path / "b")
    assert hashed == []
    flip_a_byte(tmp_path / "b" / ITEM_IDS)
    with pytest.raises(CorruptBundleError, match=ITEM_IDS):
        verify_bundle(tmp_path / "b")
