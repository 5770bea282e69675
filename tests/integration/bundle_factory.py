"""Builds a small but real artifact bundle from the Amazon Scientific data, fast enough for a test session.

Popularity and item-CF are fitted on the real interactions; the ranker is a tiny, randomly initialised
SASRec (nothing is trained) exported to ONNX, so serving code runs the real graph on the real item ids.
Reused by integration and end-to-end tests through the ``bundle_dir`` fixture or :func:`build_bundle`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shoprec.artifacts import (
    CATALOG,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    ITEMCF,
    POPULARITY,
    RANKER_ONNX,
    BundleWriter,
    FusionSpec,
    Manifest,
    PipelineSpec,
    RankerSpec,
    dataset_summary,
)
from shoprec.catalog import CatalogIndex
from shoprec.data import Dataset, leave_one_out, load_dataset
from shoprec.recall import fit_itemcf, fit_popularity
from shoprec.search.build import write_search_index
from shoprec.training.export import export_onnx
from shoprec.training.sasrec import SASRec, SASRecConfig
from shoprec.training.text_encoder import embed_catalog

SCIENTIFIC = "amazon-scientific"
HIDDEN = 16
MAX_LEN = 20


def default_dataset_dir() -> Path:
    """Amazon Scientific under ``$SHOPREC_DATA_ROOT`` or the repository's sibling ``shared/data``."""
    env = os.environ.get("SHOPREC_DATA_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root / SCIENTIFIC


def build_bundle(
    out_dir: Path,
    *,
    dataset_dir: Path | None = None,
    hidden: int = HIDDEN,
    max_len: int = MAX_LEN,
    seed: int = 0,
    with_catalog: bool = True,
    text: bool = False,
    search_index: bool = False,
) -> Manifest:
    """Write a bundle for Amazon Scientific (or ``dataset_dir``) to ``out_dir`` and return its manifest.

    ``text`` adds the real sentence encoder and the items' text embeddings (as ``shoprec train`` does,
    with items cut at 64 tokens to save time: about 30 s), so that search is the served hybrid search.
    ``search_index`` adds the prebuilt BM25 index (as ``shoprec train`` does; without it serving builds one).
    """
    ds = load_dataset(dataset_dir or default_dataset_dir())
    history = leave_one_out(ds).train_with_valid()
    popularity = fit_popularity(history, ds.n_items)
    itemcf = fit_itemcf(history, ds.n_items)
    torch.manual_seed(seed)
    cfg = SASRecConfig(n_items=ds.n_items, hidden=hidden, blocks=1, heads=1, max_len=max_len, dropout=0.0)
    model = SASRec(cfg).eval()
    with BundleWriter(out_dir) as writer:
        export_onnx(model, writer.path_for(RANKER_ONNX))
        writer.add_json(ITEM_IDS, ds.item_ids)
        writer.add_npy(POPULARITY, popularity)
        writer.add_npz(ITEMCF, {"indices": itemcf.indices, "scores": itemcf.scores})
        writer.add_npy(ITEM_EMBEDDINGS, model.item_table().detach().numpy().astype(np.float32))
        spec = PipelineSpec(ranker=RankerSpec(max_len=max_len, int8_file=None), fusion=FusionSpec())
        if with_catalog and ds.catalog is not None:
            rows = _catalog_rows(ds)
            writer.add_jsonl(CATALOG, rows)
            catalog = CatalogIndex.build(ds.item_ids, {row["item_id"]: row for row in rows})
            if text:
                spec = spec.model_copy(
                    update={"text": embed_catalog(catalog, writer, item_max_length=64).spec}
                )
            if search_index:
                spec = spec.model_copy(update={"search": write_search_index(catalog, writer)})
        elif text or search_index:
            raise ValueError("text embeddings and the search index need the catalogue")
        return writer.commit(
            dataset=dataset_summary(ds),
            hyperparameters={"transformer": cfg.to_dict(), "trained": False},
            metrics={},
            pipeline=spec,
        )


def _catalog_rows(ds: Dataset) -> list[dict[str, Any]]:
    assert ds.catalog is not None
    return [
        {
            "item_id": item_id,
            "title": meta.title,
            "brand": meta.brand,
            "categories": list(meta.categories),
            "price": meta.price,
        }
        for item_id in ds.item_ids
        if (meta := ds.catalog.get(item_id)) is not None
    ]
