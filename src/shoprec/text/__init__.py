"""Text embeddings for search: a sentence encoder served with ``tokenizers`` and onnxruntime (no torch)."""

from shoprec.text.encoder import TextEncoder, pad_batch
from shoprec.text.items import TITLE_BRAND_CATEGORIES, item_text

__all__ = ["TITLE_BRAND_CATEGORIES", "TextEncoder", "item_text", "pad_batch"]
