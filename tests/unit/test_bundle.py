from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprec.artifacts import (
    CATALOG,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    MANIFEST,
    POPULARITY,
    RANKER_ONNX,
    TEXT_EMBEDDINGS,
    TEXT_ENCODER_ONNX,
    TEXT_TOKENIZER,
    BundleWriter,
    FusionSpec,
    Manifest,
    PipelineSpec,
    RankerSpec,
    TextSpec,
    content_version,
    dataset_summary,
    load_bundle,
    verify_bundle,
)
from shoprec.artifacts import writer as writer_mod
from shoprec.data.model import Dataset
from shoprec.errors import ArtifactError, CorruptBundleError

DATASET = {
    "name": "tiny",
    "fingerprint": "sha256:" + "0" * 64,
    "format": "test",
    "n_users": 2,
    "n_items": 3,
    "n_interactions": 5,
}
ITEMS = ["a", "b", "c"]
POP = np.array([3, 1, 1], dtype=np.float32)
NB_IDX = np.array([[1, 2], [0, -1], [-1, -1]], dtype=np.int32)
NB_SC = np.array([[0.5, 0.25], [0.5, 0], [0, 0]], dtype=np.float32)
PIPELINE = PipelineSpec(ranker=RankerSpec(max_len=4, int8_file=None), fusion=FusionSpec(kind="ranker"))
NO_RANKER = PipelineSpec(ranker=None, fusion=FusionSpec(kind="weighted", weights={"itemcf": 1.0}))


def write_tiny(out: Path, *, emb_seed: int = 0, extra: dict[str, Any] | None = None) -> Manifest:
    emb = np.random.default_rng(emb_seed).standard_normal((3, 4)).astype(np.float32)
    with BundleWriter(out) as w:
        w.add_json(ITEM_IDS, ITEMS)
        w.add_npy(POPULARITY, POP)
        w.add_npz(ITEMCF, {"indices": NB_IDX, "scores": NB_SC})
        w.add_npy(ITEM_EMBEDDINGS, emb)
        w.add_jsonl(CATALOG, [{"item_id": i, "title": f"Item {i}"} for i in ITEMS])
        w.add_bytes("sub/dir/notes.txt", b"hello")
        w.path_for(RANKER_ONNX).write_bytes(b"not really onnx")
        return w.commit(
            dataset=DATASET,
            hyperparameters={"k": 2, "alpha": 0.8},
            metrics={"hr@10": np.float32(0.25), "n": np.int64(3)},
            pipeline=PIPELINE,
            extra=extra,
        )


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def rewrite_manifest(path: Path, edit: Any) -> None:
    obj = json.loads((path / MANIFEST).read_text())
    edit(obj)
    (path / MANIFEST).write_text(json.dumps(obj))


def test_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    manifest = write_tiny(out, extra={"note": "x"})
    b = load_bundle(out)
    assert b.manifest == manifest
    assert b.item_ids == ITEMS
    assert b.popularity.dtype == np.float32
    np.testing.assert_array_equal(b.popularity, POP)
    np.testing.assert_array_equal(b.itemcf_indices, NB_IDX)
    np.testing.assert_array_equal(b.itemcf_scores, NB_SC)
    assert b.pipeline == PIPELINE
    expected_emb = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(b.item_embeddings, expected_emb)
    assert b.catalog == {i: {"item_id": i, "title": f"Item {i}"} for i in ITEMS}
    assert b.file(RANKER_ONNX).read_bytes() == b"not really onnx"
    assert b.file("sub/dir/notes.txt").read_bytes() == b"hello"
    with pytest.raises(ArtifactError, match=r"no file 'missing\.bin'"):
        b.file("missing.bin")
    names = [f.name for f in manifest.files]
    assert names == sorted(names)
    assert MANIFEST not in names
    assert "sub/dir/notes.txt" in names
    for f in manifest.files:
        assert f.size == (out / f.name).stat().st_size
    assert manifest.metrics == {"hr@10": 0.25, "n": 3}
    assert manifest.hyperparameters == {"k": 2, "alpha": 0.8}
    assert manifest.dataset == DATASET
    assert manifest.extra == {"note": "x"}
    assert manifest.created_at.endswith("Z")
    assert manifest.model_version == content_version(manifest.files)
    assert manifest.short_version == manifest.model_version[len("sha256:") :][:12]
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert leftovers(tmp_path) == []


