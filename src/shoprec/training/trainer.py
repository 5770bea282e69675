"""Training loop for the SASRec ranker: full or sampled softmax, early stopping, checkpoints, time budget.

Started by ``torchrun`` with several processes (see :mod:`shoprec.training.distributed`), the same loop
trains data-parallel with ``DistributedDataParallel``: every rank draws the same permutation and takes a
strided shard of each global batch, so the optimiser sees the same batches, steps and learning-rate schedule
as a single process. Rank 0 alone validates and writes checkpoints; its validation score, epoch time and
clock are broadcast, so every rank makes the same early-stopping, time-budget and schedule decisions.
"""

from __future__ import annotations

import contextlib
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
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from shoprec.ranking.tokens import left_pad
from shoprec.training.config import TrainConfig, resolve_loss
from shoprec.training.distributed import DistContext, broadcast_from_main, current, mean_over_ranks
from shoprec.training.sasrec import NegativeSampler, SASRec

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
    loss: str = ""
    """``full`` or ``sampled``: what ``config.loss`` resolved to (``auto`` alone does not say)."""
    device: str = ""
    """Where the run trained (``cpu``, ``cuda``, ``cuda:1``, ...)."""


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


def resolve_device(requested: str, ctx: DistContext, *, cuda_available: bool) -> torch.device:
    """The device a run trains on: the process group's under data parallelism (``torchrun`` gives every rank
    its GPU, or the CPU with gloo), else ``requested`` (``auto`` | ``cpu`` | ``cuda``) in a plain process.

    ``cuda_available`` is ``torch.cuda.is_available()`` (a parameter so that the choice can be tested on
    machines either way).
    """
    if ctx.data_parallel:
        return ctx.device
    if requested == "cuda" and not cuda_available:
        raise ValueError(
            "device 'cuda' asked for, but torch sees no CUDA device (use device 'auto' or 'cpu')"
        )
    if requested in ("auto", "cuda") and cuda_available:
        return torch.device("cuda")
    return torch.device("cpu")


