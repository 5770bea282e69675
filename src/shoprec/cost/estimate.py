"""One cost estimate from command-line options: parse them, price both ranking choices, find the crossover."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprec.cost.inputs import DEFAULT_MIX, Inputs, Traffic, parse_mix, with_values
from shoprec.cost.model import CostReport, Crossover, Ranking, crossover, monthly_cost
from shoprec.cost.prices import PriceBook, load_prices, parse_assignment


@dataclass(frozen=True)
class Options:
    """What ``shoprec cost`` was asked: ``mix`` as ``KIND=SHARE,...``; ``prices`` and ``values`` as
    ``NAME=VALUE`` strings (prices in USD per their unit; ``values`` for :func:`with_values`)."""

    requests_per_month: float
    mix: str | None = None
    cache_hit_rate: float = 0.3
    ranking: str = Ranking.LAMBDA.value
    prices_file: Path | None = None
    prices: Sequence[str] = ()
    values: Sequence[str] = field(default=())


@dataclass(frozen=True)
class Estimate:
    """The report for the chosen ranking, the same month with the other one, and the crossover."""

    report: CostReport
    alternative: CostReport
    crossover: Crossover
    prices: PriceBook
    inputs: Inputs
    traffic: Traffic

    def to_dict(self) -> dict[str, Any]:
        """The estimate as plain JSON-able data (``shoprec cost --json``)."""
        return {
            "requests_per_month": self.report.requests_per_month,
            "ranking": self.report.ranking.value,
            "region": self.prices.region,
            "prices_retrieved": self.prices.retrieved,
            "mix": dict(self.traffic.mix),
            "cache_hit_rate": self.traffic.cache_hit_rate,
            "line_items": [item.to_dict() for item in self.report.items],
            "by_service": self.report.by_service(),
            "monthly_usd": self.report.monthly_usd,
            "usd_per_million_requests": self.report.usd_per_million,
            "warnings": list(self.report.warnings),
            "alternative": {
                "ranking": self.alternative.ranking.value,
                "monthly_usd": self.alternative.monthly_usd,
                "usd_per_million_requests": self.alternative.usd_per_million,
            },
            "crossover": self.crossover.to_dict(),
            "inputs": self.inputs.describe(),
            "prices": {
                name: {"usd": price.usd, "unit": price.unit, "source": price.source}
                for name, price in sorted(self.prices.prices.items())
            },
        }


def estimate(options: Options) -> Estimate:
    """Price a month as ``options`` describe it; ``ValueError`` naming the option or input at fault."""
    try:
        ranking = Ranking(options.ranking)
    except ValueError:
        raise ValueError(
            f"--ranking: {options.ranking!r} is not one of {', '.join(r.value for r in Ranking)}"
        ) from None
    book = load_prices()
    if options.prices_file is not None:
        book = book.with_file(options.prices_file)
    book = book.with_values(dict(parse_assignment(p) for p in options.prices))
    values: dict[str, str] = {}
    for text in options.values:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {text!r}: expected NAME=VALUE, e.g. rank_ms=0.6")
        values[name.strip()] = value.strip()
    inputs = with_values(Inputs(), values)
    mix = parse_mix(options.mix) if options.mix is not None else dict(DEFAULT_MIX)
    traffic = Traffic(options.requests_per_month, mix, options.cache_hit_rate)
    other = Ranking.ENDPOINT if ranking is Ranking.LAMBDA else Ranking.LAMBDA
    return Estimate(
        report=monthly_cost(traffic, inputs, book, ranking),
        alternative=monthly_cost(traffic, inputs, book, other),
        crossover=crossover(traffic, inputs, book),
        prices=book,
        inputs=inputs,
        traffic=traffic,
    )
