"""The search index a bundle serves: hybrid (BM25 + semantic) when the bundle has text embeddings and the
semantic channel is on, BM25 alone otherwise. Made on the first search (or in a Lambda's init phase).

The BM25 index is built at training time (:func:`write_search_index`, the manifest's ``pipeline.search``)
and loaded memory-mapped here (about 30 ms for the 4,344 Scientific items, against about 1 s to tokenise
and index the catalogue); a bundle without one, or with one from another analyzer, gets it built in process.
"""

from __future__ import annotations

import logging

from shoprec.artifacts.reader import Bundle
from shoprec.artifacts.specs import SEARCH_INDEX_DIR, SPELLING_FILE, SearchIndexSpec
from shoprec.artifacts.writer import BundleWriter
from shoprec.catalog import CatalogIndex
from shoprec.errors import ArtifactError
from shoprec.search.bm25 import ANALYZER, Bm25Search, SearchRecall

log = logging.getLogger(__name__)


def write_search_index(catalog: CatalogIndex, writer: BundleWriter) -> SearchIndexSpec | None:
    """Build the BM25 index of ``catalog`` (the bundle's items, as serving indexes them) into the bundle
    being written; its spec for the manifest's ``pipeline.search``, or ``None`` when the catalogue has no
    text to index."""
    if not any(catalog.titles) and not any(catalog.brands) and not any(catalog.categories):
        return None
    index = Bm25Search.build(catalog)
    # The writer hands out file paths (creating their folder); the index writes its own files there.
    directory = writer.path_for(f"{SEARCH_INDEX_DIR}/{SPELLING_FILE}").parent
    return index.save(directory, name=SEARCH_INDEX_DIR)


def lexical_search(bundle: Bundle, catalog: CatalogIndex) -> Bm25Search:
    """The bundle's prebuilt BM25 index (memory-mapped), or one built over ``catalog`` when the bundle has
    none or one from another analyzer; ``ArtifactError`` when a prebuilt index does not fit ``catalog``."""
    spec = bundle.pipeline.search
    if spec is None or spec.analyzer != ANALYZER:
        why = "has no search index" if spec is None else f"has a search index of analyzer {spec.analyzer!r}"
        log.info("bundle %s %s; building it (analyzer %s)", bundle.path, why, ANALYZER)
        return Bm25Search.build(catalog)
    if spec.n_items != catalog.n_items:
        raise ArtifactError(
            f"{bundle.path}: the search index has {spec.n_items} items, the catalogue {catalog.n_items}"
        )
    return Bm25Search.load(bundle.path / spec.dir, spec)


def build_search(
    bundle: Bundle, catalog: CatalogIndex, *, semantic: bool = True, threads: int = 1
) -> SearchRecall:
    """The search of ``bundle`` over ``catalog`` (its items: the live catalogue extends it,
    :mod:`shoprec.search.live`); ``ArtifactError`` when its search index or text encoder cannot be loaded."""
    lexical = lexical_search(bundle, catalog)
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
