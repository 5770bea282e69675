"""The Transformer ranker: shapes, causality, padding invariance, and the full and sampled softmax losses."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from shoprec.training.sasrec import NegativeSampler, SASRec, SASRecConfig, full_softmax_ce  # noqa: E402

pytestmark = pytest.mark.train


@pytest.fixture
def model() -> SASRec:
    torch.manual_seed(0)
    return SASRec(SASRecConfig(n_items=30, hidden=16, blocks=2, heads=2, max_len=8, dropout=0.0)).eval()


def _seq(rows: list[list[int]], max_len: int = 8) -> torch.Tensor:
    out = torch.zeros(len(rows), max_len, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, max_len - len(r) :] = torch.tensor(r)
    return out


def test_forward_scores_one_value_per_candidate(model: SASRec) -> None:
    seq = _seq([[1, 2, 3], [4, 5]])
    cand = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    assert model(seq, cand).shape == (2, 5)


def test_score_all_covers_every_item_and_agrees_with_forward(model: SASRec) -> None:
    seq = _seq([[1, 2, 3]])
    everything = torch.arange(1, 31).unsqueeze(0)
    with torch.no_grad():
        assert model.score_all(seq).shape == (1, 30)
        assert torch.allclose(model.score_all(seq), model(seq, everything), atol=1e-5)


def test_same_history_scores_the_same_in_a_wider_window(model: SASRec) -> None:
    # Positions are counted from the right (the most recent item is always last), so a model with a
    # longer window but the same right-aligned position embeddings gives the same scores.
    wide = SASRec(SASRecConfig(n_items=30, hidden=16, blocks=2, heads=2, max_len=12, dropout=0.0)).eval()
    state = dict(model.state_dict())
    state["pos_emb.weight"] = torch.cat([torch.randn(4, 16), state["pos_emb.weight"]])
    wide.load_state_dict(state)
    with torch.no_grad():
        narrow_scores = model.score_all(_seq([[5, 6, 7]], max_len=8))
        wide_scores = wide.score_all(_seq([[5, 6, 7]], max_len=12))
    assert torch.allclose(wide_scores, narrow_scores, atol=1e-5)


def test_earlier_positions_do_not_see_later_items(model: SASRec) -> None:
    a = _seq([[1, 2, 3, 4]])
    b = _seq([[1, 2, 3, 9]])
    with torch.no_grad():
        ha, hb = model.encode(a), model.encode(b)
    assert torch.allclose(ha[:, :-1], hb[:, :-1], atol=1e-6)
    assert not torch.allclose(ha[:, -1], hb[:, -1])


def test_loss_is_full_softmax_cross_entropy_over_non_padded_positions(model: SASRec) -> None:
    seq = _seq([[1, 2, 3]])
    target = _seq([[2, 3, 4]])
    with torch.no_grad():
        h = model.encode(seq)[0, -3:]
        logits = h @ model.item_table().T
        expected = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2, 3]))
        assert torch.allclose(model.loss(seq, target), expected, atol=1e-6)


def test_full_softmax_loss_and_gradients_match_autograd_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(37, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    table = torch.randn(50, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, 50, (37,), generator=generator)
    ours = full_softmax_ce(h, table, target)
    ours_grads = torch.autograd.grad(3.0 * ours, (h, table))
    reference = torch.nn.functional.cross_entropy(h @ table.T, target)
    reference_grads = torch.autograd.grad(3.0 * reference, (h, table))
    assert torch.allclose(ours, reference, atol=1e-12)
    for got, want in zip(ours_grads, reference_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-12)


def test_padding_embedding_stays_zero_after_training_steps() -> None:
    torch.manual_seed(0)
    m = SASRec(SASRecConfig(n_items=10, hidden=8, blocks=1, max_len=4, dropout=0.1))
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(3):
        loss = m.loss(_seq([[1, 2]], 4), _seq([[2, 3]], 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.count_nonzero(m.item_emb.weight[0]) == 0


def _sampled_by_hand(
    model: SASRec, seq: torch.Tensor, target: torch.Tensor, negatives: list[int], log_q: list[float]
) -> torch.Tensor:
    """Per-position cross-entropy written out: -log(exp(s+) / (exp(s+) + sum of exp(s-) over non-hits))."""
    h = model.encode(seq)[0]
    losses = []
    for pos, t in enumerate(target[0].tolist()):
        if t == 0:
            continue
        scores = {
            token: float(h[pos] @ model.item_emb.weight[token]) - log_q[token] for token in [t, *negatives]
        }
        denominator = math.exp(scores[t]) + sum(math.exp(scores[n]) for n in negatives if n != t)
        losses.append(-math.log(math.exp(scores[t]) / denominator))
    return torch.tensor(sum(losses) / len(losses))


def test_sampled_loss_subtracts_log_q_from_the_positive_and_every_negative(model: SASRec) -> None:
    seq, target = _seq([[1, 2, 3]]), _seq([[2, 3, 4]])
    negatives = [
        7,
        9,
        4,
    ]  # 4 is the last position's own target: an accidental hit there, a negative elsewhere
    log_q = [0.0] + [-math.log(30) + 0.1 * i for i in range(1, 31)]
    with torch.no_grad():
        loss = model.sampled_loss(seq, target, torch.tensor(negatives), torch.tensor(log_q))
        expected = _sampled_by_hand(model, seq, target, negatives, log_q)
        uncorrected = model.sampled_loss(seq, target, torch.tensor(negatives))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert abs(loss.item() - uncorrected.item()) > 1e-3


def test_a_uniform_log_q_changes_nothing(model: SASRec) -> None:
    seq, target, negatives = _seq([[1, 2, 3], [5]]), _seq([[2, 3, 4], [6]]), torch.tensor([7, 8, 9, 10])
    with torch.no_grad():
        uniform = model.sampled_loss(seq, target, negatives, torch.full((31,), -math.log(30)))
        assert torch.allclose(uniform, model.sampled_loss(seq, target, negatives), atol=1e-6)


def test_a_sampled_negative_equal_to_the_target_is_ignored(model: SASRec) -> None:
    seq, target = _seq([[1, 2, 3]]), _seq([[2, 3, 4]])
    with torch.no_grad():
        # The only negative of every position is its own target: nothing is left to push down.
        only_hits = model.sampled_loss(_seq([[1]]), _seq([[5]]), torch.tensor([5, 5]))
        assert only_hits.item() == 0.0
        # Mixed: position 2's target (token 3) was drawn; it counts as a negative for the other positions.
        mixed = model.sampled_loss(seq, target, torch.tensor([3, 8]))
        expected = _sampled_by_hand(model, seq, target, [3, 8], [0.0] * 31)
    assert mixed.item() == pytest.approx(expected.item(), abs=1e-5)


def test_sampled_loss_is_finite_and_decreases_with_training() -> None:
    torch.manual_seed(0)
    m = SASRec(SASRecConfig(n_items=20, hidden=16, blocks=1, max_len=6, dropout=0.0))
    sampler = NegativeSampler(20, 8, seed=0)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    seq, target = _seq([[1, 2, 3, 4], [5, 6, 7]], 6), _seq([[2, 3, 4, 5], [6, 7, 8]], 6)
    losses = []
    for _ in range(30):
        loss = m.sampled_loss(seq, target, sampler.draw(), sampler.log_q)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_uniform_sampler_needs_no_counts_and_draws_reproducible_tokens() -> None:
    first = NegativeSampler(50, 256, seed=3)
    again = NegativeSampler(50, 256, seed=3)
    draws = [first.draw() for _ in range(3)]
    assert first.log_q is None
    assert all(torch.equal(d, again.draw()) for d in draws)
    assert all(d.shape == (256,) and int(d.min()) >= 1 and int(d.max()) <= 50 for d in draws)
    assert not torch.equal(draws[0], draws[1])  # one fresh draw per training step


def test_popularity_sampler_draws_in_proportion_to_count_to_the_power() -> None:
    counts = torch.tensor([1, 0, 98])  # an item never seen in training counts as 1: still drawable
    sampler = NegativeSampler(3, 2000, seed=0, power=1.0, counts=counts)
    assert sampler.log_q is not None
    assert sampler.log_q.tolist() == pytest.approx([0.0, math.log(0.01), math.log(0.01), math.log(0.98)])
    drawn = torch.bincount(sampler.draw(), minlength=4)
    assert drawn[0] == 0
    assert 1900 < drawn[3] < 2000
    sqrt = NegativeSampler(3, 1, seed=0, power=0.5, counts=torch.tensor([1, 4, 16]))
    assert sqrt.log_q is not None
    assert sqrt.log_q[1:].exp().tolist() == pytest.approx([1 / 7, 2 / 7, 4 / 7])


def test_popularity_sampler_without_counts_is_refused() -> None:
    with pytest.raises(ValueError, match="counts"):
        NegativeSampler(3, 4, seed=0, power=0.5)
