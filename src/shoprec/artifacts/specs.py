"""Typed descriptions of the models in a bundle: what the recommendation pipeline needs to rebuild itself.

The manifest's ``pipeline`` object (schema version 2) is a :class:`PipelineSpec`: one spec per model of the
pipeline (popularity, item-CF, item embeddings, the sequence ranker, the fusion of their scores) plus the
recall budget. Training writes it; serving reads it and builds the same pipeline that offline evaluation
ran. Every field is validated when the manifest is read, and an error names the field
(``manifest field 'pipeline.ranker.max_len' ...``).

This module describes files and parameters only; the code that runs the models lives in ``recall/``,
``ranking/`` and ``pipeline/`` and reads these specs, never the other way round.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# --- file names: writer (training) and loader (serving) agree on these ---------------------------------
MANIFEST: Final = "manifest.json"
ITEM_IDS: Final = "item_ids.json"  # JSON list of the dataset's item ids (strings); position = item index
POPULARITY: Final = "popularity.npy"  # float32 [n_items]
ITEMCF: Final = "itemcf.npz"  # arrays "indices" int32 [n_items, k] (-1 padded), "scores" float32 [n_items, k]
ITEM_EMBEDDINGS: Final = "item_embeddings.npy"  # float32 [n_items, d]
CATALOG: Final = "catalog.jsonl"  # optional; one JSON object per line with "item_id" plus metadata
RANKER_ONNX: Final = "ranker.onnx"  # optional; the ranking model, found with Bundle.file(RANKER_ONNX)
RANKER_INT8_ONNX: Final = "ranker.int8.onnx"  # optional; its int8 dynamically quantised variant
FUSION: Final = "fusion.npz"  # optional; the stacking model's arrays (see shoprec.ranking.trees)
TEXT_ENCODER_ONNX: Final = "text_encoder.int8.onnx"  # optional; the sentence encoder of queries (int8)
TEXT_TOKENIZER: Final = "tokenizer.json"  # optional; its tokenizer (Hugging Face ``tokenizers`` JSON)
TEXT_EMBEDDINGS: Final = "text_embeddings.npy"  # optional; float32 [n_items, dim], unit rows
ITEM_EMBEDDINGS_ANN: Final = "item_embeddings.ivf.npy"  # optional; IVF index: the item vectors by list
TEXT_EMBEDDINGS_ANN: Final = "text_embeddings.ivf.npy"  # optional; IVF index: the text vectors by list
# (each with its lists, "<stem>.lists.npz": see IvfIndexSpec; bundles before it hold usearch HNSW graphs,
# "item_embeddings.usearch" and "text_embeddings.usearch": HnswIndexSpec)
SEARCH_INDEX_DIR: Final = "search"  # optional; the prebuilt lexical search index (SearchIndexSpec.files)
CATALOG_COLUMNS_DIR: Final = "catalog"  # optional; the catalogue as arrays, memory-mapped at load
CATALOG_TABLES: Final = "catalog/tables.json"  # its small tables (names, paths); marks a columnar catalogue
CATALOG_COLUMNS: Final = (
    "ids",  # <U [n_items]: item ids (the same list as item_ids.json)
    "id_order",  # int64 [n_items]: item indices in the ids' string order (binary search by id)
    "titles.data",  # uint8: UTF-8 titles back to back ...
    "titles.offsets",  # int64 [n_items + 1]: ... title i is data[offsets[i]:offsets[i + 1]]
    "descriptions.data",
    "descriptions.offsets",
    "brands",  # int32 [n_items]: index into tables "brands" (the item's spelling), -1 none
    "brand_codes",  # int32 [n_items]: index into tables "brand_names" (case-insensitive), -1 none
    "paths",  # int32 [n_items]: index into tables "paths" (category path, root first), -1 none
    "leaf_codes",  # int32 [n_items]: index into tables "leaf_names", -1 none
    "available",  # bool [n_items]
    "listed",  # bool [n_items]
    "prices",  # float64 [n_items], nan unknown
    "category_offsets",  # int64 [K + 1]: items of tables "category_keys"[k] are ...
    "category_items",  # int64: ... category_items[category_offsets[k]:category_offsets[k + 1]]
    "brand_offsets",  # likewise for tables "brand_keys"
    "brand_items",
)
"""The arrays of a columnar catalogue, each ``catalog/<name>.npy`` (``shoprec.catalog.CatalogIndex``
``.to_columns``); written by ``BundleWriter.commit`` from ``catalog.jsonl``, which bundles keep."""

REQUIRED_FILES: Final = (ITEM_IDS, POPULARITY, ITEMCF, ITEM_EMBEDDINGS)

# --- names of the pipeline's score sources ---------------------------------------------------------------
RANKER: Final = "ranker"
ITEMCF_CHANNEL: Final = "itemcf"
EMBEDDING_CHANNEL: Final = "embedding"
POPULARITY_CHANNEL: Final = "popularity"
CONTENT_CHANNEL: Final = "content"
CHANNELS: Final = (ITEMCF_CHANNEL, EMBEDDING_CHANNEL, POPULARITY_CHANNEL, CONTENT_CHANNEL)
"""The recall channels, in the order the pipeline asks them (their order breaks ties in the merge)."""
SOURCES: Final = (RANKER, *CHANNELS)
"""Every score a fusion can weigh: the ranker's and each recall channel's."""

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Decay = Annotated[float, Field(gt=0.0, le=1.0)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PopularitySpec(_Spec):
    """Interaction counts of the training data: the cold-start list and a small recall channel."""

    file: str = POPULARITY


class ItemCFSpec(_Spec):
    """The item-to-item neighbour table and how a user's history is scored against it.

    ``max_history`` and ``decay`` are the scoring parameters (``ItemCFNeighbours.score_histories``); the
    fitting parameters are recorded for reference (they are baked into the table).
    """

    file: str = ITEMCF
    max_history: PositiveInt = 20
    decay: Decay = 0.7
    fit: dict[str, float | int | None] = Field(default_factory=dict)


class IvfIndexSpec(_Spec):
    """An inverted-file index over a vector table, for large catalogues (``shoprec.recall.ivf``, pure
    numpy): ``n_lists`` k-means centroids of the table's vectors augmented with one coordinate that
    equalises their norms (``radius``: the largest norm), fitted on ``sample_per_list`` items per list for
    at most ``iterations`` rounds from ``seed``; the vectors stored ordered by list in ``file`` (float32
    ``.npy``, memory-mapped at load) and the centroids, list offsets and item ids in ``lists_file``
    (``.npz``, in the same folder). A query scans the ``nprobe`` lists whose centroids score highest."""

    kind: Literal["ivf-flat"] = "ivf-flat"
    file: str
    lists_file: str
    n_items: PositiveInt
    dim: PositiveInt
    n_lists: PositiveInt
    nprobe: PositiveInt
    sample_per_list: PositiveInt
    iterations: PositiveInt
    seed: Annotated[int, Field(ge=0)] = 0
    radius: NonNegativeFloat = 1.0

    @model_validator(mode="after")
    def _consistent(self) -> IvfIndexSpec:
        if self.n_lists > self.n_items:
            raise ValueError(f"n_lists ({self.n_lists}) exceeds n_items ({self.n_items})")
        if self.lists_file.rpartition("/")[0] != self.file.rpartition("/")[0]:
            raise ValueError(f"lists_file {self.lists_file!r} must lie in the folder of file {self.file!r}")
        return self


class HnswIndexSpec(_Spec):
    """A usearch HNSW graph over a vector table (the ANN index of bundles written before the IVF index):
    the table's vectors plus one coordinate that equalises their norms (``radius``: the largest norm),
    stored as ``dtype``, a graph of ``connectivity`` links per node built with ``expansion_add`` and
    searched with ``expansion_search`` candidates. Served only where usearch is installed."""

    kind: Literal["usearch-hnsw"] = "usearch-hnsw"
    file: str
    n_items: PositiveInt
    dim: PositiveInt
    dtype: Literal["f32", "f16", "i8"] = "f16"
    connectivity: PositiveInt = 32
    expansion_add: PositiveInt = 200
    expansion_search: PositiveInt = 500
    radius: NonNegativeFloat = 1.0


AnnIndexSpec = Annotated[IvfIndexSpec | HnswIndexSpec, Field(discriminator="kind")]
"""The ANN index of a vector table (``shoprec.recall.ann``), told apart by ``kind``."""


class EmbeddingSpec(_Spec):
    """Item vectors (the Transformer's item table) and the recency-weighted query over recent items;
    ``ann``: their ANN index (large catalogues only; exact search without one)."""

    file: str = ITEM_EMBEDDINGS
    last: PositiveInt = 5
    decay: Decay = 0.7
    ann: AnnIndexSpec | None = None


RankerVariantKind = Literal[
    "fp32", "fp16", "int8-dynamic", "int8-static", "pruned-unstructured", "pruned-structured", "distilled"
]

FP32_VARIANT: Final = "fp32"
INT8_VARIANT: Final = "int8"
VariantName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class RankerVariantSpec(_Spec):
    """One more ONNX file of the same ranker (same inputs and output), made smaller or faster: ``kind``
    says how (``docs/compression.md``)."""

    file: str
    kind: RankerVariantKind


class RankerSpec(_Spec):
    """The sequence model that scores candidates: an ONNX graph with inputs ``item_seq`` int64
    ``[batch, max_len]`` (item index + 1, left-padded with 0) and ``candidates`` int64 ``[batch, C]``
    (item index + 1), output ``scores`` float32 ``[batch, C]``.

    Its variants (:meth:`variant_files`) are ``fp32`` (``file``), ``int8`` (``int8_file``, when there is
    one) and those in ``variants``; serving loads ``default_variant`` unless ``SHOPREC_RANKER_VARIANT``
    names another.
    """

    kind: Literal["sasrec"] = "sasrec"
    file: str = RANKER_ONNX
    int8_file: str | None = RANKER_INT8_ONNX
    max_len: PositiveInt = 50
    variants: dict[VariantName, RankerVariantSpec] = Field(default_factory=dict)
    default_variant: VariantName = FP32_VARIANT

    @model_validator(mode="after")
    def _known_default(self) -> RankerSpec:
        for name in (FP32_VARIANT, INT8_VARIANT):
            if name in self.variants:
                raise ValueError(f"variant {name!r} is implied by 'file'/'int8_file' and cannot be listed")
        if self.default_variant not in self.variant_files():
            raise ValueError(
                f"default_variant {self.default_variant!r} is not one of the variants "
                f"({', '.join(self.variant_files())})"
            )
        return self

    def variant_files(self) -> dict[str, str]:
        """Every variant's file name, by variant name (``fp32`` first)."""
        files = {FP32_VARIANT: self.file}
        if self.int8_file is not None:
            files[INT8_VARIANT] = self.int8_file
        files.update({name: v.file for name, v in self.variants.items()})
        return files

    def variant_file(self, name: str | None) -> str:
        """The file of variant ``name`` (``None``: ``default_variant``); ``ValueError`` naming the variants
        there are when the ranker has no such variant."""
        chosen = self.default_variant if name is None else name
        files = self.variant_files()
        if chosen not in files:
            raise ValueError(f"no ranker variant {chosen!r}; this bundle has {', '.join(files)}")
        return files[chosen]


class RecallSpec(_Spec):
    """How many candidates each channel may contribute (``quotas``), how their min-max normalised scores
    are weighted in the merge (``weights``), and the total candidate ``budget`` handed to ranking."""

    budget: PositiveInt = 300
    quotas: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: {
            ITEMCF_CHANNEL: 200,
            EMBEDDING_CHANNEL: 150,
            POPULARITY_CHANNEL: 100,
            CONTENT_CHANNEL: 100,
        }
    )
    weights: dict[str, NonNegativeFloat] = Field(
        default_factory=lambda: {
            ITEMCF_CHANNEL: 1.0,
            EMBEDDING_CHANNEL: 0.6,
            POPULARITY_CHANNEL: 0.2,
            CONTENT_CHANNEL: 0.6,
        }
    )

    @model_validator(mode="after")
    def _known_channels(self) -> RecallSpec:
        for name in (*self.quotas, *self.weights):
            if name not in CHANNELS:
                raise ValueError(f"unknown recall channel {name!r}; expected one of {', '.join(CHANNELS)}")
        return self


