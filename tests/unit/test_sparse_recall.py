"""The per-request recall works on the candidates only (item-CF's neighbours of the recent items, the head
of the popularity order, masks over candidates): these tests compare it, bit for bit, with the dense
computations over every item that it replaced, on small hand-made and random tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.artifacts.reader import npz_member
from shoprec.catalog import CatalogIndex
from shoprec.recall.channels import (
    ExactDotProductIndex,
    ItemCFChannel,
    PopularityChannel,
    RecallContext,
    top_n,
)
from shoprec.recall.itemcf import ItemCFNeighbours, fit_itemcf
from shoprec.recall.online import OnlineItemCF

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def random_table(rng: np.random.Generator, n: int, k: int) -> ItemCFNeighbours:
    """A neighbour table with -1 padding, repeated scores (ties) and some zero scores."""
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    for i in range(n):
        m = int(rng.integers(0, k + 1))
        nb = rng.choice(n, size=min(m, n), replace=False)
        vals = np.sort(rng.choice([0.125, 0.25, 0.5, 0.3, 0.7, 1.0], size=nb.size))[::-1]
        indices[i, : nb.size] = nb
        scores[i, : nb.size] = vals
    return ItemCFNeighbours(indices=indices, scores=scores)


def catalog_of(n: int) -> CatalogIndex:
    return CatalogIndex.build([f"i{j:03d}" for j in range(n)], {})


class FakeOnline(OnlineItemCF):
    """OnlineItemCF whose live lists are given (its dense ``scores`` is the real code over them)."""

    def __init__(self, lists: dict[int, tuple[I64, F32]]) -> None:
        self.lists = lists

    def rows(self, items: I64) -> list[tuple[I64, F32]]:
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        return [self.lists.get(a, empty) for a in items.tolist()]


def dense_recall(channel: ItemCFChannel, context: RecallContext, n: int) -> tuple[I64, F32]:
    """The item-CF recall as it was: a dense row over every item, a mask over every item, top_n."""
    recent = context.recent
    scores = channel.itemcf.score_histories(
        [recent], channel.catalog.n_items, max_history=channel.max_history, decay=channel.decay
    )[0]
    if channel.online is not None:
        extra = channel.online.scores(
            recent, channel.catalog.n_items, max_history=channel.max_history, decay=channel.decay
        )
        if extra is not None:
            scores += extra
    positive = scores > 0
    mask = context.allowed_mask(scores.size)
    idx = top_n(scores, n, positive if mask is None else positive & mask)
    return idx, scores[idx]


def live_lists(rng: np.random.Generator, n: int) -> dict[int, tuple[I64, F32]]:
    lists = {}
    for a in rng.choice(n, size=n // 3, replace=False).tolist():
        idx = rng.choice(n, size=int(rng.integers(1, 4)), replace=False).astype(np.int64)
        lists[a] = (idx, rng.choice([0.2, 0.5, 1.0], size=idx.size).astype(np.float32))
    return lists


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    k=st.integers(1, 6),
    length=st.integers(1, 30),
    max_history=st.integers(1, 25),
    decay=st.sampled_from([0.7, 1.0, 0.5, 0.93]),
    quota=st.integers(1, 50),
    with_online=st.booleans(),
    with_filter=st.booleans(),
)
def test_item_cf_recall_and_signals_equal_the_dense_path(
    seed: int,
    n: int,
    k: int,
    length: int,
    max_history: int,
    decay: float,
    quota: int,
    with_online: bool,
    with_filter: bool,
) -> None:
    rng = np.random.default_rng(seed)
    table = random_table(rng, n, k)
    online = FakeOnline(live_lists(rng, n)) if with_online else None
    channel = ItemCFChannel(table, catalog_of(n), max_history=max_history, decay=decay, online=online)
    recent = rng.integers(0, n, size=length).astype(np.int64)  # repeats included
    allowed = rng.random(n) < 0.7 if with_filter else None
    context = RecallContext(
        recent=recent, allowed=allowed, exclude=recent[: int(rng.integers(0, length + 1))]
    )

    got = channel.recall(context, quota)
    want_items, want_scores = dense_recall(channel, context, quota)
    assert got.items.tolist() == want_items.tolist()
    assert got.scores.dtype == np.float32
    assert got.scores.tobytes() == want_scores.tobytes()  # the very same float32 values

    dense = channel.itemcf.score_histories([recent], n, max_history=max_history, decay=decay)[0]
    if (
        online is not None
        and (extra := online.scores(recent, n, max_history=max_history, decay=decay)) is not None
    ):
        dense += extra
    probe = rng.integers(0, n, size=12).astype(np.int64)
    assert channel.signal(context, probe).tobytes() == dense[probe].tobytes()
    assert channel.scores(recent).tobytes() == dense.tobytes()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), length=st.integers(0, 25))
def test_score_history_is_the_dense_row_sparse(seed: int, n: int, length: int) -> None:
    rng = np.random.default_rng(seed)
    table = random_table(rng, n, 4)
    history = rng.integers(-1, n, size=length)  # -1: padding, dropped before ages are counted
    for max_history, decay in ((20, 0.7), (3, 0.9), (1, 1.0)):
        items, scores = table.score_history(history, max_history=max_history, decay=decay)
        dense = table.score_histories([history], max_history=max_history, decay=decay)[0]
        assert items.tolist() == sorted(set(items.tolist()))
        assert np.all(dense[np.setdiff1d(np.arange(n), items)] == 0)
        assert scores.tobytes() == dense[items].tobytes()


def test_score_history_on_a_fitted_table() -> None:
    seqs = [np.array(s) for s in ([0, 1, 2, 3], [1, 2, 4], [4, 0, 1], [2, 3, 4, 0, 1], [3, 3, 1])]
    table = fit_itemcf(seqs, 5, k=3)
    items, scores = table.score_history(np.array([0, 1, 1, 3]))
    dense = table.score_histories([np.array([0, 1, 1, 3])])[0]
    assert items.tolist() == np.flatnonzero(dense).tolist()
    assert scores.tobytes() == dense[items].tobytes()
    with pytest.raises(ValueError, match="out of range"):
        table.score_history(np.array([5]))
    with pytest.raises(ValueError, match="max_history"):
        table.score_history(np.array([1]), max_history=0)


def test_proximity_and_attribution_equal_the_column_arrays_over_every_item() -> None:
    rng = np.random.default_rng(3)
    n = 30
    table = random_table(rng, n, 5)
    online = FakeOnline(live_lists(rng, n))
    channel = ItemCFChannel(table, catalog_of(n), online=online)
    for _ in range(50):
        recent = rng.integers(0, n, size=int(rng.integers(1, 10))).astype(np.int64)
        items = rng.choice(n, size=int(rng.integers(1, 12)), replace=False).astype(np.int64)
        last, age = channel.proximity(recent, items)
        # the reference: what proximity computed with a column array over every item
        hist = recent[-channel.max_history :][::-1]
        nb_idx = table.indices[hist].astype(np.int64)
        column = np.full(n, -1, dtype=np.int64)
        column[items] = np.arange(items.size)
        cols = np.where(nb_idx >= 0, column[np.maximum(nb_idx, 0)], -1)
        hit = cols >= 0
        want_last = np.zeros(items.size, dtype=np.float32)
        want_last[cols[0][hit[0]]] = table.scores[hist[0]][hit[0]]
        want_age = np.full(items.size, float(channel.max_history), dtype=np.float32)
        ages = np.broadcast_to(np.arange(hist.size, dtype=np.float32)[:, None], cols.shape)
        np.minimum.at(want_age, cols[hit], ages[hit])
        assert last.tobytes() == want_last.tobytes()
        assert age.tobytes() == want_age.tobytes()
        # attribution: every recent item's contribution, the largest wins (ties: the most recent)
        source = channel.attribute(recent, items)
        contrib: dict[int, dict[int, float]] = {}
        for a, h in enumerate(hist.tolist()):
            w = channel.decay**a
            row = contrib.setdefault(h, {})
            for j, s in zip(table.indices[h].tolist(), table.scores[h].tolist(), strict=True):
                if j >= 0:
                    row[j] = row.get(j, 0.0) + w * s
            live_idx, extra = online.rows(np.array([h]))[0]
            for j, e in zip(live_idx.tolist(), extra.tolist(), strict=True):
                row[j] = row.get(j, 0.0) + w * e
        order = list(dict.fromkeys(hist.tolist()))
        for item, got in zip(items.tolist(), source.tolist(), strict=True):
            values = [contrib[h].get(item, 0.0) for h in order]
            assert got == order[int(np.argmax(values))]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    quota=st.integers(1, 120),
    filtered=st.booleans(),
    selective=st.booleans(),
)
def test_popularity_recall_reads_the_head_of_the_order(
    seed: int, n: int, quota: int, filtered: bool, selective: bool
) -> None:
    rng = np.random.default_rng(seed)
    pop = rng.integers(0, 6, size=n).astype(np.float32)  # many ties
    channel = PopularityChannel(pop, catalog_of(n))
    allowed = rng.random(n) < (0.02 if selective else 0.6) if filtered else None
    exclude = rng.integers(0, n, size=int(rng.integers(0, 20))).astype(np.int64)
    context = RecallContext(allowed=allowed, exclude=exclude)
    got = channel.recall(context, quota)
    order = np.lexsort((np.arange(n), -pop))
    mask = context.allowed_mask(n)
    want = (order if mask is None else order[mask[order]])[:quota]
    assert got.items.tolist() == want.tolist()
    assert got.scores.tobytes() == pop[want].tobytes()


def test_popularity_reasons_are_made_when_read() -> None:
    catalog = CatalogIndex.build(["a", "b"], {"a": {"categories": ["Tools", "Calipers"]}})
    channel = PopularityChannel(np.array([1.0, 2.0], np.float32), catalog)
    assert len(channel.reason_of) == 2
    assert list(channel.reason_of) == ["popular in Calipers", "popular now"]
    assert channel.reason_of[-1] == "popular now"
    assert channel.reason_of[:1] == ["popular in Calipers"]
    with pytest.raises(IndexError):
        channel.reason_of[2]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), quota=st.integers(0, 70))
def test_exact_search_excludes_without_a_mask_over_every_item(seed: int, n: int, quota: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=n).astype(np.float32)
    exclude = rng.integers(0, n, size=int(rng.integers(1, 10))).astype(np.int64)
    got, got_scores = ExactDotProductIndex.top(scores, quota, exclude)
    mask = np.ones(n, dtype=np.bool_)
    mask[exclude] = False
    want = top_n(scores, quota, mask)
    assert got.tolist() == want.tolist()
    assert got_scores.tobytes() == scores[want].tobytes()
    assert top_n(scores, quota).tolist() == sorted(range(n), key=lambda i: (-scores[i], i))[:quota]


def test_a_mapped_table_is_checked_where_it_is_read(tmp_path: Path) -> None:
    indices = np.array([[1, -1], [0, 7], [0, 1]], dtype=np.int32)  # row 1 points past the table
    scores = np.array([[0.5, 0.0], [0.5, 0.25], [0.2, 0.1]], dtype=np.float32)
    path = tmp_path / "itemcf.npz"
    np.savez(path, indices=indices, scores=scores)
    mapped: dict[str, Any] = {key: npz_member(path, key) for key in ("indices", "scores")}
    with pytest.raises(ValueError, match="must lie in"):
        ItemCFNeighbours(indices=indices, scores=scores)  # in memory: checked whole, at once
    table = ItemCFNeighbours(indices=mapped["indices"], scores=mapped["scores"])  # mapped: not scanned
    assert table.similar(0)[0].tolist() == [1]
    assert table.score_history(np.array([2]))[0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="must lie in"):
        table.similar(1)
    with pytest.raises(ValueError, match="must lie in"):
        table.score_history(np.array([0, 1]))
    with pytest.raises(ValueError, match="must lie in"):
        table.score_histories([np.array([1])])
