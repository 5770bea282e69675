"""Sentence embeddings of item texts and search queries: ``tokenizers`` + onnxruntime, no torch.

The graph is an ONNX export of a BERT sentence encoder (``shoprec.training.text_encoder`` writes
all-MiniLM-L6-v2): inputs ``input_ids`` and ``attention_mask`` (int64, [batch, sequence]), output
``sentence_embedding`` (float32, [batch, dim]), already mean-pooled over the mask and L2-normalised, so
the inner product of two embeddings is their cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

INPUT_IDS = "input_ids"
INPUT_ATTENTION_MASK = "attention_mask"
OUTPUT_EMBEDDING = "sentence_embedding"

# Metadata the export writes into the graph (read back by ``describe`` and for the position limit).
META_MODEL = "shoprec.text_encoder.model"
META_DIM = "shoprec.text_encoder.dim"
META_MAX_POSITIONS = "shoprec.text_encoder.max_positions"
META_POOLING = "shoprec.text_encoder.pooling"

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[IntArray, IntArray]:
    """Right-pad token id lists to the longest one: (input_ids, attention_mask), both [n, longest]."""
    longest = max((len(s) for s in sequences), default=0)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


class TextEncoder:
    """Texts → [n, dim] float32 unit vectors, with one onnxruntime session and one tokenizer.

    ``tokenizer.json``'s own padding and truncation (all-MiniLM's pads every text to 128 tokens) are
    replaced: each call truncates to ``max_length`` tokens ([CLS] and [SEP] included) and each batch is
    padded only to its longest text, with texts sorted by length so that batches hold similar lengths.
    Outputs come back in input order. Not safe for concurrent use by several threads (the tokenizer's
    truncation setting is shared); a Lambda environment serves one request at a time.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Tokenizer,
        *,
        onnx_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int = 1,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._onnx_path = onnx_path
        self._tokenizer_path = tokenizer_path
        self._threads = threads
        inputs = {i.name for i in session.get_inputs()}
        if inputs != {INPUT_IDS, INPUT_ATTENTION_MASK}:
            raise ValueError(
                f"the graph's inputs are {sorted(inputs)}, expected input_ids and attention_mask"
            )
        outputs = session.get_outputs()
        if len(outputs) != 1 or outputs[0].name != OUTPUT_EMBEDDING:
            raise ValueError(
                f"the graph's outputs are {[o.name for o in outputs]}, expected ['sentence_embedding']"
            )
        self._meta: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        width = outputs[0].shape[-1]
        self.dim = int(width) if isinstance(width, int) else int(self._meta.get(META_DIM, 0))
        if self.dim <= 0:
            raise ValueError("the graph's output width is unknown (neither static nor in its metadata)")
        self.max_positions = int(self._meta.get(META_MAX_POSITIONS, 512))
        pad_id = tokenizer.token_to_id("[PAD]")
        padding = tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else (pad_id if pad_id is not None else 0)
        self._tokenizer.no_padding()
        self._max_length: int | None = None

    @classmethod
    def from_files(cls, onnx_path: str | Path, tokenizer_path: str | Path, threads: int = 1) -> TextEncoder:
        """Load the graph with ``threads`` intra-op threads (one inter-op thread) and the tokenizer."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        return cls(
            session,
            tokenizer,
            onnx_path=Path(onnx_path),
            tokenizer_path=Path(tokenizer_path),
            threads=threads,
        )

    def _token_ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        if not 2 <= max_length <= self.max_positions:
            raise ValueError(f"max_length must be in [2, {self.max_positions}], got {max_length}")
        if self._max_length != max_length:
            self._tokenizer.enable_truncation(max_length=max_length)
            self._max_length = max_length
        return [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]

    def tokenize(self, texts: Sequence[str], *, max_length: int = 128) -> tuple[IntArray, IntArray]:
        """The graph's inputs for ``texts`` as one batch in input order, padded to the longest text."""
        return pad_batch(self._token_ids(texts, max_length), self.pad_id)

    def encode(self, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> FloatArray:
        """Embeddings [len(texts), dim] float32, unit length, in the order of ``texts``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        token_ids = self._token_ids(texts, max_length)
        out = np.empty((len(token_ids), self.dim), dtype=np.float32)
        # Longest first, so that each batch pads to lengths close to its own.
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad_batch([token_ids[i] for i in rows], self.pad_id)
            (emb,) = self._session.run([OUTPUT_EMBEDDING], {INPUT_IDS: ids, INPUT_ATTENTION_MASK: mask})
            out[rows] = np.asarray(emb, dtype=np.float32)
        return out

    def describe(self) -> dict[str, Any]:
        """What is loaded: files and sizes, width, threads and the graph's metadata."""
        return {
            "model": self._meta.get(META_MODEL, "unknown"),
            "dim": self.dim,
            "max_positions": self.max_positions,
            "pooling": self._meta.get(META_POOLING, "unknown"),
            "onnx_path": str(self._onnx_path) if self._onnx_path else None,
            "onnx_bytes": self._onnx_path.stat().st_size if self._onnx_path else None,
            "tokenizer_path": str(self._tokenizer_path) if self._tokenizer_path else None,
            "vocab_size": self._tokenizer.get_vocab_size(),
            "threads": self._threads,
        }
