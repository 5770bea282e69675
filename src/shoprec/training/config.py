"""Hyper-parameters of the Transformer ranker (no torch import: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoprec.training.sasrec import SASRecConfig


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
    max_epochs: int = 200
    patience: int = 5
    max_minutes: float = 12.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    seed: int = 42
    threads: int = 0  # 0: torch's default

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
