"""The BM25 index prebuilt into a real Scientific bundle: listed and checksummed like every bundle file,
loaded memory-mapped at serving with the same scores as an index built in process (the dev set's queries),
and built in process for bundles without one (or with one from another analyzer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shoprec.artifacts import MANIFEST, load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.cli.search_eval import read_queries
from shoprec.errors import ArtifactError, CorruptBundleError
from shoprec.search.bm25 import ANALYZER, Bm25Search
from shoprec.search.build import build_search, lexical_search

QUERIES = Path(__file__).resolve().parents[2] / "bench" / "search" / "queries.tsv"


@pytest.fixture(scope="module")
def indexed_dir(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> Path:
    pytest.importorskip("torch", reason="building the test bundle needs the train extra")
    from tests.integration.bundle_factory import build_bundle

    out = tmp_path_factory.mktemp("indexed") / "scientific"
    build_bundle(out, dataset_dir=scientific_dir, search_index=True)
    return out


def _copy_with_pipeline_search(src: Path, dst: Path, search: dict[str, object] | None) -> Path:
    """A copy of the bundle whose manifest's ``pipeline.search`` is ``search`` (the manifest is not part
    of the content hash, so the copy still verifies)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST).read_text(encoding="utf-8"))
    manifest["pipeline"]["search"] = search
    (dst / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return dst


def _assert_same_scores(got: Bm25Search, want: Bm25Search) -> None:
    for query in read_queries(QUERIES):
        np.testing.assert_array_equal(got.scores(query.text), want.scores(query.text), err_msg=query.text)
        assert got.correct(query.text) == want.correct(query.text)


def test_the_index_is_listed_in_the_manifest_with_checksums(indexed_dir: Path) -> None:
    bundle = load_bundle(indexed_dir)
    spec = bundle.pipeline.search
    assert spec is not None
    assert spec.analyzer == ANALYZER
    assert spec.n_items == bundle.n_items
    assert set(spec.fields) == {"title", "brand", "categories"}  # the factory's catalogue has no descriptions
    for name in spec.files():
        entry = bundle.manifest.entry(name)
        assert entry is not None
        assert entry.size == (indexed_dir / name).stat().st_size


def test_the_prebuilt_index_scores_as_one_built_in_process(indexed_dir: Path) -> None:
    bundle = load_bundle(indexed_dir)
    catalog = CatalogIndex.from_bundle(bundle)
    served = build_search(bundle, catalog, semantic=False)
    assert isinstance(served, Bm25Search)
    title_index = served._fields["title"][0]
    assert isinstance(title_index.scores["data"], np.memmap)  # loaded, not rebuilt
    _assert_same_scores(served, Bm25Search.build(catalog))


def test_a_bundle_without_an_index_or_from_another_analyzer_builds_one(
    indexed_dir: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(indexed_dir)
    built = Bm25Search.build(CatalogIndex.from_bundle(bundle))
    assert bundle.pipeline.search is not None
    other = bundle.pipeline.search.model_dump(mode="json") | {"analyzer": "shoprec-bm25/0"}
    for name, search in (("old", None), ("other", other)):
        copy = load_bundle(_copy_with_pipeline_search(indexed_dir, tmp_path / name, search))
        lexical = lexical_search(copy, CatalogIndex.from_bundle(copy))
        assert not isinstance(lexical._fields["title"][0].scores["data"], np.memmap)
        _assert_same_scores(lexical, built)


def test_a_tampered_index_file_is_refused_at_load(indexed_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(indexed_dir, copy)
    with (copy / "search" / "title" / "data.csc.index.npy").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")
    with pytest.raises(CorruptBundleError, match=r"search/title/data\.csc\.index\.npy"):
        load_bundle(copy)


def test_a_bundle_listing_an_index_without_its_files_is_refused(indexed_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "missing"
    shutil.copytree(indexed_dir, copy)
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"] = [f for f in manifest["files"] if f["name"] != "search/spelling.json"]
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"search/spelling\.json"):
        load_bundle(copy, verify=False)
