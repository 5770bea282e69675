"""The ANN index of the embedding and content channels (shoprec.recall.ann): the IVF index finds what exact
search finds (all of it when every list is scanned, at least 95 % of the top 100 on a clustered catalogue
with the default lists), filters and exclusions honoured and never shortening a list, exact search kept
below the size threshold, the index memory-mapped and refused when it belongs to another table, the spec
round-tripping through the bundle writer and reader, and bundles of the earlier usearch HNSW index still
served (where usearch is installed) or refused with an error that says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from tests.unit.fakes import FakeRanker, make_bundle

import shoprec.recall.ann as ann_module
from shoprec.artifacts import (
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    RANKER_ONNX,
    BundleWriter,
    load_bundle,
    verify_bundle,
)
from shoprec.artifacts.specs import ITEM_EMBEDDINGS_ANN, EmbeddingSpec, HnswIndexSpec, IvfIndexSpec
from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError
from shoprec.pipeline import build_pipeline
from shoprec.pipeline.core import Request
from shoprec.recall.ann import (
    AnnIndex,
    IvfAnnIndex,
    add_vector_indexes,
    augment,
    build_vector_index,
    lists_file_name,
    load_vector_index,
)
from shoprec.recall.channels import EmbeddingChannel, ExactDotProductIndex


def table(n: int = 300, d: int = 8, seed: int = 0) -> np.ndarray:
    """Vectors whose norms differ (0.5 to 3), as a trained item table's do."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (v * rng.uniform(0.5, 3.0, size=(n, 1))).astype(np.float32)


