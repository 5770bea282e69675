"""``shoprec ab report``: an experiment's variants compared from the event log (``docs/experiments.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shoprec.cli.common import cli_errors

app = typer.Typer(no_args_is_help=True, help="A/B experiments: reports from the event log.")


@app.command()
def report(
    events: Annotated[
        Path, typer.Option("--events", help="Event log folder (date=YYYY-MM-DD/ files) or one log file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment to report (default: the only one in the log).")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="Variant the others are compared with (default: 'control').")
    ] = None,
    surface: Annotated[
        str | None, typer.Option(help="Only exposures of recommendations | search | rank (default: all).")
    ] = None,
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999, help="Level of the intervals.")] = 0.95,
    min_lift: Annotated[
        float,
        typer.Option(help="Relative CTR change the test should detect (0.1: 10 %), for the sample warning."),
    ] = 0.1,
) -> None:
    """Per variant: exposures, CTR, add-to-cart and purchase rate per exposure with intervals, and the
    two-proportion z-test against the control."""
    from shoprec.evaluation.ab_report import ab_report, log_records, render

    with cli_errors():
        result = ab_report(
            log_records(events),
            experiment=experiment,
            control=control,
            surface=surface,
            confidence=confidence,
            min_detectable_lift=min_lift,
        )
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else render(result))
