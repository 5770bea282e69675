"""ONNX export of the ranker, an int8 dynamically quantised variant, and a parity check against torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from shoprec.ranking.onnx_ranker import INPUT_CANDIDATES, INPUT_SEQUENCE, OUTPUT_SCORES
from shoprec.training.sasrec import SASRec

OPSET = 18


def export_onnx(model: SASRec, path: Path) -> Path:
    """Write ``model`` as ONNX: (item_seq [B, L] int64, candidates [B, C] int64) → scores [B, C].

    Batch and candidate count are dynamic; L is the model's ``max_len`` (sequences are left-padded
    with token 0). Tokens are internal item indices + 1.
    """
    model = model.eval()
    L = model.cfg.max_len
    seq = torch.zeros(2, L, dtype=torch.int64)
    seq[:, -3:] = torch.tensor([[1, 2, 3], [4, 5, 6]])
    cand = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=torch.int64)
    batch = torch.export.Dim("batch", min=1, max=4096)
    n_cand = torch.export.Dim("n_candidates", min=1, max=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (seq, cand),
            dynamo=True,
            input_names=[INPUT_SEQUENCE, INPUT_CANDIDATES],
            output_names=[OUTPUT_SCORES],
            dynamic_shapes={"seq": {0: batch}, "candidates": {0: batch, 1: n_cand}},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    assert program is not None
    program.save(str(path), external_data=False)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of the weights of MatMul/Gemm nodes (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def onnx_scores(
    path: Path, seq: npt.NDArray[np.int64], cand: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run([OUTPUT_SCORES], {INPUT_SEQUENCE: seq, INPUT_CANDIDATES: cand})[0]
    return np.asarray(out, dtype=np.float32)


def parity_max_abs_diff(model: SASRec, path: Path, seq: torch.Tensor, cand: torch.Tensor) -> float:
    """Largest absolute difference between torch and onnxruntime scores on the same inputs."""
    with torch.no_grad():
        expected = model.eval()(seq, cand).numpy()
    got = onnx_scores(path, seq.numpy(), cand.numpy())
    return float(np.max(np.abs(expected - got)))
