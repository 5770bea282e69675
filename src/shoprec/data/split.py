"""Leave-one-out split of per-user chronological sequences (the protocol of SASRec, BERT4Rec, S3-Rec).

For a user with items ``s = [i1, ..., in]`` (``n >= 3``):

* training data is ``s[:-2]``;
* the validation target is ``s[-2]``, predicted from the history ``s[:-2]``;
* the test target is ``s[-1]``, predicted from the history ``s[:-1]``.

Users with fewer than 3 interactions give all their items to training and are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shoprec.data.model import Dataset, IntArray

__all__ = ["MIN_EVAL_LENGTH", "Split", "leave_one_out"]

MIN_EVAL_LENGTH = 3
"""Users with fewer interactions than this are used for training only."""


def _frozen(array: IntArray) -> IntArray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Split:
    """A leave-one-out split. Indices in ``*_users`` are positions in ``Dataset.user_ids`` /
    ``Dataset.sequences``; targets and histories are internal item indices.

    The per-user arrays (``train``, histories) are read-only views of the dataset's sequences.
    """

    train: list[IntArray]
    """Per user (aligned with ``Dataset.user_ids``): ``seq[:-2]``, or the whole sequence for users
    with fewer than 3 interactions."""
    valid_users: IntArray
    valid_targets: IntArray
    test_users: IntArray
    test_targets: IntArray
    sequences: list[IntArray] = field(repr=False)
    """The full per-user sequences the split was made from."""

    @property
    def n_train_interactions(self) -> int:
        """Number of items in ``train`` over all users."""
        return int(sum(len(s) for s in self.train))

    def valid_histories(self) -> list[IntArray]:
        """Histories of the validation users (``seq[:-2]``), aligned with ``valid_users``."""
        return [self.train[int(u)] for u in self.valid_users]

    def test_histories(self) -> list[IntArray]:
        """Histories of the test users (``seq[:-1]``, the validation item included), aligned with
        ``test_users``."""
        return [_frozen(self.sequences[int(u)][:-1]) for u in self.test_users]

    def train_with_valid(self) -> list[IntArray]:
        """Per user ``seq[:-1]``: the training data plus the validation item, for fitting a final
        model once hyper-parameters are chosen. Users with fewer than 3 interactions keep all items."""
        return [_frozen(seq[:-1]) if len(seq) >= MIN_EVAL_LENGTH else _frozen(seq) for seq in self.sequences]


def leave_one_out(dataset: Dataset) -> Split:
    """Split every user's sequence into training items, a validation target and a test target.

    Users with at least 3 interactions appear in both ``valid_users`` and ``test_users`` (in user
    order); users with fewer give all their items to training and are not evaluated.
    """
    sequences = list(dataset.sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    evaluated = np.flatnonzero(lengths >= MIN_EVAL_LENGTH).astype(np.int64)
    train = [
        _frozen(seq[:-2]) if len(seq) >= MIN_EVAL_LENGTH else _frozen(np.asarray(seq, dtype=np.int64))
        for seq in sequences
    ]
    valid_targets = np.fromiter((sequences[u][-2] for u in evaluated), dtype=np.int64, count=len(evaluated))
    test_targets = np.fromiter((sequences[u][-1] for u in evaluated), dtype=np.int64, count=len(evaluated))
    return Split(
        train=train,
        valid_users=evaluated,
        valid_targets=valid_targets,
        test_users=evaluated.copy(),
        test_targets=test_targets,
        sequences=sequences,
    )
