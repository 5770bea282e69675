"""Training loop for the SASRec ranker: full cross-entropy, early stopping, checkpoints, time budget."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from shoprec.ranking.tokens import left_pad
from shoprec.training.config import TrainConfig
from shoprec.training.sasrec import SASRec

IntArray = npt.NDArray[np.int64]


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    valid_ndcg10: float
    seconds: float


@dataclass
class TrainResult:
    model: SASRec
    best_epoch: int
    best_valid_ndcg10: float
    epochs: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str = ""


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _tokens(seqs: Sequence[IntArray], max_len: int) -> torch.Tensor:
    return torch.from_numpy(left_pad(seqs, max_len))


def training_windows(train: Sequence[IntArray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-item targets for every user with at least two training items."""
    usable = [s for s in train if len(s) >= 2]
    return _tokens([s[:-1] for s in usable], max_len), _tokens([s[1:] for s in usable], max_len)


Validator = Callable[[SASRec], float]
BatchCallback = Callable[[int, int, int, float], None]  # epoch, batch, n_batches, loss
EpochCallback = Callable[[EpochLog], None]


def train_sasrec(
    train: Sequence[IntArray],
    n_items: int,
    config: TrainConfig,
    validate: Validator,
    *,
    checkpoint_dir: Path | None = None,
    on_batch: BatchCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train with Adam on full softmax cross-entropy; keep the weights of the best validation NDCG@10.

    Stops after ``patience`` epochs without improvement, after ``max_epochs``, or when ``max_minutes``
    would be exceeded by another epoch. With ``checkpoint_dir`` the best and the last state are saved
    after every epoch and training resumes from the last state when one is found there (spot restarts).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seed(config.seed)
    model = SASRec(config.model_config(n_items))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    inputs, targets = training_windows(train, config.max_len)
    lengths = (inputs > 0).sum(dim=1)
    n = inputs.shape[0]
    n_batches = math.ceil(n / config.batch_size)
    result = TrainResult(model=model, best_epoch=0, best_valid_ndcg10=-1.0)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bad_epochs = 0
    start_epoch = 1
    if checkpoint_dir is not None:
        resumed = _load_checkpoint(checkpoint_dir, model, opt)
        if resumed is not None:
            start_epoch, result.best_epoch, result.best_valid_ndcg10, bad_epochs, best_state, logs = resumed
            result.epochs = [EpochLog(**e) for e in logs]
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    budget = config.max_minutes * 60.0
    epoch_seconds = 0.0
    planned_epochs = config.max_epochs
    for epoch in range(start_epoch, config.max_epochs + 1):
        elapsed = time.perf_counter() - t0
        if epoch > start_epoch:
            if elapsed + epoch_seconds > budget:
                result.stopped_by = "time budget"
                break
            # The learning-rate schedule decays over the epochs that fit into the time budget, so a
            # large catalogue still ends its run at a small learning rate instead of being cut mid-way.
            planned_epochs = min(config.max_epochs, epoch - 1 + int((budget - elapsed) // epoch_seconds))
        te = time.perf_counter()
        model.train()
        total = 0.0
        perm = torch.randperm(n, generator=gen)
        for b in range(n_batches):
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
            step = (epoch - 1) * n_batches + b
            for group in opt.param_groups:
                group["lr"] = config.lr * lr_factor(step, planned_epochs * n_batches, config)
            # Sequences are left-padded: columns left of the batch's longest sequence are all padding.
            width = int(lengths[idx].max())
            loss = model.loss(inputs[idx, -width:], targets[idx, -width:])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            loss_value = float(loss.detach())
            total += loss_value
            if on_batch is not None:
                on_batch(epoch, b + 1, n_batches, loss_value)
        model.eval()
        with torch.no_grad():
            score = validate(model)
        log = EpochLog(epoch, total / max(n_batches, 1), score, time.perf_counter() - te)
        epoch_seconds = max(epoch_seconds, log.seconds)
        result.epochs.append(log)
        if score > result.best_valid_ndcg10:
            result.best_valid_ndcg10, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if on_epoch is not None:
            on_epoch(log)
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, model, opt, epoch, result, bad_epochs, best_state)
        if bad_epochs >= config.patience:
            result.stopped_by = f"no validation gain for {config.patience} epochs"
            break
    else:
        result.stopped_by = "max epochs"
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warm-up for ``warmup_steps``, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _save_checkpoint(
    directory: Path,
    model: SASRec,
    opt: torch.optim.Optimizer,
    epoch: int,
    result: TrainResult,
    bad_epochs: int,
    best_state: dict[str, torch.Tensor],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "best_state": best_state,
        "best_epoch": result.best_epoch,
        "best_valid_ndcg10": result.best_valid_ndcg10,
        "bad_epochs": bad_epochs,
        "epochs": [asdict(e) for e in result.epochs],
        "rng": torch.get_rng_state(),
    }
    tmp = directory / "last.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(directory / "last.pt")


def _load_checkpoint(
    directory: Path, model: SASRec, opt: torch.optim.Optimizer
) -> tuple[int, int, float, int, dict[str, torch.Tensor], list[dict[str, Any]]] | None:
    path = directory / "last.pt"
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return (
        int(state["epoch"]) + 1,
        int(state["best_epoch"]),
        float(state["best_valid_ndcg10"]),
        int(state["bad_epochs"]),
        state["best_state"],
        list(state["epochs"]),
    )
