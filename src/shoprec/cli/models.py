"""``shoprec train``, ``shoprec evaluate`` and ``shoprec report``: fit the models, write the artifact bundle,
score a bundle, rebuild a bundle's HTML report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from shoprec.cli.common import (
    DataRootOpt,
    DatasetOpt,
    FormatOpt,
    cli_errors,
    console,
    fail,
    progress_bars,
    stdout_console,
)
from shoprec.training.config import SAMPLED_SOFTMAX_MIN_ITEMS, TrainConfig

if TYPE_CHECKING:
    from shoprec.items import CatalogItem
    from shoprec.training.trainer import EpochLog

_DEFAULTS = TrainConfig()

# The Transformer options `shoprec train` and `shoprec retrain` share (defaults: TrainConfig's).
HiddenOpt = Annotated[int, typer.Option(help="Transformer hidden size.")]
MaxLenOpt = Annotated[int, typer.Option(help="Longest history the ranker reads.")]
PatienceOpt = Annotated[int, typer.Option(help="Stop after this many epochs without validation gain.")]
MaxMinutesOpt = Annotated[float, typer.Option(help="Time budget of the Transformer training.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option(help="Torch threads (0: all cores).")]
TextOpt = Annotated[
    bool | None,
    typer.Option(
        "--text/--no-text",
        help="Embed the item texts for semantic search (default: when the catalogue has titles).",
    ),
]


class RichTrainingUI:
    """Progress bars for data loading, every epoch and evaluation; one line per finished epoch."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def stage(self, name: str) -> None:
        self._progress.console.print(f"[bold cyan]»[/] {name}")

    def progress(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total)
        tid = self._tasks[task]
        self._progress.update(tid, completed=done, total=total)
        if done >= total:
            self._progress.remove_task(tid)
            del self._tasks[task]

    def epoch(self, log: EpochLog, best: float) -> None:
        mark = " [green]best[/]" if log.valid_ndcg10 >= best else ""
        self._progress.console.print(
            f"  epoch {log.epoch:3d}  loss {log.train_loss:.4f}  valid NDCG@10 {log.valid_ndcg10:.4f}"
            f"  ({log.seconds:.0f} s){mark}"
        )


def train(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the artifact bundle into.")],
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    hidden: HiddenOpt = _DEFAULTS.hidden,
    blocks: Annotated[int, typer.Option(help="Transformer blocks.")] = _DEFAULTS.blocks,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = _DEFAULTS.heads,
    max_len: MaxLenOpt = _DEFAULTS.max_len,
    dropout: Annotated[float, typer.Option(help="Dropout rate.")] = _DEFAULTS.dropout,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = _DEFAULTS.lr,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = _DEFAULTS.batch_size,
    batching: Annotated[
        str,
        typer.Option(
            help="length (users of similar length together, as many target positions per batch as "
            "--batch-size random users) or random (--batch-size users drawn at random)."
        ),
    ] = _DEFAULTS.batching,
    max_epochs: Annotated[
        int, typer.Option(help="Epochs of the learning-rate plan (more if --min-steps needs them).")
    ] = _DEFAULTS.max_epochs,
    min_steps: Annotated[
        int, typer.Option(help="Plan at least this many optimiser steps (0: exactly --max-epochs).")
    ] = _DEFAULTS.min_steps,
    patience: PatienceOpt = _DEFAULTS.patience,
    max_minutes: MaxMinutesOpt = _DEFAULTS.max_minutes,
    seed: SeedOpt = _DEFAULTS.seed,
    threads: ThreadsOpt = _DEFAULTS.threads,
    loss: Annotated[
        str,
        typer.Option(
            help="full (softmax over every item), sampled (sampled softmax with logQ correction), or auto "
            f"(sampled from {SAMPLED_SOFTMAX_MIN_ITEMS} items up)."
        ),
    ] = _DEFAULTS.loss,
    negatives: Annotated[
        int, typer.Option(help="Sampled softmax: item tokens drawn per training step, shared by the batch.")
    ] = _DEFAULTS.negatives,
    negative_power: Annotated[
        float,
        typer.Option(
            help="Sampled softmax: draw negatives ∝ count ** power over the training data (0: uniform)."
        ),
    ] = _DEFAULTS.negative_power,
    device: Annotated[
        str,
        typer.Option(help="auto | cpu | cuda: where training runs (auto: a GPU when torch sees one, bf16)."),
    ] = _DEFAULTS.device,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Save/resume training state here (e.g. for spot instances).")
    ] = None,
    text: TextOpt = None,
    overlay: Annotated[
        str | None,
        typer.Option(
            help="Train on the live catalogue too: the items written through the API, read from this state "
            "store (sqlite:///path or dynamodb://table). Default: the dataset's catalogue alone.",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Append an event log's events (a folder of date=YYYY-MM-DD/*.jsonl or one such file, "
            "docs/event-log.md) to the dataset's users' sequences; new users and items are added.",
        ),
    ] = None,
) -> None:
    """Train popularity, item-CF and the Transformer ranker, fit their fusion on the validation targets,
    evaluate every model and the served pipeline, and write the artifact bundle."""
    from shoprec.training.pipeline import PIPELINE, metrics_table, run_training

    with cli_errors():  # TrainConfig's checks name the field ("loss must be one of ...")
        config = TrainConfig(
            hidden=hidden,
            blocks=blocks,
            heads=heads,
            max_len=max_len,
            dropout=dropout,
            lr=lr,
            batch_size=batch_size,
            batching=batching,
            max_epochs=max_epochs,
            min_steps=min_steps,
            patience=patience,
            max_minutes=max_minutes,
            seed=seed,
            threads=threads,
            loss=loss,
            negatives=negatives,
            negative_power=negative_power,
            device=device,
        )
    with cli_errors():
        items = _overlay_items(overlay) if overlay is not None else []
    with cli_errors(), progress_bars() as progress:
        report = run_training(
            dataset,
            out,
            config,
            fmt=fmt,
            data_root=data_root,
            checkpoint_dir=checkpoint_dir,
            ui=RichTrainingUI(progress),
            text=text,
            overlay=items,
            events=events,
        )
    for split, protocols in (("test", ("full", "sampled")), ("valid", ("full",))):
        for protocol in protocols:
            title = f"{split} · {protocol} ranking" + (" (inflated)" if protocol == "sampled" else "")
            _print_table(title, metrics_table(report.metrics, split, protocol))
    served = report.metrics["test"]["full"][PIPELINE]
    console.print(
        f"[bold]served pipeline[/] (fusion {report.extra['fusion']['chosen']}) · test · full ranking · "
        f"HR@10 {served['HR@10']:.4f} · NDCG@10 {served['NDCG@10']:.4f}"
    )
    console.print(
        f"bundle [bold]{report.out_dir}[/] version {report.manifest.short_version} · "
        f"training {report.train_seconds:.0f} s · total {report.total_seconds:.0f} s"
    )


