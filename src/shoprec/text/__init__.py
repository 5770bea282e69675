"""Text embeddings for search: a sentence encoder served with ``tokenizers`` and onnxruntime (no torch)."""

from shoprec.text.encoder import TextEncoder, pad_batch

__all__ = ["TextEncoder", "pad_batch"]
