"""The inverted file's parts (shoprec.recall.ivf): k-means finds well separated groups, the assignment in
chunks agrees with the whole, lists are contiguous slices of the list-ordered vectors, the probe scans the
best-scoring lists with exact scores, and malformed files are refused naming the file and the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import shoprec.recall.ivf as ivf_module
from shoprec.recall.ivf import IvfIndex, assign, build_ivf, default_n_lists, kmeans, read_ivf, write_ivf


def blobs(per: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four tight groups far apart (4-d), and each row's group."""
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(4, dtype=np.float32)
    group = np.repeat(np.arange(4), per)
    return (centres[group] + 0.1 * rng.normal(size=(4 * per, 4))).astype(np.float32), group


def test_default_lists_grow_with_the_square_root() -> None:
    assert default_n_lists(1_000_000) == 4000
    assert default_n_lists(10_000) == 400
    assert default_n_lists(3) == 3  # never more lists than items
    assert default_n_lists(1) == 1


def test_kmeans_separates_groups_and_assign_agrees_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    data, group = blobs()
    centroids = kmeans(data, 4, seed=1)
    labels = assign(data, centroids)
    # Each group is one label and each label one group (whatever their numbering).
    assert len({(int(g), int(label)) for g, label in zip(group, labels, strict=True)}) == 4
    assert np.allclose(np.sort(centroids.max(axis=1)), 10.0, atol=0.1)
    monkeypatch.setattr(ivf_module, "_CHUNK_SCORES", 4)  # chunks of 1,024 rows: several for 3,000
    many = np.tile(data, (15, 1))
    assert np.array_equal(assign(many, centroids), np.tile(labels, 15))
    with pytest.raises(ValueError, match="n_lists must lie in"):
        kmeans(data, 201)


def test_lists_are_contiguous_slices_and_the_probe_scans_the_best() -> None:
    data, group = blobs()
    lists = build_ivf(data, 4, seed=0)
    assert lists.offsets.tolist() == [0, 50, 100, 150, 200]  # four lists of one group each
    assert sorted(lists.ids.tolist()) == list(range(200))
    for j in range(4):
        rows = slice(lists.offsets[j], lists.offsets[j + 1])
        assert np.array_equal(lists.vectors[rows], data[lists.ids[rows]])
        assert len(set(group[lists.ids[rows]].tolist())) == 1
        assert np.all(np.diff(lists.ids[rows]) > 0)  # by item index within a list
    index = IvfIndex(lists, nprobe=1)
    q = np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float32)
    keys, scores = index.scan(q)
    assert sorted(keys.tolist()) == list(range(100, 150))  # group 2: the one q points at
    assert np.allclose(scores, data[keys] @ q)
    keys, scores = index.scan(q, nprobe=4)  # every list, read as one run
    assert sorted(keys.tolist()) == list(range(200))
    assert np.allclose(scores, data[keys] @ q)
    with pytest.raises(ValueError, match="nprobe"):
        IvfIndex(lists, nprobe=0)


def test_written_lists_are_read_back_mapped_and_checked(tmp_path: Path) -> None:
    data, _ = blobs()
    lists = build_ivf(data, 4, seed=0)
    vec, lst = tmp_path / "v.npy", tmp_path / "v.lists.npz"
    write_ivf(lists, vec, lst)
    back = read_ivf(vec, lst)
    assert isinstance(back.vectors.base, np.memmap)
    for name in ("centroids", "offsets", "ids", "vectors"):
        assert np.array_equal(getattr(back, name), getattr(lists, name))
    bad = {"centroids": lists.centroids, "ids": lists.ids, "offsets": lists.offsets[::-1].copy()}
    np.savez(lst, **bad)
    with pytest.raises(ValueError, match=r"v\.lists\.npz: 'offsets' must rise from 0 to 200"):
        read_ivf(vec, lst)
    np.savez(lst, centroids=lists.centroids, ids=lists.ids)
    with pytest.raises(ValueError, match=r"v\.lists\.npz: lacks array 'offsets'"):
        read_ivf(vec, lst)
    write_ivf(lists, vec, lst)
    np.save(vec, data.astype(np.float64))
    with pytest.raises(ValueError, match=r"v\.npy: expected float32"):
        read_ivf(vec, lst)
