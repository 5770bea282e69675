"""The ANN index of the embedding and content channels (shoprec.recall.ann): same answers as exact search
on small tables, filters and exclusions honoured, exact search kept below the size threshold, and the
index found and used when a bundle carries one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.unit.fakes import FakeRanker, make_bundle

from shoprec.artifacts import (
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    RANKER_ONNX,
    BundleWriter,
    load_bundle,
)
from shoprec.artifacts.specs import ITEM_EMBEDDINGS_ANN
from shoprec.catalog import CatalogIndex
from shoprec.pipeline import build_pipeline
from shoprec.pipeline.core import Request
from shoprec.recall.ann import AnnIndex, add_vector_indexes, augment, build_vector_index, load_vector_index
from shoprec.recall.channels import EmbeddingChannel, ExactDotProductIndex

pytest.importorskip("usearch")


def table(n: int = 300, d: int = 8, seed: int = 0) -> np.ndarray:
    """Vectors whose norms differ (0.5 to 3), as a trained item table's do."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return (v * rng.uniform(0.5, 3.0, size=(n, 1))).astype(np.float32)


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[np.ndarray, AnnIndex]:
    vectors = table()
    # One thread: a deterministic graph (parallel inserts make it, and its rare misses, vary run to run).
    spec = build_vector_index(vectors, tmp_path, "v.usearch", min_items=0, dtype="f32", threads=1)
    assert spec is not None
    return vectors, load_vector_index(tmp_path / spec.file, spec, vectors)


def test_augmented_rows_have_equal_norms_and_keep_inner_products() -> None:
    vectors = table(20)
    data, radius = augment(vectors)
    assert np.allclose(np.linalg.norm(data, axis=1), radius, atol=1e-4)
    q = np.arange(8, dtype=np.float32)
    assert np.allclose(data @ np.append(q, 0.0), vectors @ q, atol=1e-4)


def test_small_catalogues_keep_exact_search(tmp_path: Path) -> None:
    assert build_vector_index(table(50), tmp_path, "v.usearch", min_items=100) is None
    assert not (tmp_path / "v.usearch").exists()


def test_finds_what_exact_search_finds_with_exact_scores(indexed: tuple[np.ndarray, AnnIndex]) -> None:
    vectors, ann = indexed
    exact = ExactDotProductIndex(vectors)
    for seed in range(5):
        q = np.random.default_rng(seed).normal(size=8).astype(np.float32)
        items, scores = ann.search(q, 20)
        want_items, want_scores = exact.search(q, 20)
        assert items.tolist() == want_items.tolist()
        assert np.allclose(scores, want_scores, atol=1e-5)


def test_honours_exclusions_and_filters(indexed: tuple[np.ndarray, AnnIndex]) -> None:
    vectors, ann = indexed
    exact = ExactDotProductIndex(vectors)
    q = np.ones(8, dtype=np.float32)
    exclude = exact.search(q, 5)[0]
    items, _ = ann.search(q, 10, exclude)
    assert not set(items.tolist()) & set(exclude.tolist())
    assert items.tolist() == exact.search(q, 10, exclude)[0].tolist()
    allowed = np.zeros(vectors.shape[0], dtype=np.bool_)
    allowed[::7] = True
    items, _ = ann.search(q, 10, exclude, allowed=allowed)
    assert items.tolist() == exact.search(q, 10, exclude, allowed=allowed)[0].tolist()


def test_a_filter_never_shortens_the_list(indexed: tuple[np.ndarray, AnnIndex]) -> None:
    vectors, ann = indexed
    allowed = np.zeros(vectors.shape[0], dtype=np.bool_)
    allowed[[3, 77, 150]] = True
    items, _ = ann.search(np.ones(8, dtype=np.float32), 10, allowed=allowed)
    assert sorted(items.tolist()) == [3, 77, 150]


def test_refuses_an_index_of_another_table(tmp_path: Path) -> None:
    spec = build_vector_index(table(40), tmp_path, "v.usearch", min_items=0)
    assert spec is not None
    with pytest.raises(ValueError, match="40 vectors"):
        load_vector_index(tmp_path / spec.file, spec, table(41))


def test_the_pipeline_searches_the_bundles_index(tmp_path: Path) -> None:
    tiny = make_bundle()
    with BundleWriter(tmp_path / "b") as writer:
        writer.add_json(ITEM_IDS, tiny.item_ids)
        writer.add_npy(POPULARITY, tiny.popularity)
        writer.add_npz(ITEMCF, {"indices": tiny.itemcf_indices, "scores": tiny.itemcf_scores})
        writer.add_npy(ITEM_EMBEDDINGS, tiny.item_embeddings)
        writer.add_bytes(RANKER_ONNX, b"placeholder: ranked by FakeRanker\n")
        spec = add_vector_indexes(tiny.pipeline, writer, tiny.item_embeddings, min_items=0)
        assert spec.embedding.ann is not None
        assert spec.embedding.ann.file == ITEM_EMBEDDINGS_ANN
        writer.commit(dataset=dict(tiny.manifest.dataset), hyperparameters={}, metrics={}, pipeline=spec)
    bundle = load_bundle(tmp_path / "b")
    pipeline = build_pipeline(bundle, CatalogIndex.from_bundle(bundle), FakeRanker())
    channel = next(c for c in pipeline.channels if isinstance(c, EmbeddingChannel))
    assert isinstance(channel.index, AnnIndex)
    [result] = pipeline.recommend([Request(history=np.asarray([0, 1], dtype=np.int64), k=3)])
    assert len(result.items) == 3
