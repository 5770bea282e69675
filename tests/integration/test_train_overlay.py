"""``shoprec train --overlay``: the live catalogue's items join the bundle (a tiny generated shop, briefly
trained, so that the run takes seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from shoprec.adapters.local.sqlite_items import SqliteItemStore
from shoprec.artifacts import load_bundle
from shoprec.catalog import CatalogIndex
from shoprec.cli import app
from shoprec.items import CatalogItem

TINY = ["--no-text", "--hidden", "8", "--max-epochs", "1", "--patience", "1", "--threads", "1"]
N_ITEMS = 150  # the sampled protocol needs 99 items each user never saw


def write_shop(folder: Path) -> Path:
    rng = random.Random(1)
    items = [f"i{n}" for n in range(N_ITEMS)]
    folder.mkdir()
    rows = ["user_id,item_id,timestamp"]
    for u in range(60):
        taste = items[(u % 5) * 20 : (u % 5) * 20 + 30]
        rows += [f"u{u},{rng.choice(taste)},{1000 * u + t}" for t in range(6)]
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    (folder / "catalog.jsonl").write_text(
        "".join(json.dumps({"item_id": i, "title": f"Item {i}", "brand": "Acme"}) + "\n" for i in items)
    )
    return folder


@pytest.mark.train
@pytest.mark.slow
def test_train_with_an_overlay_bundles_the_live_catalogues_items(tmp_path: Path) -> None:
    shop = write_shop(tmp_path / "shop")
    store = SqliteItemStore(tmp_path / "state.db")
    store.put(CatalogItem("new-1", title="Brand new caliper", categories=("Tools", "Measuring"), price=9.5))
    store.put(CatalogItem("i1", title="Item i1, renamed", brand="Zeta"))
    store.delist("i3")
    store.delist("gone")  # never put and unknown to the data: left out
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--dataset",
            str(shop),
            "--out",
            str(out),
            "--overlay",
            f"sqlite:///{tmp_path}/state.db",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "overlay: 4 item(s)" in result.output
    bundle = load_bundle(out)
    assert bundle.n_items == N_ITEMS + 1
    report = bundle.file("report.html").read_text()  # listed in the manifest: checksummed, published
    assert report.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in report
    assert bundle.catalog is not None
    assert bundle.catalog["new-1"]["title"] == "Brand new caliper"
    assert bundle.catalog["new-1"]["categories"] == ["Tools", "Measuring"]
    assert bundle.catalog["i1"]["brand"] == "Zeta"
    assert bundle.catalog["i3"]["title"] == "Item i3"  # its interactions and row stay
    assert bundle.catalog["i3"]["available"] is False  # ... and it is never served
    catalog = CatalogIndex.from_bundle(bundle)
    assert not catalog.available[catalog.index("i3")]
    assert catalog.available[catalog.index("new-1")]
    assert "gone" not in bundle.catalog


@pytest.mark.parametrize(
    ("dsn", "message"),
    [("sqlite:///{tmp}/missing.db", "no such sqlite file"), ("redis://localhost", "unknown backend")],
)
def test_an_overlay_that_cannot_be_read_stops_before_training(tmp_path: Path, dsn: str, message: str) -> None:
    args = [
        "train",
        "--dataset",
        str(tmp_path),
        "--out",
        str(tmp_path / "b"),
        "--overlay",
        dsn.format(tmp=tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "b").exists()
