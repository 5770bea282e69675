"""``shoprec batch``: every user's recommendation list as JSON lines, for e-mail and push campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from shoprec.cli.common import DataRootOpt, DatasetOpt, FormatOpt, cli_errors, console, progress_bars


def batch(
    artifacts: Annotated[Path, typer.Option("--artifacts", help="Artifact bundle folder (shoprec train).")],
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (replaced only when complete).")],
    k: Annotated[int, typer.Option("--k", help="Items per user.")] = 20,
    fmt: FormatOpt = "auto",
    data_root: DataRootOpt = None,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            help="Only these users: a text file, one user id per line (ids without interactions in the "
            "dataset get the popular items, as the API's new users do). Default: every user.",
        ),
    ] = None,
    threads: Annotated[int, typer.Option(help="onnxruntime threads of the ranker (0: all cores).")] = 0,
) -> None:
    """Write the served pipeline's list for every user of the dataset to --out, one JSON object a line:
    user_id, items (ids, best first) and model_version (docs/batch.md)."""
    from shoprec.services.batch import run_batch

    with cli_errors(), progress_bars() as progress:
        task = progress.add_task("recommending", total=None)
        summary = run_batch(
            artifacts,
            dataset,
            out,
            k=k,
            fmt=fmt,
            data_root=data_root,
            users_file=users,
            threads=threads,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    notes = [f"{summary.cold} cold start"]
    if summary.not_in_dataset:
        notes.append(f"{summary.not_in_dataset} not in the dataset")
    if summary.unknown_items:
        notes.append(f"{summary.unknown_items} interactions with items the bundle lacks left out")
    if summary.degraded:
        notes.append(f"[red]{summary.degraded} degraded (ranker failed)[/]")
    console.print(
        f"{summary.users} users · k {summary.k} · model {summary.model_version} → "
        f"[bold]{escape(str(summary.out))}[/] ({', '.join(notes)})",
        soft_wrap=True,
    )
