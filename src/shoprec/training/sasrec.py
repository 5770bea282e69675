"""SASRec-style causal Transformer over item sequences, trained with full or sampled softmax cross-entropy.

Item tokens are internal item indices + 1; token 0 is padding. Sequences are left-padded so that the
most recent item is always at the last position.

Full softmax scores every item at every position, so a step costs ``positions * n_items``; sampled
softmax scores the target against a few hundred negatives drawn once per step and shared by all positions
(``positions * negatives``), which keeps the epoch time flat as the catalogue grows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    max_len: int = 50
    dropout: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean softmax cross-entropy of ``h @ table.T`` against ``target``, with the gradient written by hand.

    The same loss and gradients as ``F.cross_entropy(h @ table.T, target)``, in fewer passes over the
    [positions, n_items] logits, which dominate a full-softmax step on the CPU: the forward keeps only the
    log-sum-exp, and the backward turns the saved logits into probabilities in place (softmax - one-hot),
    where autograd's log-softmax and NLL backward allocate, zero and walk that matrix several times more.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, table: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = h @ table.T
        lse = torch.logsumexp(logits, dim=1)
        rows = torch.arange(h.shape[0], device=h.device)
        loss = (lse - logits[rows, target]).mean()
        ctx.save_for_backward(h, table, target, logits, lse)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, table, target, logits, lse = ctx.saved_tensors
        probs = logits.sub_(lse.unsqueeze(1)).exp_()  # the saved logits are not needed again
        rows = torch.arange(h.shape[0], device=h.device)
        probs[rows, target] -= 1.0
        scale = grad / h.shape[0]
        grad_h = (probs @ table) * scale if ctx.needs_input_grad[0] else None
        grad_table = (probs.T @ h) * scale if ctx.needs_input_grad[1] else None
        return grad_h, grad_table, None


def full_softmax_ce(h: torch.Tensor, table: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the scores ``h @ table.T`` [N, n_items] against ``target`` [N] (0-based).

    On the CPU through :class:`_FullSoftmaxCE`; elsewhere (bf16 autocast on a GPU) through autograd.
    """
    if h.device.type == "cpu" and torch.is_grad_enabled():
        loss: torch.Tensor = _FullSoftmaxCE.apply(h, table, target)  # type: ignore[no-untyped-call]
        return loss
    return F.cross_entropy(h @ table.T, target)


