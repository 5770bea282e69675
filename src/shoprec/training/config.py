"""Hyper-parameters of the Transformer ranker (no torch import: the CLI reads the defaults)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoprec.training.sasrec import SASRecConfig

LOSSES = ("auto", "full", "sampled")
"""``full``: softmax cross-entropy over every item; ``sampled``: sampled softmax with logQ correction;
``auto``: chosen by catalogue size (:func:`resolve_loss`)."""
DEVICES = ("auto", "cpu", "cuda")
"""``auto``: CUDA when torch sees a GPU, else the CPU; ``cuda`` fails rather than quietly train on the CPU."""
BATCHINGS = ("length", "random")
"""``random``: each batch is ``batch_size`` users drawn at random, as wide as its longest sequence;
``length``: users of similar length batched together, each batch holding about as many target positions as
a random one (:func:`shoprec.training.trainer.length_batches`)."""

SAMPLED_SOFTMAX_MIN_ITEMS = 15_000
"""Catalogue size from which ``loss="auto"`` trains with sampled softmax. Full softmax costs a matrix
product with every item at every position, so its epoch time grows linearly with the catalogue while the
sampled loss's stays flat (``bench/bench_epochs.py`` measures both). On Amazon Beauty (12k items, 16
epochs) 2,048 negatives drawn by popularity ** 0.5 cost 1.3 % of the validation NDCG@10 (0.0678 vs
0.0687) for epochs 1.6x faster; from 15k items up the speed is worth more than that, and a catalogue whose
full-softmax epochs would not fit the time budget trains its planned epochs instead of a cut schedule."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the Transformer ranker. The defaults are meant to work on any catalogue."""

    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    max_len: int = 50
    dropout: float = 0.3
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    batching: str = "length"
    """How users are grouped into batches (:data:`BATCHINGS`). Sequences are left-padded to the batch's
    longest, and in a random batch of Beauty users 87 % of the encoder's positions are padding; batching
    users of similar length removes most of it for the same steps, schedule and positions per step."""
    max_epochs: int = 16
    min_steps: int = 0
    """Plan at least enough epochs for this many optimiser steps (0: ``max_epochs`` exactly). A small
    dataset has few batches an epoch, and its Transformer is still improving at epoch 16 (Scientific:
    valid NDCG@10 0.0889 at 16 epochs, 0.0916 with ``min_steps=2000``); but the served list, which fuses
    the ranker with item-CF, did not gain from it (docs/training.md), so it is off by default."""
    patience: int = 5
    max_minutes: float = 12.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    seed: int = 42
    threads: int = 0  # 0: torch's default
    loss: str = "auto"
    negatives: int = 2048
    """Sampled softmax: item tokens drawn per training step, shared by every position of the batch."""
    negative_power: float = 0.5
    """Sampled softmax: negatives are drawn with probability ∝ count(item) ** negative_power over the
    training sequences; 0 draws uniformly."""
    device: str = "auto"

    def __post_init__(self) -> None:
        # Checked here and not where they are used, so that a typo fails before the data is even loaded
        # (or, in a SageMaker job, before the instance is paid for an hour).
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, got {self.batching!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")
        if not (math.isfinite(self.negative_power) and self.negative_power >= 0):
            raise ValueError(f"negative_power must be a finite number >= 0, got {self.negative_power}")

    def epochs_for(self, batches_per_epoch: int) -> int:
        """Epochs to plan for ``batches_per_epoch``: ``max_epochs``, or more to reach ``min_steps``."""
        return max(self.max_epochs, math.ceil(self.min_steps / max(batches_per_epoch, 1)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, n_items: int) -> SASRecConfig:
        from shoprec.training.sasrec import SASRecConfig

        return SASRecConfig(
            n_items=n_items,
            hidden=self.hidden,
            blocks=self.blocks,
            heads=self.heads,
            max_len=self.max_len,
            dropout=self.dropout,
        )


def resolve_loss(config: TrainConfig, n_items: int) -> str:
    """``full`` or ``sampled``: ``config.loss`` unless it is ``auto``, which picks sampled softmax for
    catalogues of at least :data:`SAMPLED_SOFTMAX_MIN_ITEMS` items."""
    if config.loss != "auto":
        return config.loss
    return "sampled" if n_items >= SAMPLED_SOFTMAX_MIN_ITEMS else "full"
