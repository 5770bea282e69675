"""The Transformer ranker: shapes, causality, padding invariance and the full cross-entropy loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from shoprec.training.sasrec import SASRec, SASRecConfig  # noqa: E402

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
