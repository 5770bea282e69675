"""``report.html``: a training run's report as one self-contained page that a browser opens offline.

The page is built from what a bundle already holds (``metrics.json``, ``training_log.json`` and the file
list of ``manifest.json``), so an existing bundle's report can be rebuilt (``shoprec report``). It shows
the training curves, the metric tables per model and fusion variant, HR@K and NDCG@K over K, catalogue
coverage and how the models trade accuracy for concentration on few items, the fusion report, and the
bundle's file sizes. Images are inline PNGs (``data:`` URLs) and the style is inline: no request leaves
the page. Every text taken from the bundle is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shoprec.artifacts.specs import MANIFEST
from shoprec.errors import ArtifactError

REPORT_HTML = "report.html"

_PIPELINE = "pipeline"
_MODEL_ORDER = ("popularity", "item-cf", "transformer", "transformer-int8")
_METRIC_ORDER = ("HR", "NDCG", "P", "R", "F1", "Coverage", "MRR", "AUC", "Recall", "Degraded")
_SECTIONS = (("test", "full"), ("test", "sampled"), ("valid", "full"))
_POPULARITY_METRICS = ("ARP", "AvgPop", "Popularity", "PopularityBias", "Novelty", "Gini")
"""Metrics of how popular the recommended items are, plotted over K when a bundle has any."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1d1d1f;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f4f6; position: sticky; top: 0; }
tr.served td { font-weight: 600; background: #eef6ee; }
figure { margin: 1rem 0; } figure img { max-width: 100%; }
figcaption, p.note { color: #555; font-size: 0.85rem; }
.scroll { overflow-x: auto; }
"""


def html_report_for_bundle(bundle_dir: Path) -> str:
    """The report of the bundle in ``bundle_dir``, from its ``metrics.json``, ``training_log.json`` and
    ``manifest.json``; :class:`ArtifactError` when one is missing or unreadable."""
    manifest = _read_json(bundle_dir / MANIFEST)
    try:
        files = {str(f["name"]): int(f["size"]) for f in manifest["files"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{bundle_dir / MANIFEST}: no file list with sizes ({exc!r})") from exc
    files[MANIFEST] = (bundle_dir / MANIFEST).stat().st_size
    return render_html_report(
        dataset=manifest.get("dataset") or {},
        metrics=_read_json(bundle_dir / "metrics.json"),
        training_log=_read_json(bundle_dir / "training_log.json"),
        files=files,
        version=str(manifest.get("model_version", "")),
    )


def listed_paths(bundle_dir: Path) -> set[Path]:
    """The resolved paths of the manifest and of every file it lists: rewriting one of them would make
    the bundle fail verification."""
    manifest = _read_json(bundle_dir / MANIFEST)
    try:
        names = [str(f["name"]) for f in manifest["files"]]
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{bundle_dir / MANIFEST}: no file list ({exc!r})") from exc
    return {(bundle_dir / MANIFEST).resolve(), *((bundle_dir / name).resolve() for name in names)}


def file_sizes(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (a bundle, or a bundle being staged) by its relative POSIX name."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def render_html_report(
    *,
    dataset: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training_log: Mapping[str, Any],
    files: Mapping[str, int],
    version: str = "",
) -> str:
    """The page: ``metrics`` as in ``metrics.json`` (split → protocol → model → metric, and ``fusion``),
    ``training_log`` as in ``training_log.json``, ``files`` the bundle's file sizes in bytes."""
    name = str(dataset.get("name", "")) or "bundle"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>shoprec training report: {_e(name)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>shoprec training report: {_e(name)}</h1>",
        _summary(dataset, training_log, metrics, version),
        _training_section(training_log, metrics),
        _tables_section(metrics),
        _curves_section(metrics),
        _coverage_section(metrics),
        _fusion_section(metrics),
        _sizes_section(files),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(part for part in parts if part)


# --- sections -----------------------------------------------------------------------------------------


def _summary(
    dataset: Mapping[str, Any], log: Mapping[str, Any], metrics: Mapping[str, Any], version: str
) -> str:
    facts = [
        ("version", version),
        ("dataset format", dataset.get("format")),
        ("users", dataset.get("n_users")),
        ("items", dataset.get("n_items")),
        ("interactions", dataset.get("n_interactions")),
        ("best epoch", log.get("best_epoch")),
        ("best valid NDCG@10", log.get("best_valid_ndcg10")),
        ("stopped by", log.get("stopped_by")),
        ("loss", log.get("loss")),
        ("device", log.get("device")),
        ("training seconds", log.get("train_seconds")),
        ("whole run seconds", log.get("total_seconds")),
    ]
    rows = [[label, _cell(value)] for label, value in facts if value not in (None, "")]
    served = _models(metrics, "test", "full").get(_PIPELINE, {})
    chosen = metrics.get("fusion", {}).get("chosen")
    lines = ["<h2>Summary</h2>", _table(["", "value"], rows)]
    if served:
        lines.append(
            f"<p>Served pipeline (fusion <code>{_e(str(chosen))}</code>), test, full ranking: "
            f"HR@10 {_cell(served.get('HR@10'))}, NDCG@10 {_cell(served.get('NDCG@10'))}.</p>"
        )
    stages = log.get("stage_seconds") or {}
    if stages:
        lines += ["<h3>Stages</h3>", _table(["stage", "seconds"], [[k, _cell(v)] for k, v in stages.items()])]
    return "\n".join(lines)


def _training_section(log: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    epochs = log.get("epochs") or []
    if not epochs:
        return ""
    baselines = {
        m: values["NDCG@10"]
        for m, values in _models(metrics, "valid", "full").items()
        if m in ("item-cf", "popularity") and "NDCG@10" in values
    }
    png = _plot_training(epochs, baselines)
    return "\n".join(
        [
            "<h2>Training curves</h2>",
            _figure(
                png,
                "Transformer training loss and validation NDCG@10 (full ranking) per epoch; "
                "dashed lines: the single models' validation NDCG@10.",
            ),
        ]
    )


def _tables_section(metrics: Mapping[str, Any]) -> str:
    lines = [
        "<h2>Metrics per model and fusion variant</h2>",
        '<p class="note"><code>pipeline:&lt;fusion&gt;</code> rows are the list the API serves with that '
        "fusion; <code>pipeline</code> (highlighted) is the fusion chosen on the validation targets. The "
        "sampled protocol ranks the target against 99 sampled negatives and is inflated.</p>",
    ]
    for split, protocol in _SECTIONS:
        models = _models(metrics, split, protocol)
        if not models:
            continue
        columns = _metric_columns(models.values())
        rows = [[model, *(_cell(values.get(c)) for c in columns)] for model, values in models.items()]
        served = [i for i, model in enumerate(models) if model == _PIPELINE]
        lines += [f"<h3>{_e(split)}, {_e(protocol)} ranking</h3>", _table(["model", *columns], rows, served)]
    return "\n".join(lines)


def _curves_section(metrics: Mapping[str, Any]) -> str:
    models = _models(metrics, "test", "full")
    series = {family: _over_k(models, family) for family in ("HR", "NDCG") if _over_k(models, family)}
    if not series:
        return ""
    png = _plot_over_k(series, "test, full ranking")
    return "\n".join(["<h2>HR@K and NDCG@K over K</h2>", _figure(png, "Test, full ranking, per model.")])


def _coverage_section(metrics: Mapping[str, Any]) -> str:
    models = _models(metrics, "test", "full")
    coverage = _over_k(models, "Coverage")
    lines = []
    if coverage:
        lines += [
            "<h2>Catalogue coverage</h2>",
            _figure(
                _plot_over_k({"Coverage": coverage}, "test, full ranking"),
                "Share of the catalogue that appears in some user's top K (test users, full ranking).",
            ),
        ]
    popularity = {
        family: _over_k(models, family) for family in _POPULARITY_METRICS if _over_k(models, family)
    }
    at10 = {
        m: (values["Coverage@10"], values["NDCG@10"])
        for m, values in models.items()
        if "Coverage@10" in values and "NDCG@10" in values
    }
    if popularity or at10:
        lines.append("<h2>Popularity bias</h2>")
    if popularity:
        lines.append(
            _figure(
                _plot_over_k(popularity, "test, full ranking"), "Popularity of the recommended items over K."
            )
        )
    if at10:
        lines.append(
            _figure(
                _plot_tradeoff(at10),
                "Accuracy against concentration: a model that recommends the same few popular items to "
                "everyone has a small Coverage@10 (popularity's is the extreme). "
                + ("" if popularity else "The bundle has no metric of the recommended items' popularity."),
            )
        )
    return "\n".join(lines)


def _fusion_section(metrics: Mapping[str, Any]) -> str:
    fusion = metrics.get("fusion")
    if not isinstance(fusion, Mapping) or not fusion:
        return ""
    chosen = fusion.get("chosen")
    full = _models(metrics, "test", "full")
    lines = ["<h2>Fusion</h2>"]
    holdout = fusion.get("holdout_ndcg10") or {}
    if holdout:
        rows = []
        for name, score in holdout.items():
            row = full.get(f"{_PIPELINE}:{name}", {})
            label = f"{name} (chosen)" if name == chosen else str(name)
            rows.append([label, _cell(score), _cell(row.get("HR@10")), _cell(row.get("NDCG@10"))])
        lines.append(
            _table(["fusion", "compare NDCG@10 (held-out valid)", "test HR@10", "test NDCG@10"], rows)
        )
    facts = [
        [key, _cell(value)]
        for key, value in fusion.items()
        if not isinstance(value, Mapping) and key != "chosen"
    ]
    if facts:
        lines.append(_table(["", "value"], facts))
    weights = fusion.get("weights") or {}
    if weights:
        lines += [
            "<h3>Tuned weights</h3>",
            _table(["channel", "weight"], [[k, _cell(v)] for k, v in weights.items()]),
        ]
    importance = fusion.get("stacking_feature_importance") or {}
    if importance:
        top = sorted(importance.items(), key=lambda kv: -float(kv[1]))[:15]
        lines += [
            "<h3>Stacking: feature importance (share of gain)</h3>",
            _figure(_plot_bars(dict(top), "share of gain"), "The stacker's 15 most important features."),
        ]
    pointwise = fusion.get("stacking_pointwise_test") or {}
    if pointwise:
        lines += [
            "<h3>Stacking: predicted relevance on the test pairs</h3>",
            _table(["", "value"], [[k, _cell(v)] for k, v in pointwise.items()]),
        ]
    return "\n".join(lines)


def _sizes_section(files: Mapping[str, int]) -> str:
    if not files:
        return ""
    ordered = sorted(files.items(), key=lambda kv: -kv[1])
    total = sum(files.values())
    rows = [[name, _size(size), f"{size / total:.1%}" if total else "-"] for name, size in ordered]
    rows.append(["total", _size(total), "100.0%" if total else "-"])
    return "\n".join(
        [
            "<h2>Bundle files</h2>",
            _figure(
                _plot_bars({n: s / 1e6 for n, s in ordered}, "MB"),
                "Size of each file of the bundle (MB, 10^6 bytes).",
            ),
            _table(["file", "size", "share"], rows),
        ]
    )


# --- data ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read it ({exc})") from exc
    if not isinstance(value, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return value


def _models(metrics: Mapping[str, Any], split: str, protocol: str) -> dict[str, dict[str, float]]:
    """The models of one table in report order: single models, the pipeline's fusions, the pipeline."""
    found = metrics.get(split, {}).get(protocol, {})
    if not isinstance(found, Mapping):
        return {}

    def order(model: str) -> tuple[int, int, str]:
        if model == _PIPELINE:
            return (2, 0, model)
        if model.startswith(_PIPELINE + ":"):
            return (1, 0, model)
        known = _MODEL_ORDER.index(model) if model in _MODEL_ORDER else len(_MODEL_ORDER)
        return (0, known, model)

    return {str(m): dict(found[m]) for m in sorted(found, key=order) if isinstance(found[m], Mapping)}


def _split_key(key: str) -> tuple[str, int | None]:
    name, _, k = key.partition("@")
    return name, int(k) if k.isdigit() else None


def _metric_columns(rows: Iterable[Mapping[str, float]]) -> list[str]:
    keys = {key for row in rows for key in row}

    def order(key: str) -> tuple[int, int, int, str]:
        name, k = _split_key(key)
        family = _METRIC_ORDER.index(name) if name in _METRIC_ORDER else len(_METRIC_ORDER)
        # The K=5/10/20 metrics first, grouped by K; whole-list metrics (MRR, AUC, Recall@300) after.
        at_k = k is not None and name not in ("Recall", "MRR")
        return (0 if at_k else 1, k or 0 if at_k else 0, family, key)

    return sorted(keys, key=order)


def _over_k(models: Mapping[str, Mapping[str, float]], family: str) -> dict[str, list[tuple[int, float]]]:
    """``family@K`` per model as (K, value) points, for the models that have two K or more."""
    series = {}
    for model, values in models.items():
        points = sorted(
            (k, float(v))
            for key, v in values.items()
            for name, k in [_split_key(key)]
            if name == family and k is not None
        )
        if len(points) >= 2:
            series[model] = points
    return series


# --- html ---------------------------------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cell(value: Any) -> str:
    """A value as table text: floats to 4 decimals (more digits for tiny ones), anything else as is."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):  # numpy floats of a report rendered before the JSON is written
        value = float(value)
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return str(value)


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], highlight: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(
        ('<tr class="served">' if i in highlight else "<tr>")
        + "".join(f"<td>{_e(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table></div>"
    )


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


# --- plots --------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(text: str) -> str:
    """Text for matplotlib, which would read ``$...$`` in a name as mathematics."""
    return text.replace("$", r"\$")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    # No "Software" stamp: the same report gives the same bytes (the bundle's version hashes its files).
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def _plot_training(epochs: Sequence[Mapping[str, Any]], baselines: Mapping[str, float]) -> bytes:
    plt = _pyplot()
    xs = [int(e["epoch"]) for e in epochs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(xs, [float(e["train_loss"]) for e in epochs], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss")
    ax1.set_title("Transformer training loss")
    ax2.plot(xs, [float(e["valid_ndcg10"]) for e in epochs], marker="o", label="transformer")
    for (name, value), style in zip(sorted(baselines.items()), ("--", ":"), strict=False):
        ax2.axhline(value, linestyle=style, color="gray", label=_label(name))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("valid NDCG@10 (full ranking)")
    ax2.set_title("Validation NDCG@10")
    ax2.legend(fontsize="small")
    return _png(fig)


def _plot_over_k(series: Mapping[str, Mapping[str, list[tuple[int, float]]]], where: str) -> bytes:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(5.5 * len(series), 3.8), squeeze=False)
    for ax, (family, per_model) in zip(axes[0], series.items(), strict=True):
        for model, points in per_model.items():
            style = "-" if model.startswith(_PIPELINE) else "--"
            ax.plot([k for k, _ in points], [v for _, v in points], style, marker="o", label=_label(model))
        ax.set_xlabel("K")
        ax.set_ylabel(f"{family}@K")
        ax.set_title(f"{family}@K, {where}")
        ax.set_xticks(sorted({k for points in per_model.values() for k, _ in points}))
        ax.legend(fontsize="x-small")
    return _png(fig)


def _plot_tradeoff(points: Mapping[str, tuple[float, float]]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for model, (coverage, ndcg) in points.items():
        ax.scatter([coverage], [ndcg])
        ax.annotate(
            _label(model), (coverage, ndcg), fontsize="x-small", xytext=(4, 4), textcoords="offset points"
        )
    ax.set_xlabel("Coverage@10 (share of the catalogue recommended)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("Accuracy against catalogue coverage (test, full)")
    return _png(fig)


def _plot_bars(values: Mapping[str, float], label: str) -> bytes:
    plt = _pyplot()
    names = [_label(n) for n in values][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.2))
    ax.barh(names, list(values.values())[::-1])
    ax.set_xlabel(label)
    ax.tick_params(axis="y", labelsize="small")
    return _png(fig)
