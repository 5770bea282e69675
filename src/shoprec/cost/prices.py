"""The price book of the cost model: named AWS prices with their unit and source, read from a JSON file.

The packaged ``prices.json`` holds the us-east-1 on-demand prices the model was written against, each with
the page it was read from and the date. Another file of the same shape overrides some of them (a region,
a negotiated rate), and single values can be set by name (``shoprec cost --price NAME=USD``). Every price
the model uses must be present with the unit the model expects, so a file priced per request instead of
per million is an error naming the price, not a silent factor of a million.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_PRICES = "prices.json"

UNITS: dict[str, str] = {
    "lambda_request": "1M requests",
    "lambda_gb_second_arm64": "GB-second",
    "lambda_gb_second_x86_64": "GB-second",
    "apigw_rest_request": "1M requests",
    "waf_web_acl_month": "web ACL-month",
    "waf_rule_month": "rule-month",
    "waf_request": "1M requests",
    "dynamodb_write_request_unit": "1M WRU",
    "dynamodb_read_request_unit": "1M RRU",
    "elasticache_valkey_ecpu": "1M ECPU",
    "elasticache_valkey_storage_gb_hour": "GB-hour",
    "sqs_request": "1M requests",
    "firehose_ingested_gb": "GB",
    "vpc_interface_endpoint_hour": "endpoint-AZ-hour",
    "vpc_interface_endpoint_gb": "GB",
    "sagemaker_data_processed_gb": "GB",
}
"""Every price the model reads (besides the per-instance-type SageMaker prices) and its unit."""

INSTANCE_PREFIX = "sagemaker_instance_hour:"
INSTANCE_UNIT = "instance-hour"


@dataclass(frozen=True)
class Tier:
    """``usd`` per unit for the quantity up to ``up_to`` (cumulative within the month; ``None``: no limit)."""

    up_to: float | None
    usd: float


@dataclass(frozen=True)
class Price:
    """One named price: flat (one tier without a limit) or tiered by monthly volume."""

    name: str
    tiers: tuple[Tier, ...]
    unit: str
    source: str

    @property
    def per_million(self) -> bool:
        """Whether the unit is a million of something (quantities are still counted one by one)."""
        return self.unit.startswith("1M ")

    @property
    def usd(self) -> float:
        """The first tier's price (the only one of a flat price)."""
        return self.tiers[0].usd

    def cost(self, quantity: float) -> float:
        """USD for ``quantity`` in a month, counted in the unit's base (requests, not millions of requests),
        each tier's share at its own price."""
        if quantity < 0:
            raise ValueError(f"{self.name}: negative quantity {quantity}")
        scale = 1e6 if self.per_million else 1.0
        total, below = 0.0, 0.0
        for tier in self.tiers:
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            if top > below:
                total += (top - below) / scale * tier.usd
            if tier.up_to is None or quantity <= tier.up_to:
                break
            below = tier.up_to
        return total

    def marginal(self, quantity: float) -> float:
        """USD of one more base unit at a monthly volume of ``quantity``."""
        scale = 1e6 if self.per_million else 1.0
        for tier in self.tiers:
            if tier.up_to is None or quantity < tier.up_to:
                return tier.usd / scale
        return self.tiers[-1].usd / scale


@dataclass(frozen=True)
class PriceBook:
    """The prices of one region at one date, by name."""

    region: str
    retrieved: str
    prices: Mapping[str, Price]

    def __getitem__(self, name: str) -> Price:
        try:
            return self.prices[name]
        except KeyError:
            raise KeyError(f"no price named {name!r} in the price book") from None

    def instance_hour(self, instance_type: str) -> Price:
        """The hourly price of a SageMaker real-time inference instance; ``ValueError`` naming the price to
        add when the book has none for ``instance_type``."""
        name = INSTANCE_PREFIX + instance_type
        if name not in self.prices:
            known = sorted(
                n.removeprefix(INSTANCE_PREFIX) for n in self.prices if n.startswith(INSTANCE_PREFIX)
            )
            raise ValueError(
                f"no price for the SageMaker instance type {instance_type!r} (known: {', '.join(known)}); "
                f"give one with --price {name}=USD"
            )
        return self.prices[name]

    def with_values(self, values: Mapping[str, float]) -> PriceBook:
        """The book with the flat prices ``values`` (USD per each price's unit) replacing those named; a
        SageMaker instance type not in the book may be added. ``ValueError`` for an unknown name or a
        negative or non-finite value."""
        prices = dict(self.prices)
        for name, usd in values.items():
            if not math.isfinite(usd) or usd < 0:
                raise ValueError(f"price {name}: must be a finite number >= 0, got {usd}")
            if name in prices:
                prices[name] = replace(
                    prices[name], tiers=(Tier(None, usd),), source="set on the command line"
                )
            elif name.startswith(INSTANCE_PREFIX) and len(name) > len(INSTANCE_PREFIX):
                prices[name] = Price(name, (Tier(None, usd),), INSTANCE_UNIT, "set on the command line")
            else:
                raise ValueError(f"unknown price {name!r}; known: {', '.join(sorted(prices))}")
        return replace(self, prices=prices)

    def with_file(self, path: Path) -> PriceBook:
        """The book with the prices of ``path`` (the shape of ``prices.json``, any subset) replacing those
        with the same names; the file's region and date replace the book's when it gives them."""
        data = _read_json(path)
        overrides = _parse_prices(data.get("prices"), str(path), require_all=False)
        return PriceBook(
            region=str(data.get("region", self.region)),
            retrieved=str(data.get("retrieved", self.retrieved)),
            prices={**self.prices, **overrides},
        )