class _Block(nn.Module):
    """Pre-norm Transformer block: causal self-attention then a position-wise feed-forward network."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=1e-8)
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=1e-8)
        self.ff1 = nn.Linear(cfg.hidden, cfg.hidden)
        self.ff2 = nn.Linear(cfg.hidden, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_dropout = cfg.dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, D)))
        h = self.ln2(x)
        out: torch.Tensor = x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(h)))))
        return out


class SASRec(nn.Module):
    """Causal self-attentive sequential recommender with tied input/output item embeddings."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.blocks))
        self.ln_out = nn.LayerNorm(cfg.hidden, eps=1e-8)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=m.embedding_dim**-0.5)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position: ``seq`` [B, L] tokens → [B, L, hidden]."""
        L = seq.shape[1]
        valid = seq > 0
        x = self.item_emb(seq) * (self.cfg.hidden**0.5)
        x = x + self.pos_emb.weight[-L:].unsqueeze(0)
        x = self.emb_drop(x) * valid.unsqueeze(-1)
        # Causal mask; padded keys hidden, but every query sees itself so no row is fully masked.
        causal = torch.ones(L, L, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(L, dtype=torch.bool, device=seq.device)
        mask = (causal & valid.unsqueeze(1)) | eye
        mask = mask.unsqueeze(1)  # [B, 1, L, L] broadcast over heads
        for block in self.blocks:
            x = block(x, mask) * valid.unsqueeze(-1)
        out: torch.Tensor = self.ln_out(x)
        return out

    def item_table(self) -> torch.Tensor:
        """Output item embeddings [n_items, hidden] (row i = internal item i)."""
        return self.item_emb.weight[1:]

    def last_state(self, seq: torch.Tensor) -> torch.Tensor:
        return self.encode(seq)[:, -1, :]

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item for the next position: [B, n_items]."""
        return self.last_state(seq) @ self.item_table().T

    def forward(self, seq: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of candidate tokens [B, C] for the next item after ``seq`` [B, L] (the ONNX graph)."""
        h = self.last_state(seq)
        return torch.einsum("bd,bcd->bc", h, self.item_emb(candidates))

    def loss(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Full softmax cross-entropy over all items at every non-padded position."""
        h = self.encode(seq)
        m = target > 0
        return full_softmax_ce(h[m], self.item_table(), target[m] - 1)

    def sampled_loss(
        self,
        seq: torch.Tensor,
        target: torch.Tensor,
        negatives: torch.Tensor,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sampled softmax cross-entropy at every non-padded position: the target against ``negatives``.

        ``negatives`` [S] are item tokens shared by every position. ``log_q`` [n_items + 1], indexed by
        token, is the log-probability with which the sampler draws each item; subtracting it from every
        logit (the logQ correction) removes the bias of a popularity proposal, which would otherwise push
        popular items down merely for being drawn more often. ``None`` means a uniform proposal, where the
        correction is a constant that cancels out.
        """
        h = self.encode(seq)
        m = target > 0
        h, pos = h[m], target[m]  # [N, hidden], [N]
        pos_logits = (h * self.item_emb(pos)).sum(dim=-1, keepdim=True)  # [N, 1]
        neg_logits = h @ self.item_emb(negatives).T  # [N, S]
        if log_q is not None:
            pos_logits = pos_logits - log_q[pos].unsqueeze(1)
            neg_logits = neg_logits - log_q[negatives]
        # A drawn "negative" that is the position's own target is no negative: it must not be pushed down.
        hits = negatives.unsqueeze(0) == pos.unsqueeze(1)
        neg_logits = neg_logits.masked_fill(hits, float("-inf"))
        logits = torch.cat([pos_logits, neg_logits], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(pos))


class NegativeSampler:
    """The proposal distribution of sampled softmax and the draws of each training step.

    Items are drawn with probability q ∝ count ** power (with replacement); ``power`` 0 is uniform and
    needs no counts. Counts below 1 count as 1, so that an item never seen in training can still be drawn
    as a negative and its log q stays finite. Draws come from a generator of their own, seeded, so a run
    is reproducible and the other random streams (batch order, dropout) are the same as without sampling.
    """

    def __init__(
        self,
        n_items: int,
        negatives: int,
        *,
        seed: int,
        power: float = 0.0,
        counts: torch.Tensor | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.n_items = n_items
        self.negatives = negatives
        self.device = device or torch.device("cpu")
        self._generator = torch.Generator().manual_seed(seed)
        self._q: torch.Tensor | None = None
        self.log_q: torch.Tensor | None = None
        """log q by token ([n_items + 1], padding token 0 at 0), or ``None`` for the uniform proposal."""
        if power > 0:
            if counts is None or counts.shape != (n_items,):
                raise ValueError(f"negative_power {power} needs the counts of all {n_items} items")
            weights = counts.double().clamp(min=1.0) ** power
            self._q = weights / weights.sum()
            self.log_q = (
                torch.cat([torch.zeros(1, dtype=torch.float64), self._q.log()]).float().to(self.device)
            )

    def draw(self) -> torch.Tensor:
        """``negatives`` item tokens (1 .. n_items) for one training step."""
        if self._q is None:
            tokens = torch.randint(1, self.n_items + 1, (self.negatives,), generator=self._generator)
        else:
            tokens = (
                torch.multinomial(self._q, self.negatives, replacement=True, generator=self._generator) + 1
            )
        return tokens.to(self.device)
