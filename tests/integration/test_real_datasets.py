"""Loads the real datasets under ../shared/data (see /work/shared/data/README.md) and checks their
published statistics. Skipped when the data folder is absent."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from shoprec.data import leave_one_out, load_dataset

DATA_ROOT = Path(
    os.environ.get("SHOPREC_DATA_ROOT") or Path(__file__).resolve().parents[3] / "shared" / "data"
)
SCIENTIFIC = DATA_ROOT / "amazon-scientific"
BEAUTY = DATA_ROOT / "amazon-beauty"

pytestmark = pytest.mark.skipif(
    not DATA_ROOT.is_dir(),
    reason=f"real data folder {DATA_ROOT} is absent (set SHOPREC_DATA_ROOT to run these tests)",
)


def test_scientific_loads_with_published_counts() -> None:
    ds = load_dataset(SCIENTIFIC)
    assert ds.fmt == "amazon-json"
    assert (ds.n_items, ds.n_users, ds.n_interactions) == (4344, 8317, 58492)
    lengths = [len(s) for s in ds.sequences]
    assert (min(lengths), max(lengths)) == (5, 78)
    assert ds.item_ids[:3] == ["0", "1", "2"]
    assert ds.item_ids[-1] == "4343"


def test_scientific_categories_keep_names_with_commas_intact() -> None:
    ds = load_dataset(SCIENTIFIC)
    assert ds.catalog is not None
    assert len(ds.catalog) == 4344
    with_tapes = [m for m in ds.catalog.values() if "Tapes, Adhesives & Sealants" in m.categories]
    assert len(with_tapes) > 100
    for meta in with_tapes:
        assert meta.categories[:2] == ("Industrial & Scientific", "Tapes, Adhesives & Sealants")
    names = {n for m in ds.catalog.values() for n in m.categories}
    assert "Hydraulics, Pneumatics & Plumbing" in names
    assert "Adhesives & Sealants" not in names
    assert not any(n != n.strip() or not n for n in names)
    assert sum(1 for m in ds.catalog.values() if m.description) == 4221
    assert sum(1 for m in ds.catalog.values() if m.brand) == 4332


def test_beauty_loads_fast_with_published_counts() -> None:
    start = time.perf_counter()
    ds = load_dataset(BEAUTY / "sequences.txt")
    elapsed = time.perf_counter() - start
    assert ds.fmt == "sequences"
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (22363, 12101, 198502)
    assert ds.item_ids[0] == "1"
    assert ds.item_ids[-1] == "12101"
    assert elapsed < 2.0, f"loading Beauty took {elapsed:.2f} s"


def test_beauty_leave_one_out_evaluates_every_user() -> None:
    ds = load_dataset(BEAUTY)
    split = leave_one_out(ds)
    assert len(split.test_users) == 22363
    assert len(split.valid_users) == 22363
    assert split.n_train_interactions == 198502 - 2 * 22363
    assert np.array_equal(split.test_targets, np.array([s[-1] for s in ds.sequences]))