def _precision(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on a GPU (tensor cores; bf16 keeps fp32's range, so no loss scaling is needed); fp32,
    exactly as before, on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _LossModule(nn.Module):
    """The training loss as a forward pass: DDP synchronises gradients of what runs through its forward.

    Without a sampler it is ``SASRec.loss`` (full softmax); with one, every call draws the step's shared
    negatives and returns ``SASRec.sampled_loss``.
    """

    def __init__(self, model: SASRec, sampler: NegativeSampler | None) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler

    def forward(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.sampler is None:
            return self.model.loss(seq, target)
        return self.model.sampled_loss(seq, target, self.sampler.draw(), self.sampler.log_q)


Validator = Callable[[SASRec], float]
BatchCallback = Callable[[int, int, int, float], None]  # epoch, batch, n_batches, loss
EpochCallback = Callable[[EpochLog], None]


def negative_sampler(
    train: Sequence[IntArray], n_items: int, config: TrainConfig, device: torch.device
) -> NegativeSampler:
    """The sampler of ``config``: item counts over the training sequences only when the proposal uses them."""
    counts = None
    if config.negative_power > 0:
        flat = np.concatenate(list(train)) if len(train) else np.zeros(0, dtype=np.int64)
        counts = torch.from_numpy(np.bincount(flat, minlength=n_items))
    return NegativeSampler(
        n_items,
        config.negatives,
        seed=config.seed,
        power=config.negative_power,
        counts=counts,
        device=device,
    )


@dataclass
class TrainingSteps:
    """A model, its optimiser and the training windows: everything the optimiser steps of an epoch need.

    ``train_sasrec`` runs its epochs through :meth:`run_epoch`; ``bench/bench_epochs.py`` times the same
    steps without validation.
    """

    model: SASRec
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    ctx: DistContext
    device: torch.device
    loss_kind: str
    """``full`` or ``sampled`` (``config.loss`` resolved for the catalogue)."""
    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    step_loss: nn.Module
    permutations: torch.Generator

    @classmethod
    def create(
        cls,
        train: Sequence[IntArray],
        n_items: int,
        config: TrainConfig,
        *,
        ctx: DistContext | None = None,
        device: torch.device | None = None,
    ) -> TrainingSteps:
        """Seed, build the model on ``device`` (default: the CPU) and the optimiser, cut the windows."""
        ctx = ctx or DistContext()
        device = device or torch.device("cpu")
        if config.threads:
            torch.set_num_threads(config.threads)
        set_seed(config.seed)
        model = SASRec(config.model_config(n_items)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        inputs, targets = training_windows(train, config.max_len)
        loss_kind = resolve_loss(config, n_items)
        sampler = negative_sampler(train, n_items, config, device) if loss_kind == "sampled" else None
        return cls(
            model=model,
            optimizer=opt,
            config=config,
            ctx=ctx,
            device=device,
            loss_kind=loss_kind,
            inputs=inputs,
            targets=targets,
            lengths=(inputs > 0).sum(dim=1),
            step_loss=_LossModule(model, sampler),
            permutations=torch.Generator().manual_seed(config.seed),
        )

    def distribute(self) -> None:
        """Wrap the loss in ``DistributedDataParallel`` when this process is one rank of several (call
        after restoring a checkpoint: DDP broadcasts rank 0's weights when it is built)."""
        if not self.ctx.data_parallel:
            return
        # Same initial weights everywhere (DDP also broadcasts them); dropout masks differ per rank.
        torch.manual_seed(self.config.seed + self.ctx.rank)
        self.step_loss = DistributedDataParallel(
            self.step_loss, device_ids=[self.ctx.local_rank] if self.device.type == "cuda" else None
        )

    @property
    def n_batches(self) -> int:
        if self.config.batching == "length":
            return len(_length_cuts(self.lengths.sort().values, self.config.batch_size)) + 1
        return math.ceil(self.inputs.shape[0] / self.config.batch_size)

    def epoch_batches(self) -> list[torch.Tensor]:
        """Row indices of the global batches of one epoch, in the order they are stepped."""
        if self.config.batching == "length":
            return length_batches(self.lengths, self.config.batch_size, self.permutations)
        perm = torch.randperm(self.inputs.shape[0], generator=self.permutations)
        return list(torch.split(perm, self.config.batch_size))

    def run_epoch(
        self,
        epoch: int,
        planned_epochs: int,
        *,
        on_batch: BatchCallback | None = None,
        max_batches: int | None = None,
    ) -> float:
        """One epoch of optimiser steps in a fresh random order (the first ``max_batches`` of them when
        given); returns the mean training loss of this rank's batches."""
        config, model = self.config, self.model
        batches = self.epoch_batches()
        n_batches = len(batches)
        model.train()
        total = 0.0
        n_steps = n_batches if max_batches is None else min(max_batches, n_batches)
        for b in range(n_steps):
            idx = _shard(batches[b], self.ctx)
            step = (epoch - 1) * n_batches + b
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(step, planned_epochs * n_batches, config)
            # Sequences are left-padded: columns left of the batch's longest sequence are all padding.
            width = int(self.lengths[idx].max())
            seq = self.inputs[idx, -width:].to(self.device)
            target = self.targets[idx, -width:].to(self.device)
            with _precision(self.device):
                loss: torch.Tensor = self.step_loss(seq, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            loss_value = float(loss.detach())
            total += loss_value
            if on_batch is not None:
                on_batch(epoch, b + 1, n_batches, loss_value)
        model.eval()
        return total / max(n_steps, 1)


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
    """Train with Adam on full or sampled softmax cross-entropy (``config.loss``, resolved by catalogue size
    for ``auto``); keep the weights of the best validation NDCG@10.

    Stops after ``patience`` epochs without improvement, after ``config.epochs_for(batches per epoch)``
    (``max_epochs``, or more for a small dataset to reach ``min_steps``), or when ``max_minutes``
    would be exceeded by another epoch. With ``checkpoint_dir`` the best and the last state are saved
    after every epoch and training resumes from the last state when one is found there (spot restarts).

    A plain process trains on ``config.device`` (with bf16 autocast on a GPU); ``validate`` gets the model on
    that device. In a ``torchrun`` process group ``batch_size`` is the global batch (each of the N ranks
    computes 1/N of it), the device is the rank's, ``validate`` is called on rank 0 only, and only rank 0
    writes checkpoints (every rank resumes from them). The returned model, on every rank, is on the CPU in
    fp32.
    """
    ctx = current()
    device = resolve_device(config.device, ctx, cuda_available=torch.cuda.is_available())
    steps = TrainingSteps.create(train, n_items, config, ctx=ctx, device=device)
    model = steps.model
    result = TrainResult(
        model=model, best_epoch=0, best_valid_ndcg10=-1.0, loss=steps.loss_kind, device=str(device)
    )
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bad_epochs = 0
    start_epoch = 1
    if checkpoint_dir is not None:
        resumed = _load_checkpoint(checkpoint_dir, model, steps.optimizer)
        if resumed is not None:
            start_epoch, result.best_epoch, result.best_valid_ndcg10, bad_epochs, best_state, logs = resumed
            result.epochs = [EpochLog(**e) for e in logs]
    steps.distribute()
    t0 = time.perf_counter()
    budget = config.max_minutes * 60.0
    epoch_seconds = 0.0
    max_epochs = config.epochs_for(steps.n_batches)
    planned_epochs = max_epochs
    for epoch in range(start_epoch, max_epochs + 1):
        (elapsed,) = broadcast_from_main([time.perf_counter() - t0], ctx)
        if epoch > start_epoch:
            if elapsed + epoch_seconds > budget:
                result.stopped_by = "time budget"
                break
            # The learning-rate schedule decays over the epochs that fit into the time budget, so a
            # large catalogue still ends its run at a small learning rate instead of being cut mid-way.
            planned_epochs = min(max_epochs, epoch - 1 + int((budget - elapsed) // epoch_seconds))
        te = time.perf_counter()
        train_loss = steps.run_epoch(epoch, planned_epochs, on_batch=on_batch)
        score = -1.0
        if ctx.is_main:
            with torch.no_grad():
                score = validate(model)
        score, seconds = broadcast_from_main([score, time.perf_counter() - te], ctx)
        log = EpochLog(epoch, mean_over_ranks(train_loss, ctx), score, seconds)
        epoch_seconds = max(epoch_seconds, log.seconds)
        result.epochs.append(log)
        if score > result.best_valid_ndcg10:
            result.best_valid_ndcg10, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if on_epoch is not None:
            on_epoch(log)
        if checkpoint_dir is not None and ctx.is_main:
            _save_checkpoint(checkpoint_dir, model, steps.optimizer, epoch, result, bad_epochs, best_state)
        if bad_epochs >= config.patience:
            result.stopped_by = f"no validation gain for {config.patience} epochs"
            break
    else:
        result.stopped_by = "max epochs"
    model.load_state_dict(best_state)
    model.cpu().eval()
    result.seconds = time.perf_counter() - t0
    return result


def _length_cuts(sorted_lengths: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Where to cut users sorted by length (ascending) into batches of about equal target positions: the
    mean positions of a random ``batch_size`` batch each, so an epoch has at most as many steps as random
    batching. Depends on the sorted lengths only, so every epoch (and ``n_batches``) has the same cuts."""
    n = sorted_lengths.shape[0]
    n_batches = max(1, math.ceil(n / batch_size))
    budget = float(sorted_lengths.sum()) / n_batches
    ends = torch.cumsum(sorted_lengths, 0).double()
    thresholds = budget * torch.arange(1, n_batches, dtype=torch.float64)
    cuts = torch.searchsorted(ends, thresholds, right=True)
    # A user longer than the budget (tiny datasets) would leave an empty batch between equal cuts.
    unique: torch.Tensor = torch.unique_consecutive(cuts[(cuts > 0) & (cuts < n)])
    return unique


def length_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices of one epoch's batches of users of similar length, in random order.

    Users are sorted by length, in random order among equal lengths, and cut into batches holding about as
    many target positions as a random batch of ``batch_size`` users (:func:`_length_cuts`): a batch of
    short histories has many users, one of long histories few. The loss averages over positions, so each
    position weighs what it weighs with random batches, and the learning-rate schedule sees as many steps;
    but a batch is hardly wider than its sequences, where a random batch is as wide as its longest one.
    """
    n = lengths.shape[0]
    jitter = torch.rand(n, generator=generator, dtype=torch.float64)
    order = torch.argsort(lengths.double() + jitter)  # lengths are integers: the jitter only breaks ties
    batches = list(order.tensor_split(_length_cuts(lengths[order], batch_size)))
    shuffled = torch.randperm(len(batches), generator=generator)
    return [batches[int(i)] for i in shuffled]


def _shard(batch: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's strided share of a global batch (DistributedSampler-style); never empty."""
    if not ctx.data_parallel:
        return batch
    shard = batch[ctx.rank :: ctx.world_size]
    # A last batch smaller than the world leaves some ranks without a row; every rank must still step.
    return shard if len(shard) else batch[:1]


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
    state = torch.load(path, weights_only=True, map_location="cpu")
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
