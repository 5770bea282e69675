"""ONNX export of the ranker matches torch on real Amazon Scientific sequences; int8 variant loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shoprec.data import leave_one_out, load_dataset  # noqa: E402
from shoprec.ranking.onnx_ranker import OnnxRanker  # noqa: E402
from shoprec.ranking.tokens import left_pad  # noqa: E402
from shoprec.training.export import export_onnx, parity_max_abs_diff, quantize_int8  # noqa: E402
from shoprec.training.sasrec import SASRec, SASRecConfig  # noqa: E402

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> tuple[SASRec, Path, list]:
    ds = load_dataset(scientific_dir)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=ds.n_items, hidden=32, blocks=2, heads=2, max_len=50)).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "ranker.onnx")
    return model, path, leave_one_out(ds).test_histories()


def test_onnx_scores_match_torch_on_real_sequences(exported: tuple[SASRec, Path, list]) -> None:
    model, path, histories = exported
    rng = np.random.default_rng(0)
    users = rng.choice(len(histories), size=64, replace=False)
    seq = torch.from_numpy(left_pad([histories[u] for u in users], 50))
    # Dynamic batch and candidate count: two different shapes through the same graph.
    for n_cand in (300, 17):
        cand = torch.from_numpy(rng.integers(1, model.cfg.n_items + 1, size=(64, n_cand)))
        assert parity_max_abs_diff(model, path, seq, cand) <= 1e-4
    assert parity_max_abs_diff(model, path, seq[:1], cand[:1]) <= 1e-4


def test_ranker_full_catalogue_scores_match_torch(exported: tuple[SASRec, Path, list]) -> None:
    model, path, histories = exported
    ranker = OnnxRanker(path, n_items=model.cfg.n_items, max_len=50)
    batch = histories[:8]
    with torch.no_grad():
        expected = model.score_all(torch.from_numpy(left_pad(batch, 50))).numpy()
    assert np.max(np.abs(ranker.score_all(batch) - expected)) <= 1e-4


def test_int8_variant_is_smaller_and_ranks_close_to_fp32(
    exported: tuple[SASRec, Path, list], tmp_path: Path
) -> None:
    model, path, histories = exported
    q = quantize_int8(path, tmp_path / "ranker.int8.onnx")
    assert q.stat().st_size < 0.5 * path.stat().st_size
    fp32 = OnnxRanker(path, n_items=model.cfg.n_items, max_len=50).score_all(histories[:16])
    int8 = OnnxRanker(q, n_items=model.cfg.n_items, max_len=50).score_all(histories[:16])
    # Quantisation perturbs scores but keeps the ordering largely intact.
    corr = np.corrcoef(fp32.ravel(), int8.ravel())[0, 1]
    assert corr > 0.95