def _overlay_items(dsn: str) -> list[CatalogItem]:
    """Every item (tombstones included) of the live catalogue stored beside the state of ``dsn``."""
    from shoprec.adapters.item_stores import item_store_for

    # The sqlite store creates a missing file: a mistyped path would train without the overlay, silently.
    if dsn.startswith("sqlite:///") and not Path(dsn.removeprefix("sqlite:///")).expanduser().is_file():
        raise ValueError(f"--overlay {dsn}: no such sqlite file")
    items = item_store_for(dsn).list()
    hidden = sum(not item.visible for item in items)
    console.print(
        f"[bold cyan]»[/] overlay: {len(items)} item(s) from {escape(dsn)}, {hidden} unavailable or delisted"
    )
    return items


def evaluate(
    artifacts: Annotated[Path, typer.Argument(help="Artifact bundle folder written by `shoprec train`.")],
    dataset: DatasetOpt,
    protocol: Annotated[
        str, typer.Option(help="full (all items) | sampled (99 negatives; inflated)")
    ] = "full",
    model: Annotated[
        str,
        typer.Option(
            help="pipeline (the list the API serves) | transformer | transformer-int8 | item-cf | popularity"
        ),
    ] = "pipeline",
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Evaluate a bundle on the dataset's leave-one-out test targets: the served pipeline or one model."""
    from shoprec.evaluation.bundle_eval import evaluate_bundle

    if protocol not in ("full", "sampled"):
        fail(ValueError(f"--protocol must be 'full' or 'sampled', got '{protocol}'"))
    with cli_errors(), progress_bars() as progress:
        task = progress.add_task(f"evaluating {model}", total=None)
        result = evaluate_bundle(
            artifacts,
            dataset,
            protocol=protocol,
            model=model,
            fmt=fmt,
            data_root=data_root,
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        return
    keys = sorted(result.metrics, key=_metric_order)
    table = Table(title=f"{model} · test · {protocol} ranking · {result.users} users")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key, f"{result.metrics[key]:.4f}")
    stdout_console().print(table)


def _metric_order(key: str) -> tuple[int, str]:
    name, _, k = key.partition("@")
    return (int(k) if k else 0, name)


def _print_table(title: str, rows: list[list[str]]) -> None:
    from shoprec.training.pipeline import TABLE_METRICS

    table = Table(title=title)
    table.add_column("model")
    for m in TABLE_METRICS:
        table.add_column(m, justify="right")
    for row in rows:
        table.add_row(*row)
    stdout_console().print(table)


def report(
    artifacts: Annotated[Path, typer.Argument(help="Artifact bundle folder written by `shoprec train`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: the page on stdout).")
    ] = None,
) -> None:
    """Build the bundle's training report as one self-contained HTML page (curves, metric tables,
    coverage, fusion, file sizes) from its metrics.json, training_log.json and manifest.json."""
    from shoprec.training.report_html import html_report_for_bundle, listed_paths

    with cli_errors():
        if out is not None and out.resolve() in listed_paths(artifacts):
            # The manifest's checksums cover it: rewriting it would make the bundle fail verification.
            raise ValueError(f"--out {out} is a file of the bundle; write the report elsewhere")
        page = html_report_for_bundle(artifacts)
    if out is None:
        sys.stdout.write(page)
        return
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(ValueError(f"cannot write {out}: {exc}"))
    console.print(f"report [bold]{escape(str(out))}[/]")
