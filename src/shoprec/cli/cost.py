"""``shoprec cost``: the stack's monthly cost and cost per million requests, line by line, and the volume
from which a SageMaker ranking endpoint would cost less than ranking inside the API function.

The model and its inputs are in docs/cost.md; prices come from the packaged us-east-1 price book
(``shoprec/cost/prices.json``, each price with its source and date) unless ``--prices`` or ``--price`` say
otherwise, and any other input can be changed with ``--set NAME=VALUE`` (``--json`` lists them all).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shoprec.cli.common import cli_errors, stdout_console

if TYPE_CHECKING:
    from shoprec.cost.estimate import Estimate

RequestsOpt = Annotated[
    float, typer.Option("--requests-per-month", min=0, help="API requests plus queued events in a month.")
]
MixOpt = Annotated[
    str | None,
    typer.Option(
        "--mix",
        help="Shares of the request kinds, summing to 1: recommendations, search, similar, events "
        "(single-event messages to the ingest queue), api_events (POST /v1/events); default "
        "recommendations=0.6,search=0.2,similar=0.1,events=0.1.",
    ),
]
HitOpt = Annotated[
    float,
    typer.Option("--cache-hit-rate", min=0, max=1, help="Share of recommendations served from the cache."),
]
RankingOpt = Annotated[
    str, typer.Option("--ranking", help="Where recommendations are ranked: lambda (in process) or endpoint.")
]
PricesOpt = Annotated[
    Path | None,
    typer.Option("--prices", help="A price file (prices.json's shape) overriding the prices it names."),
]
PriceOpt = Annotated[
    list[str] | None, typer.Option("--price", help="NAME=USD in the price's unit; repeatable.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="NAME=VALUE for a stack, measured or assumed input (see --json); repeatable."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")]


def cost(
    requests_per_month: RequestsOpt,
    mix: MixOpt = None,
    cache_hit_rate: HitOpt = 0.3,
    ranking: RankingOpt = "lambda",
    prices: PricesOpt = None,
    price: PriceOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Monthly cost of the stack and where a SageMaker ranking endpoint starts to pay off."""
    from shoprec.cost.estimate import Options, estimate

    with cli_errors():
        result = estimate(
            Options(
                requests_per_month=requests_per_month,
                mix=mix,
                cache_hit_rate=cache_hit_rate,
                ranking=ranking,
                prices_file=prices,
                prices=tuple(price or ()),
                values=tuple(set_ or ()),
            )
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    _render(result)


def _render(result: Estimate) -> None:
    report = result.report
    table = Table(
        title=f"{report.requests_per_month:,.0f} requests a month, ranking in {report.ranking.value} "
        f"({result.prices.region}, prices of {result.prices.retrieved})"
    )
    for column in ("service", "item", "quantity", "unit"):
        table.add_column(column, justify="right" if column == "quantity" else "left")
    table.add_column("USD / month", justify="right")
    for item in report.items:
        table.add_row(item.service, item.item, f"{item.quantity:,.1f}", item.unit, f"{item.monthly_usd:,.2f}")
    per_million = report.usd_per_million
    table.add_section()
    table.add_row("total", "", "", "", f"{report.monthly_usd:,.2f}")
    table.add_row("per 1M requests", "", "", "", "-" if per_million is None else f"{per_million:,.2f}")
    out = stdout_console()
    out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    other = result.alternative
    out.print(f"Ranking in {other.ranking.value} instead: {other.monthly_usd:,.2f} USD a month.")
    c = result.crossover
    where = "never" if c.requests_per_month is None else f"from {c.requests_per_month:,.0f} requests a month"
    out.print(
        f"Crossover (endpoint cheaper than ranking in the function): {where} ({c.reason}). Per 1M requests: "
        f"function time ranking in process {c.in_process_usd_per_million:.4f} USD, with the endpoint "
        f"{c.with_endpoint_usd_per_million:.4f} USD + its instances "
        f"{c.endpoint_instances_usd_per_million:.4f} USD once scaled; "
        f"the endpoint's fixed cost {c.endpoint_fixed_usd:,.2f} USD a month."
    )
