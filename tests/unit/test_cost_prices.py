"""The cost model's price book: tiered and flat prices on hand-computed volumes, the packaged file, and
overrides by file and by name, with errors that name the file, the price and what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shoprec.cost.prices import UNITS, Price, Tier, load_prices, parse_assignment

REST = Price(
    "apigw_rest_request",
    (Tier(333e6, 3.5), Tier(1e9, 2.8), Tier(20e9, 2.38), Tier(None, 1.51)),
    "1M requests",
    "test",
)


def test_a_flat_price_per_million_is_counted_per_unit() -> None:
    price = Price("lambda_request", (Tier(None, 0.2),), "1M requests", "test")
    assert price.cost(2_500_000) == pytest.approx(0.5)
    assert price.marginal(10) == pytest.approx(0.2e-6)


def test_a_flat_price_per_unit_is_quantity_times_price() -> None:
    price = Price("lambda_gb_second_arm64", (Tier(None, 0.0000133334),), "GB-second", "test")
    assert price.cost(100_000) == pytest.approx(1.33334)


def test_tiers_price_each_share_of_the_month_at_its_own_rate() -> None:
    # 333M at $3.50 per million, then 67M at $2.80: 1,165.50 + 187.60
    assert REST.cost(400e6) == pytest.approx(1353.10)
    assert REST.cost(333e6) == pytest.approx(1165.50)
    # 333M * 3.5 + 667M * 2.8 + 19,000M * 2.38 + 1,000M * 1.51
    assert REST.cost(21e9) == pytest.approx(1165.5 + 1867.6 + 45220.0 + 1510.0)
    assert REST.marginal(400e6) == pytest.approx(2.8e-6)
    assert REST.marginal(30e9) == pytest.approx(1.51e-6)


def test_a_negative_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="apigw_rest_request"):
        REST.cost(-1)


def test_the_packaged_book_has_every_price_with_a_source() -> None:
    book = load_prices()
    assert book.region == "us-east-1"
    assert set(UNITS) <= set(book.prices)
    assert all(p.source.strip() for p in book.prices.values())
    assert book["apigw_rest_request"].cost(1e6) == pytest.approx(3.5)
    assert book.instance_hour("ml.g5.xlarge").usd == pytest.approx(1.408)


def test_values_by_name_replace_prices_and_add_instance_types() -> None:
    book = load_prices().with_values({"lambda_request": 0.25, "sagemaker_instance_hour:ml.inf2.xlarge": 0.76})
    assert book["lambda_request"].cost(1e6) == pytest.approx(0.25)
    assert book.instance_hour("ml.inf2.xlarge").usd == pytest.approx(0.76)
    assert book["lambda_request"].source == "set on the command line"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lambda_requests": 0.2}, "unknown price 'lambda_requests'"),
        ({"lambda_request": -1.0}, "lambda_request: must be a finite number >= 0"),
        ({"lambda_request": float("nan")}, "must be a finite number"),
    ],
)
def test_bad_values_by_name_are_refused(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_prices().with_values(values)


def test_an_unknown_instance_type_names_the_price_to_add() -> None:
    with pytest.raises(ValueError, match=r"--price sagemaker_instance_hour:ml\.p5\.48xlarge=USD"):
        load_prices().instance_hour("ml.p5.48xlarge")


def test_a_price_file_overrides_only_the_prices_it_names(tmp_path: Path) -> None:
    path = tmp_path / "eu.json"
    path.write_text(
        json.dumps(
            {
                "region": "eu-west-1",
                "prices": {"sqs_request": {"usd": 0.44, "unit": "1M requests", "source": "eu page"}},
            }
        )
    )
    book = load_prices().with_file(path)
    assert book.region == "eu-west-1"
    assert book["sqs_request"].cost(1e6) == pytest.approx(0.44)
    assert book["lambda_request"].cost(1e6) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"usd": 0.4, "unit": "request", "source": "x"}, "unit must be '1M requests', got 'request'"),
        ({"usd": 0.4, "unit": "1M requests"}, "'source' must say where"),
        ({"unit": "1M requests", "source": "x"}, "give exactly one of 'usd' and 'tiers'"),
        ({"usd": "0.4", "unit": "1M requests", "source": "x"}, "tier 0: 'usd' must be a finite number"),
        (
            {"tiers": [{"up_to": None, "usd": 1}, {"up_to": 5, "usd": 2}], "unit": "1M requests",
             "source": "x"},
            "tier 0: only the last tier has no 'up_to'",
        ),
        (
            {"tiers": [{"up_to": 5, "usd": 1}, {"up_to": 3, "usd": 2}, {"usd": 1}], "unit": "1M requests",
             "source": "x"},
            "tier 1: 'up_to' must be a number above the previous tier's",
        ),
    ],
)  # fmt: skip
def test_a_malformed_price_in_a_file_names_the_file_and_the_price(
    tmp_path: Path, spec: dict[str, object], message: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": {"sqs_request": spec}}))
    with pytest.raises(ValueError, match=r"prices\.json: price sqs_request: " + re.escape(message)):
        load_prices().with_file(path)


def test_a_complete_price_file_must_hold_every_price(tmp_path: Path) -> None:
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"region": "x", "retrieved": "y", "prices": {}}))
    with pytest.raises(ValueError, match=r"short\.json: missing prices: apigw_rest_request"):
        load_prices(path)


def test_invalid_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "prices": {,\n}')
    with pytest.raises(ValueError, match=r"broken\.json:2: not valid JSON"):
        load_prices().with_file(path)


def test_an_unknown_price_name_in_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"prices": {"nat_gateway_hour": {"usd": 1, "unit": "h", "source": "x"}}}))
    with pytest.raises(ValueError, match="price nat_gateway_hour: unknown price name"):
        load_prices().with_file(path)


@pytest.mark.parametrize("text", ["lambda_request", "=0.2", "lambda_request=cheap"])
def test_a_malformed_price_assignment_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--price"):
        parse_assignment(text)


def test_a_price_assignment_parses() -> None:
    assert parse_assignment(" sqs_request = 0.5") == ("sqs_request", 0.5)