FusionKind = Literal["ranker", "weighted", "stacking"]


class FusionSpec(_Spec):
    """How the final score of a candidate is made from the ranker's and the channels' scores.

    ``ranker``: the ranker's score alone (the recall scores only choose the candidates).
    ``weighted``: ``sum_s weights[s] * minmax_s(score)`` over the sources ``s`` (ranker and channels),
    min-max normalised over the user's candidates; equal weights and weights tuned on validation targets
    are both of this kind (``variant`` says which).
    ``stacking``: a learned second-stage ranker (a tree ensemble in ``file``) over the per-candidate
    ``features``, in that column order.
    """

    kind: FusionKind = "ranker"
    variant: str = ""
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    file: str | None = None
    features: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> FusionSpec:
        if self.kind == "weighted":
            unknown = [s for s in self.weights if s not in SOURCES]
            if unknown:
                raise ValueError(f"unknown score source(s) {unknown}; expected {', '.join(SOURCES)}")
            if not any(w > 0 for w in self.weights.values()):
                raise ValueError("weighted fusion needs at least one positive weight")
        if self.kind == "stacking" and (not self.file or not self.features):
            raise ValueError("stacking fusion needs 'file' and 'features'")
        return self

    @property
    def uses_ranker(self) -> bool:
        """Whether the fused score needs the ranker's scores (else the ranker is not called)."""
        if self.kind == "weighted":
            return self.weights.get(RANKER, 0.0) > 0
        if self.kind == "stacking":
            return any(name.startswith(RANKER) for name in self.features)
        return True


