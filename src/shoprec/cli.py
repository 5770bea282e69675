"""The ``shoprec`` command line: thin commands that parse, call one function, and render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoprec.errors import ShopRecError
from shoprec.training.config import TrainConfig

if TYPE_CHECKING:
    from shoprec.container import Container
    from shoprec.training.trainer import EpochLog

app = typer.Typer(no_args_is_help=True, add_completion=False, help="shoprec: search and recommendation.")
console = Console(stderr=True)
_DEFAULTS = TrainConfig()

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        help="Dataset file or folder; relative paths are also looked up under the data root.",
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="auto | amazon-json | sequences | sasrec | generic")]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Data root for relative --dataset paths (default: $SHOPREC_DATA_ROOT or ../shared/data).",
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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def train(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the artifact bundle into.")],
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    hidden: Annotated[int, typer.Option(help="Transformer hidden size.")] = _DEFAULTS.hidden,
    blocks: Annotated[int, typer.Option(help="Transformer blocks.")] = _DEFAULTS.blocks,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = _DEFAULTS.heads,
    max_len: Annotated[int, typer.Option(help="Longest history the ranker reads.")] = _DEFAULTS.max_len,
    dropout: Annotated[float, typer.Option(help="Dropout rate.")] = _DEFAULTS.dropout,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = _DEFAULTS.lr,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = _DEFAULTS.batch_size,
    max_epochs: Annotated[int, typer.Option(help="Upper bound on epochs.")] = _DEFAULTS.max_epochs,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without validation gain.")
    ] = _DEFAULTS.patience,
    max_minutes: Annotated[
        float, typer.Option(help="Time budget of the Transformer training.")
    ] = _DEFAULTS.max_minutes,
    seed: Annotated[int, typer.Option(help="Random seed.")] = _DEFAULTS.seed,
    threads: Annotated[int, typer.Option(help="Torch threads (0: all cores).")] = _DEFAULTS.threads,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Save/resume training state here (e.g. for spot instances).")
    ] = None,
) -> None:
    """Train popularity, item-CF and the Transformer ranker; evaluate; write the artifact bundle."""
    from shoprec.training.pipeline import metrics_table, run_training

    config = TrainConfig(
        hidden=hidden,
        blocks=blocks,
        heads=heads,
        max_len=max_len,
        dropout=dropout,
        lr=lr,
        batch_size=batch_size,
        max_epochs=max_epochs,
        patience=patience,
        max_minutes=max_minutes,
        seed=seed,
        threads=threads,
    )
    try:
        with _progress() as progress:
            report = run_training(
                dataset,
                out,
                config,
                fmt=fmt,
                data_root=data_root,
                checkpoint_dir=checkpoint_dir,
                ui=RichTrainingUI(progress),
            )
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    for split in ("test", "valid"):
        for protocol in ("full", "sampled"):
            title = f"{split} · {protocol} ranking" + (" (inflated)" if protocol == "sampled" else "")
            _print_table(title, metrics_table(report.metrics, split, protocol))
    console.print(
        f"bundle [bold]{report.out_dir}[/] version {report.manifest.short_version} · "
        f"training {report.train_seconds:.0f} s · total {report.total_seconds:.0f} s"
    )


@app.command()
def evaluate(
    artifacts: Annotated[Path, typer.Argument(help="Artifact bundle folder written by `shoprec train`.")],
    dataset: DatasetOpt,
    protocol: Annotated[
        str, typer.Option(help="full (all items) | sampled (99 negatives; inflated)")
    ] = "full",
    model: Annotated[
        str, typer.Option(help="transformer | transformer-int8 | item-cf | popularity")
    ] = "transformer",
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Evaluate a bundle's model on the dataset's leave-one-out test targets."""
    from shoprec.evaluation.bundle_eval import evaluate_bundle

    if protocol not in ("full", "sampled"):
        _fail(ValueError(f"--protocol must be 'full' or 'sampled', got '{protocol}'"))
    try:
        with _progress() as progress:
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
    except (ShopRecError, ValueError) as exc:
        _fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        return
    keys = sorted(result.metrics, key=_metric_order)
    table = Table(title=f"{model} · test · {protocol} ranking · {result.users} users")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key, f"{result.metrics[key]:.4f}")
    Console().print(table)


@app.command()
def serve(
    artifacts: Annotated[
        str | None, typer.Option(help="Bundle folder or s3://bucket/prefix (default: $SHOPREC_ARTIFACTS).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 exposes the API).")] = "127.0.0.1",
    state: Annotated[str | None, typer.Option(help="sqlite:///path or dynamodb://table.")] = None,
    cache: Annotated[str | None, typer.Option(help="memory://, redis://host:port/db or rediss://...")] = None,
    ranker: Annotated[
        str | None, typer.Option(help="onnx, sagemaker://endpoint or http://host:port.")
    ] = None,
) -> None:
    """Serve the REST API with uvicorn; prints ready-to-paste curl commands first."""
    import uvicorn
    from pydantic import ValidationError

    from shoprec.api.app import create_app
    from shoprec.container import build_container
    from shoprec.settings import get_settings

    try:
        settings = get_settings().overridden(artifacts=artifacts, state=state, cache=cache, ranker=ranker)
        with console.status("loading the bundle and building the search index"):
            container = build_container(settings)
            container.recommendations.warm_up()
    except (ShopRecError, ValidationError, ValueError) as exc:
        _fail(exc)
        return
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(
        f"[bold]shoprec[/] model {container.bundle.manifest.short_version} · {container.bundle.n_items} items"
    )
    for name, backend in container.backends().items():
        console.print(f"  {name:<10} {backend}", markup=False, highlight=False, soft_wrap=True)
    console.print("[bold]try:[/]")
    for line in _curl_examples(container, base):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    uvicorn.run(create_app(container), host=host, port=port, log_level="info")


def _curl_examples(container: Container, base: str) -> list[str]:
    """curl commands using the bundle's most popular items, so each one returns something real."""
    import numpy as np

    catalog = container.catalog
    top = [int(i) for i in np.argsort(-container.bundle.popularity, kind="stable")[:3]]
    item = catalog.item_ids[top[0]]
    words = [w for w in catalog.titles[top[0]].split() if w.isalpha() and len(w) > 3]
    query = (words[0] if words else "glass").lower()
    events = {
        "events": [
            {"event_id": f"demo-{n}", "user_id": "demo-user", "item_id": catalog.item_ids[i], "type": "view"}
            for n, i in enumerate(top[:2])
        ]
    }
    rank = {"user_id": "demo-user", "item_ids": [catalog.item_ids[i] for i in top]}
    json_h = "-H 'content-type: application/json'"
    return [
        f"curl -s {base}/v1/health",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'",
        f"curl -s {base}/v1/events {json_h} -d '{json.dumps(events)}'",
        f"curl -s '{base}/v1/recommendations/demo-user?k=5'   # now personalised",
        f"curl -s '{base}/v1/items/{item}/similar?k=5'",
        f"curl -s '{base}/v1/search?q={query}&k=5'",
        f"curl -s {base}/v1/rank {json_h} -d '{json.dumps(rank)}'",
        f"curl -s -X DELETE {base}/v1/users/demo-user -o /dev/null -w '%{{http_code}}\\n'",
        f"# OpenAPI UI: {base}/docs",
    ]


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
    Console().print(table)


def main() -> Any:
    """Console-script entry point."""
    return app()


if __name__ == "__main__":
    main()