def load_prices(path: Path | None = None) -> PriceBook:
    """The packaged price book, or the complete one in ``path``. ``ValueError`` naming the file and the price
    when a price is missing, malformed or in another unit than the model's."""
    if path is None:
        text = resources.files("shoprec.cost").joinpath(DEFAULT_PRICES).read_text(encoding="utf-8")
        data = _loads(text, DEFAULT_PRICES)
        where = DEFAULT_PRICES
    else:
        data = _read_json(path)
        where = str(path)
    prices = _parse_prices(data.get("prices"), where, require_all=True)
    for key in ("region", "retrieved"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{where}: {key!r} must be a string")
    return PriceBook(region=data["region"], retrieved=data["retrieved"], prices=prices)


def parse_assignment(text: str) -> tuple[str, float]:
    """``NAME=USD`` → ``(NAME, USD)``; ``ValueError`` naming the malformed text."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--price {text!r}: expected NAME=USD, e.g. lambda_request=0.2")
    try:
        usd = float(value)
    except ValueError:
        raise ValueError(f"--price {text!r}: {value!r} is not a number") from None
    return name.strip(), usd


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the price file: {exc.strerror or exc}") from exc
    return _loads(text, str(path))


def _loads(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object with a 'prices' object")
    return data


def _parse_prices(raw: object, where: str, *, require_all: bool) -> dict[str, Price]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'prices' must be an object of named prices")
    prices = {name: _parse_price(name, spec, where) for name, spec in raw.items()}
    if require_all:
        missing = sorted(set(UNITS) - set(prices))
        if missing:
            raise ValueError(f"{where}: missing prices: {', '.join(missing)}")
    return prices


def _parse_price(name: str, spec: object, where: str) -> Price:
    here = f"{where}: price {name}"
    if name in UNITS:
        expected = UNITS[name]
    elif name.startswith(INSTANCE_PREFIX) and len(name) > len(INSTANCE_PREFIX):
        expected = INSTANCE_UNIT
    else:
        raise ValueError(
            f"{here}: unknown price name; known: {', '.join(sorted(UNITS))}, {INSTANCE_PREFIX}<type>"
        )
    if not isinstance(spec, dict):
        raise ValueError(f"{here}: expected an object with 'usd' (or 'tiers'), 'unit' and 'source'")
    if spec.get("unit") != expected:
        raise ValueError(f"{here}: unit must be {expected!r}, got {spec.get('unit')!r}")
    if ("usd" in spec) == ("tiers" in spec):
        raise ValueError(f"{here}: give exactly one of 'usd' and 'tiers'")
    raw_tiers = [{"up_to": None, "usd": spec["usd"]}] if "usd" in spec else spec["tiers"]
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise ValueError(f"{here}: 'tiers' must be a non-empty list")
    tiers: list[Tier] = []
    for i, tier in enumerate(raw_tiers):
        usd = tier.get("usd") if isinstance(tier, dict) else None
        up_to = tier.get("up_to") if isinstance(tier, dict) else None
        if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd) or usd < 0:
            raise ValueError(f"{here}: tier {i}: 'usd' must be a finite number >= 0, got {usd!r}")
        last = i == len(raw_tiers) - 1
        if last != (up_to is None):
            raise ValueError(f"{here}: tier {i}: only the last tier has no 'up_to'")
        if up_to is not None and (
            isinstance(up_to, bool)
            or not isinstance(up_to, int | float)
            or (tiers and tiers[-1].up_to is not None and up_to <= tiers[-1].up_to)
            or up_to <= 0
        ):
            raise ValueError(f"{here}: tier {i}: 'up_to' must be a number above the previous tier's")
        tiers.append(Tier(None if up_to is None else float(up_to), float(usd)))
    source = spec.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{here}: 'source' must say where the price was read")
    return Price(name, tuple(tiers), expected, source)
