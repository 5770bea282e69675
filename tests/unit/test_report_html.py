"""report.html: one self-contained, well-formed page built from a bundle's JSON files, and
``shoprec report`` that rebuilds it for a bundle folder."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.training.report_html import file_sizes, html_report_for_bundle, render_html_report

pytest.importorskip("matplotlib")

VOID = {"meta", "img", "br", "hr", "link", "input"}
HOSTILE = '<script>alert("x")</script>'


def _metrics(k_values: tuple[int, ...] = (5, 10, 20)) -> dict[str, dict[str, float]]:
    return {
        f"{name}@{k}": round(base * k / 20, 4)
        for k in k_values
        for name, base in (("HR", 0.2), ("NDCG", 0.1), ("Coverage", 0.5))
    }


def _bundle(folder: Path, *, dataset_name: str = "tiny") -> Path:
    """A bundle's JSON files as `shoprec train` writes them, by hand: two models, two fusions, no arrays."""
    folder.mkdir()
    models = {
        "popularity": {**_metrics(), "MRR": 0.01, "AUC": 0.6},
        HOSTILE: _metrics(),
        "pipeline:equal": {**_metrics(), "MRR@20": 0.05, "Recall@300": 0.4, "Degraded": 0.0},
        "pipeline:weighted": {**_metrics(), "MRR@20": 0.06, "Recall@300": 0.4, "Degraded": 0.0},
        "pipeline": {**_metrics(), "MRR@20": 0.06, "Recall@300": 0.4, "Degraded": 0.0},
    }
    metrics = {
        "test": {"full": models, "sampled": {"popularity": {"HR@10": 0.3, "NDCG@10": 0.2}}},
        "valid": {"full": {"popularity": {"NDCG@10": 0.02}, "item-cf": {"NDCG@10": 0.09}}},
        "fusion": {
            "chosen": "weighted",
            "examples": 12,
            "holdout_ndcg10": {"equal": 0.25, "weighted": 0.26},
            "weights": {"ranker": 1.0, "itemcf": 2.0},
            "stacking_feature_importance": {"itemcf_score": 0.6, "recall_score": 0.4},
            "stacking_pointwise_test": {"MAE": 0.01},
        },
    }
    log = {
        "epochs": [
            {"epoch": 1, "seconds": 1.0, "train_loss": 8.0, "valid_ndcg10": 0.01},
            {"epoch": 2, "seconds": 1.0, "train_loss": 7.5, "valid_ndcg10": 0.03},
        ],
        "best_epoch": 2,
        "best_valid_ndcg10": 0.03,
        "stopped_by": "max epochs",
        "loss": "full",
        "device": "cpu",
        "train_seconds": 2.0,
        "total_seconds": 3.0,
        "stage_seconds": {"loading data": 0.1},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "training_log.json").write_text(json.dumps(log))
    (folder / "ranker.onnx").write_bytes(b"\0" * 2048)
    files = [
        {"name": n, "sha256": "0" * 64, "size": (folder / n).stat().st_size}
        for n in sorted(file_sizes(folder))
    ]
    manifest = {
        "model_version": "sha256:" + "ab" * 32,
        "dataset": {"name": dataset_name, "n_users": 3, "n_items": 4, "n_interactions": 9},
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class _Page(HTMLParser):
    """Checks that every element closes in order and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for key in ("src", "href"):
            if (values.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(values[key] or "")
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:]}")
            return
        self.open.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_the_page_is_well_formed_html_with_every_element_closed(tmp_path: Path) -> None:
    page = html_report_for_bundle(_bundle(tmp_path / "b"))

    parsed = _parse(page)

    assert page.startswith("<!DOCTYPE html>")
    assert parsed.errors == []
    assert parsed.open == []
    assert parsed.tags[:2] == ["html", "head"]


def test_images_are_inline_pngs_and_nothing_is_fetched(tmp_path: Path) -> None:
    parsed = _parse(html_report_for_bundle(_bundle(tmp_path / "b")))

    # training curves, HR/NDCG over K, coverage, accuracy vs coverage, feature importance, file sizes
    assert len(parsed.images) == 6
    assert all(src.startswith("data:image/png;base64,iVBOR") for src in parsed.images)
    assert parsed.external == []
    assert "script" not in parsed.tags
    assert "link" not in parsed.tags


def test_text_from_the_bundle_is_escaped(tmp_path: Path) -> None:
    page = html_report_for_bundle(_bundle(tmp_path / "b", dataset_name=HOSTILE))
    parsed = _parse(page)

    assert HOSTILE not in page
    assert "script" not in parsed.tags
    assert HOSTILE in "".join(parsed.text)  # shown as text, in the title and as a model's row
    assert [HOSTILE] in [row[:1] for row in parsed.rows]


def test_tables_list_each_model_and_fusion_variant_with_the_metrics_at_every_k(tmp_path: Path) -> None:
    parsed = _parse(html_report_for_bundle(_bundle(tmp_path / "b")))

    headers = [row for row in parsed.rows if row[:1] == ["model"]]
    test_full = headers[0]
    assert test_full[1:4] == ["HR@5", "NDCG@5", "Coverage@5"]
    assert {"HR@10", "NDCG@20", "Coverage@20", "MRR", "MRR@20", "AUC", "Recall@300"} <= set(test_full)
    models = [row[0] for row in parsed.rows]
    # single models, then the pipeline's fusions, then the served pipeline
    assert models.index("popularity") < models.index("pipeline:equal") < models.index("pipeline")
    assert next(r for r in parsed.rows if r[0] == "pipeline")[:4] == [
        "pipeline",
        "0.0500",
        "0.0250",
        "0.1250",
    ]
    assert len(headers) == 3  # test full, test sampled, valid full
    assert "weighted (chosen)" in models
    assert "ranker.onnx" in models  # the bundle's files
    assert "total" in models


def test_file_sizes_name_every_file_under_a_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"123")
    (tmp_path / "sub" / "b.json").write_bytes(b"{}")

    assert file_sizes(tmp_path) == {"a.bin": 3, "sub/b.json": 2}


def test_a_bundle_without_epochs_or_fusion_still_renders(tmp_path: Path) -> None:
    page = render_html_report(
        dataset={"name": "bare"},
        metrics={"test": {"full": {"popularity": {"HR@10": 0.1}}}},
        training_log={},
        files={},
    )

    parsed = _parse(page)
    assert parsed.errors == []
    assert parsed.images == []
    assert ["popularity", "0.1000"] in parsed.rows


def test_cli_report_writes_the_page_to_a_file(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    out = tmp_path / "report.html"

    result = CliRunner().invoke(app, ["report", str(bundle), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert _parse(out.read_text(encoding="utf-8")).errors == []


def test_cli_report_prints_the_page_without_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(_bundle(tmp_path / "b"))])

    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>")


def test_cli_report_refuses_to_overwrite_a_file_the_manifest_lists(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    before = (bundle / "metrics.json").read_bytes()

    result = CliRunner().invoke(app, ["report", str(bundle), "--out", str(bundle / "metrics.json")])

    assert result.exit_code == 2
    assert "is a file of the bundle" in " ".join(result.output.split())
    assert (bundle / "metrics.json").read_bytes() == before


def test_cli_report_on_a_folder_that_is_no_bundle_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])

    assert result.exit_code == 2
    assert "manifest.json: cannot read it" in " ".join(result.output.split())
