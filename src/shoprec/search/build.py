"""The search index a bundle serves: hybrid (BM25 + semantic) when the bundle has text embeddings and the
semantic channel is on, BM25 alone otherwise. Built on the first search (or in a Lambda's init phase)."""

from __future__ import annotations

from shoprec.artifacts.reader import Bundle
from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError
from shoprec.search.bm25 import Bm25Search, SearchRecall


def build_search(
    bundle: Bundle, catalog: CatalogIndex, *, semantic: bool = True, threads: int = 1
) -> SearchRecall:
    """The search of ``bundle`` over ``catalog``; ``ArtifactError`` when its text encoder cannot be loaded."""
    lexical = Bm25Search.build(catalog)
    spec = bundle.pipeline.text
    if not semantic or spec is None or bundle.text_embeddings is None:
        return lexical
    # Imported here: only a bundle with text embeddings needs tokenizers and the encoder.
    from shoprec.search.dense import DenseSearch
    from shoprec.search.hybrid import HybridSearch
    from shoprec.text import TextEncoder

    encoder_path = bundle.file(spec.encoder_file)
    try:
        encoder = TextEncoder.from_files(encoder_path, bundle.file(spec.tokenizer_file), threads=threads)
    except Exception as exc:  # onnxruntime and tokenizers raise their own exception types
        raise ArtifactError(
            f"{bundle.path}: cannot load the text encoder '{spec.encoder_file}': {exc}"
        ) from None
    if encoder.dim != spec.dim:
        raise ArtifactError(
            f"{bundle.path}: the text encoder embeds into {encoder.dim} dimensions, "
            f"the manifest says {spec.dim}"
        )
    leaves = [path[-1] if path else "" for path in catalog.categories]
    dense = DenseSearch(encoder, bundle.text_embeddings, leaves, query_max_length=spec.query_max_length)
    return HybridSearch(lexical, dense)