def clustered(n: int, d: int = 16, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Like the synthetic catalogue of the scale benchmarks, small: items around cluster centres with
    norms that vary, so that the true top 100 of a query are many near-equal items of its cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, clusters, size=n)
    v = centres[cluster] + rng.normal(size=(n, d)) * (0.6 / np.sqrt(d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (v * (1.0 + 0.25 * np.log1p(rng.pareto(1.0, size=n)))[:, None]).astype(np.float32)


def indexed(tmp_path: Path, vectors: np.ndarray, **kwargs: object) -> tuple[IvfIndexSpec, IvfAnnIndex]:
    spec = build_vector_index(vectors, tmp_path, "v.ivf.npy", min_items=0, **kwargs)  # type: ignore[arg-type]
    assert isinstance(spec, IvfIndexSpec)
    index = load_vector_index(tmp_path / spec.file, spec, vectors)
    assert isinstance(index, IvfAnnIndex)
    return spec, index


def test_augmented_rows_have_equal_norms_and_keep_inner_products() -> None:
    vectors = table(20)
    data, radius = augment(vectors)
    assert np.allclose(np.linalg.norm(data, axis=1), radius, atol=1e-4)
    q = np.arange(8, dtype=np.float32)
    assert np.allclose(data @ np.append(q, 0.0), vectors @ q, atol=1e-4)


def test_small_catalogues_keep_exact_search(tmp_path: Path) -> None:
    assert build_vector_index(table(50), tmp_path, "v.ivf.npy", min_items=100) is None
    assert list(tmp_path.iterdir()) == []


def test_scanning_every_list_is_exact_search_with_its_scores_and_ties(tmp_path: Path) -> None:
    vectors = table()
    vectors[123] *= 5.0 / np.linalg.norm(vectors[123])  # the longest row: its own best match
    vectors[[40, 7, 200]] = vectors[123]  # four equal rows: equal scores, ordered by index
    spec, ann = indexed(tmp_path, vectors, n_lists=10, nprobe=10)
    assert spec.n_lists == 10
    assert spec.nprobe == 10
    exact = ExactDotProductIndex(vectors)
    for q in [vectors[123], *np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)]:
        items, scores = ann.search(q, 20)
        want_items, want_scores = exact.search(q, 20)
        assert items.tolist() == want_items.tolist()
        assert np.allclose(scores, want_scores, atol=1e-5)
    assert ann.search(vectors[123], 4)[0].tolist() == [7, 40, 123, 200]


def test_recall_against_exact_on_a_clustered_catalogue(tmp_path: Path) -> None:
    vectors = clustered(20_000)
    spec, ann = indexed(tmp_path, vectors)  # the defaults: 4 sqrt(n) lists, 32 scanned
    assert spec.n_lists == round(4 * np.sqrt(20_000))
    exact = ExactDotProductIndex(vectors)
    rng = np.random.default_rng(7)
    recalls, few, scanned = [], [], []
    for item in rng.choice(vectors.shape[0], size=40, replace=False):
        q = vectors[item] + 0.1 * rng.normal(size=16).astype(np.float32)
        want = exact.search(q, 100)[0]
        recalls.append(np.intersect1d(ann.search(q, 100)[0], want).size / 100)
        scanned.append(ann.ivf.scan(q)[0].size)
        ann.ivf.nprobe = 4
        few.append(np.intersect1d(ann.search(q, 100)[0], want).size / 100)
        ann.ivf.nprobe = spec.nprobe
    assert np.mean(recalls) >= 0.95
    assert np.mean(scanned) < 0.1 * vectors.shape[0]  # reading a tenth of the table at most
    assert np.mean(few) < np.mean(recalls)  # it is approximate: fewer lists find less


def test_honours_exclusions_and_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = clustered(3_000)
    _, ann = indexed(tmp_path, vectors, n_lists=50, nprobe=50)  # every list: the answers are exact
    exact = ExactDotProductIndex(vectors)
    q = vectors[11]
    exclude = exact.search(q, 5)[0]
    items, _ = ann.search(q, 10, exclude)
    assert not set(items.tolist()) & set(exclude.tolist())
    assert items.tolist() == exact.search(q, 10, exclude)[0].tolist()
    allowed = np.zeros(vectors.shape[0], dtype=np.bool_)
    allowed[::7] = True
    want = exact.search(q, 10, exclude, allowed=allowed)[0].tolist()
    assert ann.search(q, 10, exclude, allowed=allowed)[0].tolist() == want  # small filter: exact subset
    monkeypatch.setattr(ann_module, "EXACT_SUBSET_MAX", 0)  # the same filter through the lists
    assert ann.search(q, 10, exclude, allowed=allowed)[0].tolist() == want


def test_a_filter_never_shortens_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = clustered(3_000)
    _, ann = indexed(tmp_path, vectors, n_lists=50, nprobe=1)
    q = vectors[0]
    allowed = np.zeros(vectors.shape[0], dtype=np.bool_)
    allowed[[3, 77, 150]] = True
    assert sorted(ann.search(q, 10, allowed=allowed)[0].tolist()) == [3, 77, 150]
    # Through the lists: a filter that removes every item of the lists scanned leaves no candidate,
    # and exact search answers instead.
    monkeypatch.setattr(ann_module, "EXACT_SUBSET_MAX", 0)
    scanned, _ = ann.ivf.scan(q, 2)  # the filter keeps ~96 % of the items: 2 lists are scanned
    allowed[:] = True
    allowed[scanned] = False
    fallbacks: list[int] = []
    search = ann.exact.search
    monkeypatch.setattr(ann.exact, "search", lambda *a, **k: fallbacks.append(1) or search(*a, **k))
    items, _ = ann.search(q, 10, allowed=allowed)
    assert fallbacks == [1]
    assert items.tolist() == ExactDotProductIndex(vectors).search(q, 10, allowed=allowed)[0].tolist()


def test_the_vectors_are_memory_mapped_and_the_build_is_deterministic(tmp_path: Path) -> None:
    vectors = clustered(2_000)
    spec, ann = indexed(tmp_path / "a", vectors, seed=3)
    assert isinstance(ann.ivf.lists.vectors.base, np.memmap)  # a view of the mapping, not a copy
    assert not ann.ivf.lists.vectors.flags.writeable
    indexed(tmp_path / "b", vectors, seed=3)
    for name in (spec.file, spec.lists_file):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    indexed(tmp_path / "c", vectors, seed=4)
    assert (tmp_path / "c" / spec.file).read_bytes() != (tmp_path / "a" / spec.file).read_bytes()


def test_refuses_an_index_of_another_table(tmp_path: Path) -> None:
    spec, _ = indexed(tmp_path, table(40), n_lists=4)
    with pytest.raises(ValueError, match="40 vectors"):
        load_vector_index(tmp_path / spec.file, spec, table(41))
    with pytest.raises(ValueError, match="not the table's"):
        load_vector_index(tmp_path / spec.file, spec, table(40, seed=1))


def test_refuses_broken_lists(tmp_path: Path) -> None:
    spec, _ = indexed(tmp_path, table(40), n_lists=4)
    lists = tmp_path / spec.lists_file
    with np.load(lists) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["ids"] = np.zeros_like(arrays["ids"])
    np.savez(lists, **arrays)
    with pytest.raises(ValueError, match="'ids' is not a permutation"):
        load_vector_index(tmp_path / spec.file, spec, table(40))
    lists.unlink()
    with pytest.raises(ValueError, match=r"lists file 'v\.ivf\.lists\.npz' is missing"):
        load_vector_index(tmp_path / spec.file, spec, table(40))


def test_the_spec_is_told_apart_by_kind_and_checked() -> None:
    ivf = {"kind": "ivf-flat", "file": "a.ivf.npy", "lists_file": "a.ivf.lists.npz", "n_items": 10}
    ivf |= {"dim": 4, "n_lists": 3, "nprobe": 2, "sample_per_list": 64, "iterations": 20}
    assert isinstance(EmbeddingSpec.model_validate({"ann": ivf}).ann, IvfIndexSpec)
    hnsw = {"kind": "usearch-hnsw", "file": "a.usearch", "n_items": 10, "dim": 4}
    assert isinstance(EmbeddingSpec.model_validate({"ann": hnsw}).ann, HnswIndexSpec)
    with pytest.raises(ValidationError, match="lists_file"):
        EmbeddingSpec.model_validate({"ann": ivf | {"lists_file": "other/a.lists.npz"}})
    with pytest.raises(ValidationError, match="n_lists"):
        EmbeddingSpec.model_validate({"ann": ivf | {"n_lists": 11}})
    with pytest.raises(ValidationError, match="ivf-flat"):
        EmbeddingSpec.model_validate({"ann": ivf | {"kind": "annoy"}})


def write_bundle(path: Path, *, kind: str = "ivf-flat") -> tuple[dict[str, object], Path]:
    tiny = make_bundle()
    with BundleWriter(path) as writer:
        writer.add_json(ITEM_IDS, tiny.item_ids)
        writer.add_npy(POPULARITY, tiny.popularity)
        writer.add_npz(ITEMCF, {"indices": tiny.itemcf_indices, "scores": tiny.itemcf_scores})
        writer.add_npy(ITEM_EMBEDDINGS, tiny.item_embeddings)
        writer.add_bytes(RANKER_ONNX, b"placeholder: ranked by FakeRanker\n")
        if kind == "ivf-flat":
            spec = add_vector_indexes(tiny.pipeline, writer, tiny.item_embeddings, min_items=0)
        else:
            ann = build_vector_index(
                tiny.item_embeddings, writer, "item_embeddings.usearch", kind="usearch-hnsw", min_items=0
            )
            spec = tiny.pipeline.model_copy(
                update={"embedding": tiny.pipeline.embedding.model_copy(update={"ann": ann})}
            )
        writer.commit(dataset=dict(tiny.manifest.dataset), hyperparameters={}, metrics={}, pipeline=spec)
    return spec.embedding.ann.model_dump(), path  # type: ignore[union-attr]


def test_the_pipeline_searches_the_bundles_index(tmp_path: Path) -> None:
    written, path = write_bundle(tmp_path / "b")
    assert written["file"] == ITEM_EMBEDDINGS_ANN
    assert written["lists_file"] == lists_file_name(ITEM_EMBEDDINGS_ANN)
    manifest = verify_bundle(path)  # both files are listed and checksummed
    assert {ITEM_EMBEDDINGS_ANN, lists_file_name(ITEM_EMBEDDINGS_ANN)} <= {f.name for f in manifest.files}
    bundle = load_bundle(path)
    assert bundle.pipeline.embedding.ann is not None
    assert bundle.pipeline.embedding.ann.model_dump() == written  # the spec round-trips
    pipeline = build_pipeline(bundle, CatalogIndex.from_bundle(bundle), FakeRanker())
    channel = next(c for c in pipeline.channels if isinstance(c, EmbeddingChannel))
    assert isinstance(channel.index, IvfAnnIndex)
    [result] = pipeline.recommend([Request(history=np.asarray([0, 1], dtype=np.int64), k=3)])
    assert len(result.items) == 3


def test_an_hnsw_bundle_is_served_with_usearch_and_refused_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("usearch")
    written, path = write_bundle(tmp_path / "b", kind="usearch-hnsw")
    assert written["kind"] == "usearch-hnsw"
    raw = json.loads((path / "manifest.json").read_text())
    assert raw["pipeline"]["embedding"]["ann"]["kind"] == "usearch-hnsw"
    bundle = load_bundle(path)
    pipeline = build_pipeline(bundle, CatalogIndex.from_bundle(bundle), FakeRanker())
    channel = next(c for c in pipeline.channels if isinstance(c, EmbeddingChannel))
    assert isinstance(channel.index, AnnIndex)
    assert not isinstance(channel.index, IvfAnnIndex)
    exact = ExactDotProductIndex(bundle.item_embeddings)
    q = bundle.item_embeddings[0]
    assert channel.index.search(q, 5)[0].tolist() == exact.search(q, 5)[0].tolist()
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # as in the Lambda layer: not installed
    with pytest.raises(ArtifactError, match=r"usearch HNSW graph .* usearch is not installed"):
        build_pipeline(bundle, CatalogIndex.from_bundle(bundle), FakeRanker())
