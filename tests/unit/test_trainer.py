"""Training loop: it learns, keeps the best epoch, stops early, and resumes from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shoprec.training.config import TrainConfig  # noqa: E402
from shoprec.training.sasrec import SASRec  # noqa: E402
from shoprec.training.trainer import train_sasrec, training_windows  # noqa: E402

pytestmark = pytest.mark.train

# Ten users who all walk the same chain 0 → 1 → 2 → ... : next-item prediction is learnable.
CHAIN = [np.arange(i % 3, i % 3 + 6, dtype=np.int64) for i in range(10)]
TINY = TrainConfig(
    hidden=16, blocks=1, heads=1, max_len=6, dropout=0.0, lr=0.01, batch_size=4, seed=1, warmup_steps=3
)


def test_training_windows_shift_targets_by_one_and_left_pad() -> None:
    inputs, targets = training_windows([np.array([4, 5, 6]), np.array([7])], max_len=4)
    # Tokens are item index + 1; the one-item user has no (input, target) pair and is dropped.
    assert inputs.tolist() == [[0, 0, 5, 6]]
    assert targets.tolist() == [[0, 0, 6, 7]]


def _next_item_accuracy(model: SASRec) -> float:
    seqs = torch.tensor([[0, 0, 0, 1, 2, 3]])  # items 0, 1, 2 → next is item 3
    with torch.no_grad():
        return float(model.score_all(seqs).argmax(-1).item() == 3)


def test_training_learns_a_deterministic_chain_and_logs_every_epoch() -> None:
    validations: list[float] = []

    def validate(model: SASRec) -> float:
        validations.append(_next_item_accuracy(model))
        return validations[-1]

    result = train_sasrec(CHAIN, 10, TINY.__class__(**{**TINY.to_dict(), "max_epochs": 30}), validate)
    assert _next_item_accuracy(result.model) == 1.0
    assert len(result.epochs) == len(validations)
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.best_valid_ndcg10 == 1.0


def test_stops_after_patience_epochs_without_gain_and_restores_best_weights() -> None:
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    snapshots: list[torch.Tensor] = []

    def validate(model: SASRec) -> float:
        snapshots.append(model.item_emb.weight.detach().clone())
        return next(scores)

    cfg = TrainConfig(**{**TINY.to_dict(), "patience": 3, "max_epochs": 10})
    result = train_sasrec(CHAIN, 10, cfg, validate)
    assert [e.epoch for e in result.epochs] == [1, 2, 3, 4, 5]
    assert result.best_epoch == 2
    assert result.stopped_by.startswith("no validation gain")
    assert torch.equal(result.model.item_emb.weight, snapshots[1])


def test_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "patience": 10})
    first = train_sasrec(CHAIN, 10, cfg, lambda m: 0.0, checkpoint_dir=tmp_path)
    assert (tmp_path / "last.pt").exists()
    assert len(first.epochs) == 2
    cfg4 = TrainConfig(**{**cfg.to_dict(), "max_epochs": 4})
    resumed = train_sasrec(CHAIN, 10, cfg4, lambda m: 0.0, checkpoint_dir=tmp_path)
    # Epochs 1-2 come from the checkpoint; only 3 and 4 ran now.
    assert [e.epoch for e in resumed.epochs] == [1, 2, 3, 4]
    assert resumed.epochs[0] == first.epochs[0]


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    from shoprec.training.trainer import lr_factor

    cfg = TrainConfig(warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.55)  # half-way through the cosine
    assert lr_factor(110, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(500, 110, cfg) == pytest.approx(0.1)
