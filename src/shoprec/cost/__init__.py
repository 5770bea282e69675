"""Cost per request of the deployed stack: a price book, the model's inputs, and the model itself
(``shoprec cost``; docs/cost.md)."""

from shoprec.cost.inputs import Assumptions, Inputs, Measured, Stack, Traffic
from shoprec.cost.model import CostReport, Crossover, LineItem, Ranking, crossover, monthly_cost
from shoprec.cost.prices import PriceBook, load_prices

__all__ = [
    "Assumptions",
    "CostReport",
    "Crossover",
    "Inputs",
    "LineItem",
    "Measured",
    "PriceBook",
    "Ranking",
    "Stack",
    "Traffic",
    "crossover",
    "load_prices",
    "monthly_cost",
]
