"""Training loop: it learns with either loss, keeps the best epoch, stops early, resumes from a checkpoint,
and picks its loss and device from the configuration."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shoprec.training.config import SAMPLED_SOFTMAX_MIN_ITEMS, TrainConfig, resolve_loss  # noqa: E402
from shoprec.training.distributed import DistContext  # noqa: E402
from shoprec.training.sasrec import SASRec  # noqa: E402
from shoprec.training.trainer import (  # noqa: E402
    TrainingSteps,
    length_batches,
    negative_sampler,
    resolve_device,
    train_sasrec,
    training_windows,
)

pytestmark = pytest.mark.train

# Ten users who all walk the same chain 0 → 1 → 2 → ... : next-item prediction is learnable.
CHAIN = [np.arange(i % 3, i % 3 + 6, dtype=np.int64) for i in range(10)]
TINY = TrainConfig(
    hidden=16,
    blocks=1,
    heads=1,
    max_len=6,
    dropout=0.0,
    lr=0.01,
    batch_size=4,
    seed=1,
    warmup_steps=3,
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


def _weights(model: SASRec) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("negative_power", [0.0, 0.75])
def test_sampled_softmax_learns_the_chain(negative_power: float) -> None:
    cfg = replace(TINY, loss="sampled", negatives=4, negative_power=negative_power, max_epochs=30)
    result = train_sasrec(CHAIN, 10, cfg, _next_item_accuracy)
    assert _next_item_accuracy(result.model) == 1.0
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert (result.loss, result.device) == ("sampled", "cpu")


def test_popularity_proposal_counts_the_training_sequences() -> None:
    sampler = negative_sampler(CHAIN, 10, replace(TINY, negative_power=1.0), torch.device("cpu"))
    counts = torch.tensor([4, 7, 10, 10, 10, 10, 6, 3, 1, 1], dtype=torch.float64)  # items 8, 9 unseen: 1
    assert sampler.log_q is not None
    assert torch.allclose(sampler.log_q[1:].double().exp(), counts / counts.sum(), atol=1e-6)


def test_sampled_runs_with_the_same_seed_are_identical_and_differ_from_full_softmax() -> None:
    cfg = replace(TINY, loss="sampled", negatives=4, negative_power=0.5, max_epochs=2, patience=10)
    first = _weights(train_sasrec(CHAIN, 10, cfg, lambda m: 0.0).model)
    again = _weights(train_sasrec(CHAIN, 10, cfg, lambda m: 0.0).model)
    full = _weights(train_sasrec(CHAIN, 10, replace(cfg, loss="full"), lambda m: 0.0).model)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], full[k]) for k in first)


def test_auto_trains_a_small_catalogue_exactly_as_full_softmax() -> None:
    cfg = replace(TINY, max_epochs=2, patience=10)
    auto = train_sasrec(CHAIN, 10, cfg, lambda m: 0.0)
    full = _weights(train_sasrec(CHAIN, 10, replace(cfg, loss="full"), lambda m: 0.0).model)
    assert auto.loss == "full"
    assert all(torch.equal(v, full[k]) for k, v in _weights(auto.model).items())


def test_full_softmax_steps_minimise_sasrec_full_cross_entropy() -> None:
    steps = TrainingSteps.create(CHAIN, 10, replace(TINY, loss="full"))
    seq, target = steps.inputs[:2], steps.targets[:2]
    with torch.no_grad():
        assert torch.equal(steps.step_loss(seq, target), steps.model.loss(seq, target))


def test_run_epoch_stops_after_max_batches() -> None:
    steps = TrainingSteps.create(CHAIN, 10, replace(TINY, loss="sampled", negatives=4))
    seen: list[int] = []
    loss = steps.run_epoch(1, 1, on_batch=lambda e, b, nb, loss: seen.append(b), max_batches=2)
    assert seen == [1, 2]
    assert steps.n_batches == 3
    assert np.isfinite(loss)


def _lengths(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_length_batches_hold_every_user_once_in_batches_of_similar_length() -> None:
    lengths = _lengths([1, 9, 2, 2, 8, 1, 3, 7, 1, 2, 5, 9])
    batches = length_batches(lengths, 4, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(12))
    # Random batches of 4 would make ceil(12 / 4) = 3 steps of 50 / 3 positions on average: as many steps,
    # and no batch holds more than that budget plus one user.
    assert len(batches) == 3
    assert all(int(lengths[b].sum()) <= 50 / 3 + 9 for b in batches)
    # Lengths do not interleave: the batches are runs of the users sorted by length.
    spans = sorted((int(lengths[b].min()), int(lengths[b].max())) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(spans))


def test_length_batches_reshuffle_every_epoch_but_keep_the_cuts() -> None:
    lengths = _lengths([3] * 20 + [6] * 20)
    generator = torch.Generator().manual_seed(0)
    first, second = length_batches(lengths, 8, generator), length_batches(lengths, 8, generator)
    assert [len(b) for b in sorted(first, key=len)] == [len(b) for b in sorted(second, key=len)]
    assert [b.tolist() for b in first] != [b.tolist() for b in second]


def test_length_batches_leave_no_batch_empty_when_a_user_outgrows_the_budget() -> None:
    batches = length_batches(_lengths([1, 1, 1, 40, 45]), 1, torch.Generator().manual_seed(0))
    assert all(len(b) > 0 for b in batches)
    assert sorted(torch.cat(batches).tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("batching", ["length", "random"])
def test_an_epoch_steps_through_n_batches_covering_every_window(batching: str) -> None:
    data = [np.arange(0, 2 + i % 5, dtype=np.int64) for i in range(23)]
    steps = TrainingSteps.create(data, 10, replace(TINY, batching=batching, batch_size=5))
    batches = steps.epoch_batches()
    assert len(batches) == steps.n_batches <= 5
    assert sorted(torch.cat(batches).tolist()) == list(range(23))


def test_auto_loss_switches_to_sampled_softmax_at_the_threshold() -> None:
    auto = TrainConfig()
    assert resolve_loss(auto, SAMPLED_SOFTMAX_MIN_ITEMS - 1) == "full"
    assert resolve_loss(auto, SAMPLED_SOFTMAX_MIN_ITEMS) == "sampled"
    assert resolve_loss(TrainConfig(loss="full"), 10 * SAMPLED_SOFTMAX_MIN_ITEMS) == "full"
    assert resolve_loss(TrainConfig(loss="sampled"), 10) == "sampled"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loss", "softmax"),
        ("device", "gpu"),
        ("negatives", 0),
        ("negative_power", -0.5),
        ("negative_power", float("nan")),
        ("min_steps", -1),
        ("batching", "bucket"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        TrainConfig(**{field: value})


def test_config_round_trips_through_its_dict() -> None:
    cfg = TrainConfig(loss="sampled", negatives=64, negative_power=0.75, device="cpu")
    assert TrainConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("requested", "cuda_available", "expected"),
    [("auto", False, "cpu"), ("auto", True, "cuda"), ("cpu", True, "cpu"), ("cuda", True, "cuda")],
)
def test_device_resolution_for_a_single_process(requested: str, cuda_available: bool, expected: str) -> None:
    device = resolve_device(requested, DistContext(), cuda_available=cuda_available)
    assert device.type == expected


def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="device 'cuda'"):
        resolve_device("cuda", DistContext(), cuda_available=False)


def test_auto_device_on_this_machine_follows_torch() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", DistContext(), cuda_available=torch.cuda.is_available()).type == expected


def test_a_torchrun_rank_trains_on_its_process_group_device() -> None:
    rank = DistContext(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    assert resolve_device("cuda", rank, cuda_available=False) == torch.device("cpu")


@pytest.mark.parametrize(
    ("batches", "expected"),
    [(175, 16), (125, 16), (65, 31), (33, 61), (1, 2_000)],  # Beauty, 16k users, Scientific, its half
)
def test_a_small_dataset_plans_enough_epochs_for_the_minimum_steps(batches: int, expected: int) -> None:
    assert TrainConfig(min_steps=2_000).epochs_for(batches) == expected
    assert TrainConfig().epochs_for(batches) == 16  # off by default: max_epochs exactly


def test_training_runs_the_epochs_the_minimum_steps_need() -> None:
    # CHAIN is 3 batches of 4 sequences: 12 steps need 4 epochs where max_epochs asks for 2.
    cfg = replace(TINY, max_epochs=2, min_steps=12, patience=100)
    result = train_sasrec(CHAIN, 10, cfg, lambda model: 0.0)
    assert len(result.epochs) == 4
    assert result.stopped_by == "max epochs"
