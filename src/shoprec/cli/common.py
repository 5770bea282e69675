"""What every command group shares: the dataset options, the consoles, progress bars, and the one place
where an expected error becomes ``error: ...`` and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoprec.errors import ShopRecError

console = Console(stderr=True)

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        help="Dataset file or folder; relative paths are also looked up under the data root.",
    ),
]
FormatOpt = Annotated[
    str, typer.Option("--format", help="auto | amazon-json | sequences | sasrec | generic | eventlog")
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Data root for relative --dataset paths (default: $SHOPREC_DATA_ROOT or ../shared/data).",
    ),
]

# shoprec's own errors (DeploymentError among them) and bad values; pydantic's ValidationError, raised for
# settings and option values, is a ValueError too.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (ShopRecError, ValueError)


def fail(exc: Exception) -> NoReturn:
    """End the command with ``error: <exc>`` on stderr and exit code 2."""
    # The message is data, not markup: pydantic's "[type=..., input_value=...]" would vanish and a "[/x]"
    # in it would crash rich instead of exiting 2.
    console.print("[bold red]error:[/]", escape(str(exc)))
    raise typer.Exit(code=2)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Report an expected error raised inside the block through :func:`fail`. Any other exception is a bug
    and keeps its traceback."""
    try:
        yield
    except EXPECTED_ERRORS as exc:
        fail(exc)


def progress_bars() -> Progress:
    """Transient progress bars on stderr, one line per task."""
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def stdout_console() -> Console:
    """A console for results on stdout (tables)."""
    # Outside a terminal (CI logs, pipes) rich would squeeze the metric tables into 80 columns.
    out = Console()
    return out if out.is_terminal else Console(width=160)