def test_catalog_is_optional(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b") as w:
        w.add_json(ITEM_IDS, ITEMS)
        w.add_npy(POPULARITY, POP)
        w.add_npz(ITEMCF, {"indices": NB_IDX, "scores": NB_SC})
        w.add_npy(ITEM_EMBEDDINGS, np.zeros((3, 2), np.float32))
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    assert load_bundle(tmp_path / "b").catalog is None


def test_same_content_same_version(tmp_path: Path) -> None:
    m1 = write_tiny(tmp_path / "one")
    m2 = write_tiny(tmp_path / "two", extra={"differs": True})
    assert m1.model_version == m2.model_version
    assert (tmp_path / "one" / ITEMCF).read_bytes() == (tmp_path / "two" / ITEMCF).read_bytes()
    m3 = write_tiny(tmp_path / "three", emb_seed=1)
    assert m3.model_version != m1.model_version


def test_tampered_byte_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "b"
    manifest = write_tiny(out)
    target = out / POPULARITY
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptBundleError) as info:
        load_bundle(out)
    err = info.value
    assert err.file == POPULARITY
    assert POPULARITY in str(err)
    entry = manifest.entry(POPULARITY)
    assert entry is not None
    assert entry.sha256 in str(err)
    assert "expected" in str(err)
    load_bundle(out, verify=False)  # same size, readable: only verification catches it


def test_size_change_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    with (out / "sub/dir/notes.txt").open("ab") as f:
        f.write(b"!")
    with pytest.raises(CorruptBundleError, match=r"sub/dir/notes\.txt.*expected 5 bytes, found 6") as info:
        verify_bundle(out)
    assert info.value.file == "sub/dir/notes.txt"


def test_deleted_file_names_it(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    (out / ITEM_EMBEDDINGS).unlink()
    with pytest.raises(CorruptBundleError, match=ITEM_EMBEDDINGS) as info:
        load_bundle(out)
    assert info.value.file == ITEM_EMBEDDINGS
    with pytest.raises(ArtifactError, match=f"required file '{ITEM_EMBEDDINGS}'"):
        load_bundle(out, verify=False)


def test_required_file_not_listed(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b") as w:
        w.add_json(ITEM_IDS, ITEMS)
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    with pytest.raises(ArtifactError, match=f"required file '{POPULARITY}'"):
        load_bundle(tmp_path / "b")


def test_unlisted_files_are_ignored(tmp_path: Path) -> None:
    out = tmp_path / "b"
    manifest = write_tiny(out)
    (out / "stray.txt").write_text("not listed")
    assert verify_bundle(out) == manifest


def test_missing_manifest(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    (out / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=r"not a shoprec bundle.*manifest\.json missing"):
        load_bundle(out)
    with pytest.raises(ArtifactError, match="not a shoprec bundle"):
        verify_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m.update(schema_version="1"), "schema_version"),
        (lambda m: m.update(schema_version=3), "schema_version"),
        (lambda m: m.pop("pipeline"), "pipeline"),
        (lambda m: m["pipeline"]["ranker"].update(max_len=0), "pipeline.ranker.max_len"),
        (lambda m: m["pipeline"]["fusion"].update(kind="magic"), "pipeline.fusion.kind"),
        (lambda m: m["pipeline"]["recall"]["quotas"].update(trending=5), "pipeline.recall"),
        (lambda m: m["pipeline"].update(colour="blue"), "pipeline.colour"),
        (lambda m: m.pop("files"), "files"),
        (lambda m: m.update(model_version="md5:abc"), "model_version"),
        (lambda m: m.update(created_at="yesterday"), "created_at"),
        (lambda m: m["dataset"].pop("n_items"), "dataset.n_items"),
        (lambda m: m["dataset"].update(n_users=-1), "dataset.n_users"),
        (lambda m: m.update(metrics=[1, 2]), "metrics"),
        (lambda m: m["files"][0].update(sha256="xyz"), "files[0].sha256"),
        (lambda m: m["files"][1].update(size="12"), "files[1].size"),
        (lambda m: m["files"][0].update(name="../escape"), "files[0].name"),
        (lambda m: m["files"][0].update(name="/abs"), "files[0].name"),
    ],
)
def test_malformed_manifest_field(tmp_path: Path, edit: Any, field: str) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    rewrite_manifest(out, edit)
    with pytest.raises(ArtifactError, match=re.escape(f"field '{field}'")):
        load_bundle(out)