ItemText = Literal["title_brand_categories"]


class TextSpec(_Spec):
    """Sentence embeddings of the items' texts and the encoder that embeds queries into the same space
    (the semantic search channel and the content recall channel, which finds items whose text is close to
    the recent items' texts).

    ``item_text`` names how an item's text was made before embedding (``title_brand_categories``: the
    title, the brand and the last two category names, joined by ". "); ``item_max_length`` and
    ``query_max_length`` are the token limits ([CLS] and [SEP] included) of items and queries.
    """

    model: str
    dim: PositiveInt
    encoder_file: str = TEXT_ENCODER_ONNX
    tokenizer_file: str = TEXT_TOKENIZER
    embeddings_file: str = TEXT_EMBEDDINGS
    item_text: ItemText = "title_brand_categories"
    item_max_length: PositiveInt = 128
    query_max_length: PositiveInt = 64
    last: PositiveInt = 5
    """Content channel: how many of the most recent items make the user's text query vector."""
    decay: Decay = 0.7
    """Content channel: weight ``decay ** age`` of each of those items (0 = the newest)."""
    ann: AnnIndexSpec | None = None
    """The text vectors' ANN index (large catalogues only; exact search without one)."""


SEARCH_FIELDS: Final = ("title", "brand", "categories", "description")
BM25S_FILES: Final = (
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "vocab.index.json",
    "params.index.json",
)
"""What ``bm25s.BM25.save`` writes for one index (no corpus)."""
SPELLING_FILE: Final = "spelling.json"


