"""How item sequences are fed to the ranker: tokens = internal item index + 1, left-padded with 0."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

PAD = 0


def left_pad(seqs: Sequence[npt.NDArray[np.int64]], max_len: int) -> npt.NDArray[np.int64]:
    """Token matrix [len(seqs), max_len] holding the last ``max_len`` items of each sequence."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        tail = np.asarray(s[-max_len:], dtype=np.int64)
        if len(tail):
            out[i, max_len - len(tail) :] = tail + 1
    return out