def test_manifest_not_json(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        verify_bundle(out)


def test_model_version_must_match_files(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    rewrite_manifest(out, lambda m: m.update(model_version="sha256:" + "f" * 64))
    with pytest.raises(CorruptBundleError, match="model_version") as info:
        verify_bundle(out)
    assert info.value.file == MANIFEST


def test_exception_in_with_block_keeps_previous_bundle(tmp_path: Path) -> None:
    out = tmp_path / "b"
    old = write_tiny(out)

    def failing_training() -> None:
        with BundleWriter(out) as w:
            w.add_bytes("x.bin", b"new")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_training()
    assert verify_bundle(out) == old
    assert leftovers(tmp_path) == []


def test_exception_in_commit_keeps_previous_bundle(tmp_path: Path) -> None:
    out = tmp_path / "b"
    old = write_tiny(out)
    with BundleWriter(out) as w:
        w.add_bytes("x.bin", b"new")
        with pytest.raises(ArtifactError, match=r"dataset\.fingerprint"):
            w.commit(
                dataset={**DATASET, "fingerprint": None}, hyperparameters={}, metrics={}, pipeline=NO_RANKER
            )
    assert verify_bundle(out) == old
    assert leftovers(tmp_path) == []


def test_failed_rename_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "b"
    old = write_tiny(out)
    real_rename = os.rename

    def flaky_rename(src: Any, dst: Any) -> None:
        if ".staging-" in str(src):
            raise OSError("disk on fire")
        real_rename(src, dst)

    monkeypatch.setattr(writer_mod.os, "rename", flaky_rename)
    w = BundleWriter(out)
    w.add_bytes("x.bin", b"new")
    with pytest.raises(OSError, match="disk on fire"):
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    assert verify_bundle(out) == old
    assert leftovers(tmp_path) == []


def test_replace_existing_bundle(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    (out / "stray.txt").write_text("from the old bundle")
    new = write_tiny(out, emb_seed=5)
    b = load_bundle(out)
    assert b.manifest == new
    np.testing.assert_array_equal(
        b.item_embeddings, np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    )
    assert not (out / "stray.txt").exists()
    assert leftovers(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(ArtifactError, match="not a shoprec bundle"):
        write_tiny(out)
    assert (out / "thesis.tex").read_text() == "years of work"
    assert leftovers(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tiny(empty)
    verify_bundle(empty)


def test_writer_rejects_bad_names_and_reuse(tmp_path: Path) -> None:
    w = BundleWriter(tmp_path / "b")
    for bad in ["../x", "/abs", "a/../b", "a\\b", "", MANIFEST, "a//b"]:
        with pytest.raises(ArtifactError):
            w.path_for(bad)
    w.abort()
    assert leftovers(tmp_path) == []
    with pytest.raises(ArtifactError, match="aborted"):
        w.add_bytes("x", b"")
    write_tiny(tmp_path / "c")


def test_uncommitted_with_block_leaves_nothing(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b") as w:
        w.add_bytes("x", b"1")
    assert list(tmp_path.iterdir()) == []


def test_dataset_summary() -> None:
    ds = Dataset(
        name="toy",
        source="/dev/null",
        item_ids=["x", "y"],
        user_ids=["u"],
        sequences=[np.array([0, 1], dtype=np.int64)],
        fmt="test",
    )
    summary = dataset_summary(ds)
    assert summary == {
        "name": "toy",
        "fingerprint": ds.fingerprint(),
        "format": "test",
        "n_users": 1,
        "n_items": 2,
        "n_interactions": 2,
    }


def test_serving_imports_need_no_torch_or_scipy() -> None:
    code = (
        "import sys, shoprec.artifacts, shoprec.recall; "
        "bad = sorted(m for m in ('torch', 'scipy') if m in sys.modules); "
        "sys.exit(' '.join(bad) or None)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_add_file_copies(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00\x01payload")
    with BundleWriter(tmp_path / "b") as w:
        w.add_file("copied/src.bin", src)
        m = w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    assert (tmp_path / "b/copied/src.bin").read_bytes() == b"\x00\x01payload"
    assert [f.name for f in m.files] == ["copied/src.bin"]
    assert src.exists()


def test_inconsistent_shapes_name_the_file(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b") as w:
        w.add_json(ITEM_IDS, ITEMS)
        w.add_npy(POPULARITY, POP)
        w.add_npz(ITEMCF, {"indices": NB_IDX, "scores": NB_SC})
        w.add_npy(ITEM_EMBEDDINGS, np.zeros((2, 4), np.float32))
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    with pytest.raises(ArtifactError, match=re.escape(ITEM_EMBEDDINGS)):
        load_bundle(tmp_path / "b")


def test_bad_catalog_line_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)
    # A bundle written before the columnar catalogue: the rows are read at load.
    with BundleWriter(tmp_path / "c", columnar_catalog=False) as w:
        for f in verify_bundle(out).files:
            if not f.name.startswith("catalog/"):
                w.add_file(f.name, out / f.name)
        w.add_bytes(CATALOG, b'{"item_id": "a"}\nnot json\n')
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    with pytest.raises(ArtifactError, match=rf"{re.escape(CATALOG)}' line 2"):
        load_bundle(tmp_path / "c")
    # A bundle with columns is never written from bad rows: the writer refuses them.
    with BundleWriter(tmp_path / "d") as w:
        for f in verify_bundle(out).files:
            if not f.name.startswith("catalog/"):
                w.add_file(f.name, out / f.name)
        w.add_bytes(CATALOG, b'{"item_id": "a"}\nnot json\n')
        with pytest.raises(ArtifactError, match=rf"{re.escape(CATALOG)}' line 2"):
            w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=NO_RANKER)
    assert not (tmp_path / "d").exists()


def test_a_schema_1_bundle_is_served_as_it_was_the_ranker_after_the_recall_merge(tmp_path: Path) -> None:
    out = tmp_path / "b"
    write_tiny(out)

    def to_v1(m: dict[str, Any]) -> None:
        m.update(schema_version=1, extra={"ranker": {"file": RANKER_ONNX, "max_len": 7}})
        m.pop("pipeline")

    rewrite_manifest(out, to_v1)
    spec = load_bundle(out).pipeline
    assert spec.ranker == RankerSpec(max_len=7, int8_file=None)
    assert spec.fusion == FusionSpec(kind="ranker")
    assert spec.recall == PipelineSpec().recall
    rewrite_manifest(out, lambda m: m["extra"]["ranker"].update(max_len="seven"))
    with pytest.raises(ArtifactError, match=re.escape("field 'extra.ranker.max_len'")):
        load_bundle(out)


def _write_text_bundle(out: Path, vectors: np.ndarray, *, encoder: bool = True) -> None:
    spec = NO_RANKER.model_copy(update={"text": TextSpec(model="m", dim=4)})
    with BundleWriter(out) as w:
        w.add_json(ITEM_IDS, ITEMS)
        w.add_npy(POPULARITY, POP)
        w.add_npz(ITEMCF, {"indices": NB_IDX, "scores": NB_SC})
        w.add_npy(ITEM_EMBEDDINGS, np.zeros((3, 4), np.float32))
        w.add_npy(TEXT_EMBEDDINGS, vectors)
        w.add_bytes(TEXT_TOKENIZER, b"{}")
        if encoder:
            w.add_bytes(TEXT_ENCODER_ONNX, b"not really onnx")
        w.commit(dataset=DATASET, hyperparameters={}, metrics={}, pipeline=spec)


def test_text_embeddings_are_loaded_and_checked(tmp_path: Path) -> None:
    vectors = np.eye(3, 4, dtype=np.float32)
    _write_text_bundle(tmp_path / "ok", vectors)
    bundle = load_bundle(tmp_path / "ok")
    assert bundle.pipeline.text is not None
    assert bundle.text_embeddings is not None
    assert np.array_equal(bundle.text_embeddings, vectors)
    assert load_bundle(tmp_path / "ok").manifest.pipeline.text == TextSpec(model="m", dim=4)

    _write_text_bundle(tmp_path / "shape", np.zeros((3, 5), np.float32))
    with pytest.raises(
        ArtifactError, match=re.escape(f"'{TEXT_EMBEDDINGS}' has shape (3, 5), expected (3, 4)")
    ):
        load_bundle(tmp_path / "shape")
    _write_text_bundle(tmp_path / "no-encoder", vectors, encoder=False)
    with pytest.raises(ArtifactError, match=re.escape(f"required file '{TEXT_ENCODER_ONNX}'")):
        load_bundle(tmp_path / "no-encoder")


def test_a_bundle_without_text_has_no_text_embeddings(tmp_path: Path) -> None:
    write_tiny(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.pipeline.text is None
    assert bundle.text_embeddings is None
