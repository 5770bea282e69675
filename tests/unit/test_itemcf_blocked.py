"""``fit_itemcf_blocked``: fit_itemcf's neighbour table, fitted one block of items at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprec.data import leave_one_out, load_dataset
from shoprec.recall import itemcf_blocked
from shoprec.recall.itemcf import fit_itemcf
from shoprec.recall.itemcf_blocked import _block_bounds, fit_itemcf_blocked


def random_sequences(seed: int, n_users: int, n_items: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.3, size=10_000) % n_items  # repeats and popular items: ties and shared pairs
    return [rng.choice(popular, size=int(rng.integers(1, 30))) for _ in range(n_users)]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"k": 3, "window": 2},
        {"alpha": 0.5, "backward_weight": 0.0, "distance_power": 1.0},
        {"alpha": 1.0, "backward_weight": 1.0, "k": 1},
        {"alpha": 0.0, "window": 1, "k": 500},
    ],
)
@pytest.mark.parametrize(("max_block_pairs", "chunk"), [(1, 8_000_000), (50, 5_000), (1_000, 60), (10**9, 3)])
def test_the_blocks_give_fit_itemcfs_table(
    params: dict[str, float], max_block_pairs: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(itemcf_blocked, "_POSITIONS_PER_CHUNK", chunk)
    seqs = random_sequences(7, 300, 120)
    expected = fit_itemcf(seqs, 130, **params)  # type: ignore[arg-type]
    got = fit_itemcf_blocked(seqs, 130, max_block_pairs=max_block_pairs, **params)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_the_table_of_amazon_scientific_is_fit_itemcfs(scientific_dir: Path) -> None:
    ds = load_dataset(scientific_dir)
    train = leave_one_out(ds).train_with_valid()
    expected = fit_itemcf(train, ds.n_items)
    got = fit_itemcf_blocked(train, ds.n_items, max_block_pairs=20_000)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_blocks_hold_at_most_the_budget_unless_one_row_is_larger() -> None:
    assert _block_bounds(np.array([3, 3, 3, 3]), 6) == [0, 2, 4]
    assert _block_bounds(np.array([3, 9, 1, 1]), 6) == [0, 1, 2, 4]
    assert _block_bounds(np.array([0, 0, 0]), 1) == [0, 3]
    assert _block_bounds(np.zeros(0, dtype=np.int64), 5) == [0, 0]


def test_empty_and_degenerate_inputs() -> None:
    empty = fit_itemcf_blocked([], 4, k=2)
    assert empty.indices.tolist() == [[-1, -1]] * 4
    none = fit_itemcf_blocked([], 0)
    assert none.indices.shape == (0, 100)
    single = fit_itemcf_blocked([np.array([1]), np.array([2, 2])], 3, k=2)
    np.testing.assert_array_equal(
        single.indices, fit_itemcf([np.array([1]), np.array([2, 2])], 3, k=2).indices
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be >= 1"),
        ({"window": 0}, "window must be >= 1"),
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\]"),
        ({"backward_weight": -1.0}, "backward_weight must be >= 0"),
        ({"max_block_pairs": 0}, "max_block_pairs must be >= 1"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_itemcf_blocked([np.array([0, 1])], 2, **kwargs)  # type: ignore[arg-type]


def test_items_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"training items must lie in \[0, 2\)"):
        fit_itemcf_blocked([np.array([0, 2])], 2)
