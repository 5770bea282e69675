"""The serving text encoder on a hand-made tokenizer and a hand-made bag-of-words graph (no model files).

The graph stands in for the BERT export with the same inputs and output: it looks up one vector per token,
averages them over the attention mask and L2-normalises, so every expected embedding can be written down.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from shoprec.text import TextEncoder, pad_batch
from shoprec.text.encoder import (
    INPUT_ATTENTION_MASK,
    INPUT_IDS,
    META_DIM,
    META_MAX_POSITIONS,
    OUTPUT_EMBEDDING,
)

PAD, UNK, CLS, SEP = 0, 1, 2, 3
VOCAB = {"[PAD]": PAD, "[UNK]": UNK, "[CLS]": CLS, "[SEP]": SEP, "red": 4, "glass": 5, "pipe": 6, "##tte": 7}
DIM = 3
# One row per token id; [PAD]'s row is huge so that any leak of padding into the mean shows.
TABLE = np.array(
    [
        [1000.0, -1000.0, 1000.0],  # [PAD]
        [0.0, 0.0, 1.0],  # [UNK]
        [1.0, 0.0, 0.0],  # [CLS]
        [0.0, 1.0, 0.0],  # [SEP]
        [2.0, 0.0, 0.0],  # red
        [0.0, 2.0, 2.0],  # glass
        [0.0, 0.0, 3.0],  # pipe
        [3.0, 3.0, 0.0],  # ##tte
    ],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = Tokenizer(models.WordPiece(VOCAB, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)]
    )
    # Like all-MiniLM's tokenizer.json: a fixed padding length, which the encoder must not use.
    tok.enable_padding(pad_id=PAD, pad_token="[PAD]", length=16)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gather → masked mean over the sequence → L2 normalisation, as an ONNX graph."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["table", INPUT_IDS], ["tok"]),
        helper.make_node("Cast", [INPUT_ATTENTION_MASK], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "last"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "seq_axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("ReduceL2", ["mean", "last"], ["norm"], keepdims=1),
        helper.make_node("Div", ["mean", "norm"], [OUTPUT_EMBEDDING]),
    ]
    graph = helper.make_graph(
        nodes,
        "bag_of_words",
        [
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(INPUT_ATTENTION_MASK, TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info(OUTPUT_EMBEDDING, TensorProto.FLOAT, ["batch", DIM])],
        initializer=[
            numpy_helper.from_array(TABLE, "table"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in {META_DIM: str(DIM), META_MAX_POSITIONS: "128"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "bow.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def encoder(onnx_path: Path, tokenizer_path: Path) -> TextEncoder:
    return TextEncoder.from_files(onnx_path, tokenizer_path, threads=1)


def expected_embedding(token_ids: list[int]) -> np.ndarray:
    mean = TABLE[token_ids].mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_tokenize_wraps_in_cls_sep_splits_wordpieces_and_pads_to_the_longest_text(
    encoder: TextEncoder,
) -> None:
    ids, mask = encoder.tokenize(["Red PIPETTE", "glass", "flask"])
    assert ids.dtype == np.int64
    assert mask.dtype == np.int64
    assert ids.tolist() == [[CLS, 4, 6, 7, SEP], [CLS, 5, SEP, PAD, PAD], [CLS, UNK, SEP, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]


def test_truncation_keeps_cls_and_sep_within_max_length(encoder: TextEncoder) -> None:
    ids, mask = encoder.tokenize(["red pipette glass"], max_length=4)
    assert ids.tolist() == [[CLS, 4, 6, SEP]]
    assert mask.tolist() == [[1, 1, 1, 1]]
    # The setting is per call, not sticky.
    ids, _ = encoder.tokenize(["red pipette glass"], max_length=8)
    assert ids.tolist() == [[CLS, 4, 6, 7, 5, SEP]]


def test_encode_is_the_masked_mean_of_token_vectors_normalised_in_input_order(encoder: TextEncoder) -> None:
    texts = ["glass", "red pipette glass", "red", "pipette", "red red red glass glass", "flask"]
    tokens = [
        [CLS, 5, SEP],
        [CLS, 4, 6, 7, 5, SEP],
        [CLS, 4, SEP],
        [CLS, 6, 7, SEP],
        [CLS, 4, 4, 4, 5, 5, SEP],
        [CLS, UNK, SEP],
    ]
    expected = np.stack([expected_embedding(t) for t in tokens])
    for batch_size in (1, 2, 4, 64):  # different paddings and batch splits, same answer
        got = encoder.encode(texts, batch_size=batch_size)
        assert got.dtype == np.float32
        assert got.shape == (len(texts), DIM)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(encoder.encode(texts), axis=1), 1.0, atol=1e-6)


def test_encode_of_nothing_is_an_empty_matrix(encoder: TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, DIM)


def test_bad_arguments_are_refused(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("red glass")
    with pytest.raises(ValueError, match="max_length"):
        encoder.encode(["red"], max_length=129)  # the graph's metadata allows 128 positions
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["red"], batch_size=0)


def test_describe_reports_the_graph_and_the_tokenizer(encoder: TextEncoder, onnx_path: Path) -> None:
    info = encoder.describe()
    assert info["dim"] == DIM
    assert info["max_positions"] == 128
    assert info["vocab_size"] == len(VOCAB)
    assert info["threads"] == 1
    assert info["onnx_bytes"] == onnx_path.stat().st_size


def test_pad_batch() -> None:
    ids, mask = pad_batch([[5, 6], [7], [8, 9, 10]], pad_id=0)
    assert ids.tolist() == [[5, 6, 0], [7, 0, 0], [8, 9, 10]]
    assert mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]


def test_torch_pooling_averages_over_the_mask_and_normalises() -> None:
    torch = pytest.importorskip("torch")
    from shoprec.training.text_encoder import l2_normalize, masked_mean_pool

    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [1e6, -1e6]], [[0.0, 6.0], [-1e6, 1e6], [1e6, 1e6]]], dtype=torch.float32
    )
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pooled = masked_mean_pool(hidden, mask)
    assert pooled.tolist() == [[2.0, 3.0], [0.0, 6.0]]
    normed = l2_normalize(pooled)
    np.testing.assert_allclose(normed.numpy(), [[2 / 13**0.5, 3 / 13**0.5], [0.0, 1.0]], rtol=1e-6)


def test_serving_package_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, shoprec.text, shoprec.text.encoder\n"
        "bad = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
