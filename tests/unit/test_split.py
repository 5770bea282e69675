"""Unit tests of the leave-one-out split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoprec.data import Dataset, Split, leave_one_out


def dataset(*seqs: list[int]) -> Dataset:
    n_items = max((max(s) for s in seqs if s), default=-1) + 1
    return Dataset(
        name="t",
        source="/t",
        item_ids=[str(i) for i in range(n_items)],
        user_ids=[str(u) for u in range(len(seqs))],
        sequences=[np.asarray(s, dtype=np.int64) for s in seqs],
    )


def as_lists(arrays: list[np.ndarray]) -> list[list[int]]:
    return [a.tolist() for a in arrays]


def test_leave_one_out_holds_out_last_two_items_per_user() -> None:
    split = leave_one_out(dataset([0, 1, 2, 3], [4, 5, 6]))
    assert isinstance(split, Split)
    assert as_lists(split.train) == [[0, 1], [4]]
    assert split.valid_users.tolist() == [0, 1]
    assert split.valid_targets.tolist() == [2, 5]
    assert split.test_users.tolist() == [0, 1]
    assert split.test_targets.tolist() == [3, 6]
    assert as_lists(split.valid_histories()) == [[0, 1], [4]]
    assert as_lists(split.test_histories()) == [[0, 1, 2], [4, 5]]
    assert all(a.dtype == np.int64 for a in (split.valid_users, split.valid_targets, split.test_targets))


def test_users_with_fewer_than_three_items_train_only_and_are_not_evaluated() -> None:
    split = leave_one_out(dataset([0], [1, 2], [3, 4, 5], []))
    assert as_lists(split.train) == [[0], [1, 2], [3], []]
    assert split.valid_users.tolist() == [2]
    assert split.test_users.tolist() == [2]
    assert (split.valid_targets.tolist(), split.test_targets.tolist()) == ([4], [5])


def test_train_with_valid_adds_the_validation_item() -> None:
    split = leave_one_out(dataset([0, 1, 2, 3], [4, 5]))
    assert as_lists(split.train_with_valid()) == [[0, 1, 2], [4, 5]]


def test_split_arrays_are_read_only_and_leave_the_dataset_writable() -> None:
    ds = dataset([0, 1, 2, 3])
    split = leave_one_out(ds)
    with pytest.raises(ValueError, match="read-only"):
        split.train[0][0] = 9
    with pytest.raises(ValueError, match="read-only"):
        split.test_histories()[0][0] = 9
    ds.sequences[0][0] = 3  # the dataset's own arrays are untouched by the split
    assert split.train[0].tolist() == [3, 1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 20), max_size=8), min_size=1, max_size=12))
def test_every_interaction_is_in_exactly_one_part(seqs: list[list[int]]) -> None:
    split = leave_one_out(dataset(*seqs))
    evaluated = [u for u, s in enumerate(seqs) if len(s) >= 3]
    assert split.test_users.tolist() == evaluated
    assert split.n_train_interactions + 2 * len(evaluated) == sum(len(s) for s in seqs)
    for u, history, target in zip(split.test_users, split.test_histories(), split.test_targets, strict=True):
        assert [*history.tolist(), int(target)] == seqs[u]
    for u, history, target in zip(
        split.valid_users, split.valid_histories(), split.valid_targets, strict=True
    ):
        assert [*history.tolist(), int(target)] == seqs[u][:-1]
