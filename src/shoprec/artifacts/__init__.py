"""Versioned, checksummed artifact bundles shared by training (writer) and serving (reader).

``specs`` describes the models of the pipeline and names the files, ``manifest`` the manifest schema and the
content version, ``writer`` writes bundles atomically and ``reader`` verifies and loads them.
"""

from shoprec.artifacts.manifest import (
    DATASET_FIELDS,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    content_version,
    dataset_summary,
)
from shoprec.artifacts.reader import Bundle, load_bundle, read_manifest, sha256_file, verify_bundle
from shoprec.artifacts.specs import (
    CATALOG,
    FUSION,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    MANIFEST,
    POPULARITY,
    RANKER_INT8_ONNX,
    RANKER_ONNX,
    REQUIRED_FILES,
    SEARCH_INDEX_DIR,
    TEXT_EMBEDDINGS,
    TEXT_ENCODER_ONNX,
    TEXT_TOKENIZER,
    EmbeddingSpec,
    FusionSpec,
    ItemCFSpec,
    PipelineSpec,
    PopularitySpec,
    RankerSpec,
    RecallSpec,
    SearchIndexSpec,
    TextSpec,
)
from shoprec.artifacts.writer import BundleWriter

__all__ = [
    "CATALOG",
    "DATASET_FIELDS",
    "FUSION",
    "ITEMCF",
    "ITEM_EMBEDDINGS",
    "ITEM_IDS",
    "MANIFEST",
    "POPULARITY",
    "RANKER_INT8_ONNX",
    "RANKER_ONNX",
    "REQUIRED_FILES",
    "SCHEMA_VERSION",
    "SEARCH_INDEX_DIR",
    "TEXT_EMBEDDINGS",
    "TEXT_ENCODER_ONNX",
    "TEXT_TOKENIZER",
    "Bundle",
    "BundleWriter",
    "EmbeddingSpec",
    "FileEntry",
    "FusionSpec",
    "ItemCFSpec",
    "Manifest",
    "PipelineSpec",
    "PopularitySpec",
    "RankerSpec",
    "RecallSpec",
    "SearchIndexSpec",
    "TextSpec",
    "content_version",
    "dataset_summary",
    "load_bundle",
    "read_manifest",
    "sha256_file",
    "verify_bundle",
]
