"""Reading a neighbour table fitted outside ``shoprec train``: the folder the Spark job of ``shoprec sagemaker
itemcf`` writes (``sagemaker/processing/itemcf_spark.py``: ``itemcf.npz``, ``item_ids.json``,
``itemcf.json``), checked against the dataset it is meant for.

``read_neighbour_table(folder, dataset.item_ids)`` returns the ``ItemCFNeighbours`` that
``fit_itemcf(split.train_with_valid(), dataset.n_items)`` would have returned, so a bundle can hold it in
place of its own fit (``BundleWriter.add_npz(ITEMCF, {"indices": ..., "scores": ...})``). numpy only.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.errors import ArtifactError
from shoprec.recall.itemcf import ItemCFNeighbours

ITEMCF_FILE = "itemcf.npz"
ITEM_IDS_FILE = "item_ids.json"
META_FILE = "itemcf.json"


def read_neighbour_table(folder: str | Path, item_ids: Sequence[str] | None = None) -> ItemCFNeighbours:
    """The table in ``folder``; with ``item_ids`` (the dataset's, in its order) the table's rows must be
    those items in that order, else ``ArtifactError`` says where they part."""
    root = Path(folder)
    npz, ids_file = root / ITEMCF_FILE, root / ITEM_IDS_FILE
    for path in (npz, ids_file):
        if not path.is_file():
            raise ArtifactError(
                f"{root}: no '{path.name}' (a neighbour table folder holds {ITEMCF_FILE} and {ITEM_IDS_FILE})"
            )
    try:
        with np.load(npz, allow_pickle=False) as arrays:
            indices, scores = arrays["indices"], arrays["scores"]
    except KeyError as exc:
        raise ArtifactError(f"{root}: '{ITEMCF_FILE}' lacks array {exc}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: '{ITEMCF_FILE}' is not a readable .npz archive: {exc}") from None
    try:
        table_ids: Any = json.loads(ids_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root}: '{ITEM_IDS_FILE}' is not JSON: {exc}") from None
    if not isinstance(table_ids, list) or not all(isinstance(i, str) for i in table_ids):
        raise ArtifactError(f"{root}: '{ITEM_IDS_FILE}' must be a JSON list of item id strings")
    if indices.ndim != 2 or indices.shape[0] != len(table_ids):
        raise ArtifactError(
            f"{root}: '{ITEMCF_FILE}' has {indices.shape[0] if indices.ndim else 0} rows for "
            f"{len(table_ids)} items in '{ITEM_IDS_FILE}'"
        )
    if item_ids is not None and list(item_ids) != table_ids:
        if len(item_ids) != len(table_ids):
            where = f"the dataset has {len(item_ids)} items, the table {len(table_ids)}"
        else:
            row = next(i for i, (a, b) in enumerate(zip(item_ids, table_ids, strict=True)) if a != b)
            where = f"row {row} is item {table_ids[row]!r} in the table, {item_ids[row]!r} in the dataset"
        raise ArtifactError(f"{root}: the table was fitted on other items ({where})")
    try:
        return ItemCFNeighbours(indices=indices, scores=scores)
    except ValueError as exc:
        raise ArtifactError(f"{root}: '{ITEMCF_FILE}': {exc}") from None