class SearchFieldSpec(_Spec):
    """One field of the lexical index: its weight in the item's score and its documents' mean length in
    tokens (what scoring an item outside the index against the index's statistics needs)."""

    weight: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    mean_length: NonNegativeFloat


class SearchIndexSpec(_Spec):
    """The lexical search index built at training time (``shoprec.search.bm25.Bm25Search.save``): one
    ``bm25s`` index per field under ``dir/<field>/`` (``BM25S_FILES``, loaded memory-mapped) and the
    spelling corrector's vocabulary (``dir/spelling.json``, when ``spelling``).

    ``analyzer`` names the tokenisation the index was built with; serving builds the index itself when its
    own analyzer differs (or the bundle has no index), so a bundle never serves tokens its queries cannot
    match."""

    kind: Literal["bm25s"] = "bm25s"
    dir: str = SEARCH_INDEX_DIR
    analyzer: str
    n_items: PositiveInt
    k1: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    b: Annotated[float, Field(ge=0.0, le=1.0)]
    stem_weight: NonNegativeFloat
    fields: dict[str, SearchFieldSpec]
    spelling: bool

    @model_validator(mode="after")
    def _known_fields(self) -> SearchIndexSpec:
        if not self.fields:
            raise ValueError("a search index needs at least one field")
        for name in self.fields:
            if name not in SEARCH_FIELDS:
                raise ValueError(
                    f"unknown search field {name!r}; expected some of {', '.join(SEARCH_FIELDS)}"
                )
        return self

    def files(self) -> list[str]:
        """Every file of the index, as the manifest lists them."""
        names = [f"{self.dir}/{field}/{name}" for field in self.fields for name in BM25S_FILES]
        return [*names, f"{self.dir}/{SPELLING_FILE}"] if self.spelling else names


class PipelineSpec(_Spec):
    """Every model of the recommendation pipeline and how they are combined (the manifest's ``pipeline``)."""

    popularity: PopularitySpec = Field(default_factory=PopularitySpec)
    itemcf: ItemCFSpec = Field(default_factory=ItemCFSpec)
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    ranker: RankerSpec | None = Field(default_factory=RankerSpec)
    recall: RecallSpec = Field(default_factory=RecallSpec)
    fusion: FusionSpec = Field(default_factory=FusionSpec)
    text: TextSpec | None = None
    search: SearchIndexSpec | None = None
    """The prebuilt lexical search index (bundles written before it had none: serving builds one)."""

    @model_validator(mode="after")
    def _ranker_for_fusion(self) -> PipelineSpec:
        if self.ranker is None and self.fusion.uses_ranker:
            raise ValueError(f"fusion '{self.fusion.kind}' uses the ranker, but the pipeline has none")
        return self
