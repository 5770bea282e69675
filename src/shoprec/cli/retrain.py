"""``shoprec retrain``: train on the event log, gate the new bundle against the served one, print both.

Exit codes: 0 the gate passed (the new bundle may be deployed), 3 the gate refused it (the new bundle is
written but must not be deployed), 2 an error (bad input, unreadable bundle or log)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shoprec.cli.common import DataRootOpt, cli_errors, console, progress_bars, stdout_console
from shoprec.cli.models import (
    HiddenOpt,
    MaxLenOpt,
    MaxMinutesOpt,
    PatienceOpt,
    RichTrainingUI,
    SeedOpt,
    TextOpt,
    ThreadsOpt,
)
from shoprec.deploy.gate import DEFAULT_MARGIN, DEFAULT_METRICS, DEFAULT_MIN_USERS
from shoprec.training.config import TrainConfig

if TYPE_CHECKING:
    from shoprec.training.retrain import RetrainResult

GATE_REFUSED = 3
"""Exit code of a refused gate: not an error of the command, and not a pass a script could deploy on."""
_DEFAULTS = TrainConfig()
_SHOWN = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@20", "Coverage@10")


def retrain(
    events: Annotated[
        Path, typer.Option("--events", help="The event log: a folder of date=YYYY-MM-DD/*.jsonl or one file.")
    ],
    artifacts: Annotated[Path, typer.Option("--artifacts", help="The served bundle, to compare with.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the new bundle into.")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="Base dataset the log's events follow (default: train on the log alone)."
        ),
    ] = None,
    data_root: DataRootOpt = None,
    cut: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
            help="Start of the held-out window (UTC unless an offset is given). Default: the newest event "
            "less --holdout-days.",
        ),
    ] = None,
    holdout_days: Annotated[
        float, typer.Option(help="Length of the held-out window when --cut is not given.")
    ] = 7.0,
    margin: Annotated[
        float, typer.Option(help="Largest relative drop of a gate metric the new bundle may show.")
    ] = DEFAULT_MARGIN,
    metrics: Annotated[str, typer.Option(help="Gate metrics, comma-separated (each must pass).")] = ",".join(
        DEFAULT_METRICS
    ),
    min_users: Annotated[
        int, typer.Option(help="Fewest held-out users the gate accepts a comparison on.")
    ] = DEFAULT_MIN_USERS,
    hidden: HiddenOpt = _DEFAULTS.hidden,
    max_len: MaxLenOpt = _DEFAULTS.max_len,
    max_epochs: Annotated[int, typer.Option(help="Epochs of the learning-rate plan.")] = _DEFAULTS.max_epochs,
    patience: PatienceOpt = _DEFAULTS.patience,
    max_minutes: MaxMinutesOpt = _DEFAULTS.max_minutes,
    seed: SeedOpt = _DEFAULTS.seed,
    threads: ThreadsOpt = _DEFAULTS.threads,
    text: TextOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Train a new bundle on the event log before a cut, score it and the served bundle on the same
    held-out window after the cut, and print both versions' figures and the gate's decision
    (exit 0: passed, 3: refused, 2: error; docs/operations.md)."""
    from shoprec.deploy.gate import GatePolicy
    from shoprec.training.retrain import retrain as run_retrain

    with cli_errors():
        config = TrainConfig(
            hidden=hidden,
            max_len=max_len,
            max_epochs=max_epochs,
            patience=patience,
            max_minutes=max_minutes,
            seed=seed,
            threads=threads,
        )
        policy = GatePolicy.parse(metrics, margin, min_users)
        if holdout_days <= 0:
            raise ValueError(f"--holdout-days must be positive, got {holdout_days}")
    when = cut.replace(tzinfo=UTC) if cut is not None and cut.tzinfo is None else cut
    with cli_errors(), progress_bars() as progress:
        result = run_retrain(
            events,
            artifacts,
            out,
            dataset=dataset,
            data_root=data_root,
            cut=when,
            holdout=timedelta(days=holdout_days),
            config=config,
            policy=policy,
            text=text,
            ui=RichTrainingUI(progress),
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
    else:
        _render(result)
    if not result.decision.passed:
        raise typer.Exit(code=GATE_REFUSED)


def _render(result: RetrainResult) -> None:
    window = result.window
    dropped = ", ".join(f"{n} {why}" for why, n in window["dropped"].items())
    console.print(
        f"[bold cyan]»[/] window from {window['cut']}: {window['window_events']} events of "
        f"{window['window_users']} users, {window['users']} held-out cases ({dropped} left out); "
        f"trained on {window['training_events']} logged events before it"
    )
    gated = {c.metric: c for c in result.decision.checks}
    table = Table(title=f"held-out window · full ranking · {result.decision.users} users")
    table.add_column("metric")
    table.add_column(f"served {result.served_version}", justify="right")
    table.add_column(f"new {result.new_version}", justify="right")
    table.add_column("change", justify="right")
    table.add_column("gate", justify="right")
    for name in dict.fromkeys([*gated, *_SHOWN]):
        old, new = result.served.metrics.get(name), result.new.metrics.get(name)
        check = gated.get(name)
        change = f"{(new - old) / old:+.1%}" if old and new is not None else "-"
        verdict = "-" if check is None else ("pass" if check.passed else "FAIL")
        table.add_row(name, _num(old), _num(new), change, verdict)
    stdout_console().print(table)
    decision = result.decision
    if decision.passed:
        stdout_console().print(
            f"decision: PASS · new {result.new_version} may replace served {result.served_version} "
            f"(margin {decision.policy.margin:.1%}) · bundle {escape(str(result.new_dir))}"
        )
    else:
        stdout_console().print(
            f"decision: REFUSED · keep served {result.served_version}; " + escape("; ".join(decision.reasons))
        )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
