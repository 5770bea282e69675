"""``shoprec cost``: one JSON object with --json, a table otherwise, overrides by flag and file, and exit
code 2 with an error naming the option for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoprec.cli import app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cost", *args])
    return result.exit_code, result.output


def test_json_is_one_object_with_line_items_totals_and_the_crossover() -> None:
    code, out = run("--requests-per-month", "10000000", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["requests_per_month"] == 1e7
    assert data["ranking"] == "lambda"
    total = sum(item["monthly_usd"] for item in data["line_items"])
    assert data["monthly_usd"] == pytest.approx(total)
    assert data["usd_per_million_requests"] == pytest.approx(total / 10)
    assert data["alternative"]["ranking"] == "endpoint"
    assert data["alternative"]["monthly_usd"] > data["monthly_usd"]
    assert data["crossover"]["requests_per_month"] is None
    assert data["warnings"] == []
    assert data["inputs"]["stack"]["api_memory_mb"] == 1769
    assert data["prices"]["lambda_request"]["source"]


def test_the_table_shows_the_lines_the_total_and_the_crossover() -> None:
    code, out = run("--requests-per-month", "1000000")
    assert code == 0, out
    for text in ("API Gateway", "ElastiCache Serverless", "per 1M requests", "Crossover", "never"):
        assert text in out


def test_flags_and_a_price_file_change_the_estimate(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    http_api = {"usd": 1.0, "unit": "1M requests", "source": "HTTP API"}
    prices.write_text(json.dumps({"prices": {"apigw_rest_request": http_api}}))
    args = ["--requests-per-month", "1e6", "--mix", "recommendations=1", "--cache-hit-rate", "0", "--json"]
    _, base = run(*args)
    code, out = run(*args, "--prices", str(prices), "--price", "waf_request=0", "--set", "rank_ms=0.6")
    assert code == 0, out
    before, after = json.loads(base), json.loads(out)
    lines = {(i["service"], i["item"]): i["monthly_usd"] for i in after["line_items"]}
    assert lines[("API Gateway", "REST API requests")] == pytest.approx(1.0)
    assert lines[("WAF", "requests inspected")] == 0
    assert after["inputs"]["measured"]["rank_ms"] == 0.6
    assert after["monthly_usd"] < before["monthly_usd"]


def test_endpoint_ranking_prices_the_sagemaker_lines() -> None:
    code, out = run("--requests-per-month", "1e6", "--ranking", "endpoint", "--json")
    assert code == 0, out
    services = {i["service"] for i in json.loads(out)["line_items"]}
    assert "SageMaker" in services


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ranking", "gpu"], "--ranking: 'gpu' is not one of lambda, endpoint"),
        (["--mix", "recommendations=0.5"], "mix: the shares must sum to 1"),
        (["--mix", "recommendations"], "--mix: 'recommendations' is not KIND=SHARE"),
        (["--set", "rank_ms"], "--set 'rank_ms': expected NAME=VALUE"),
        (["--set", "rank_ms=fast"], "input rank_ms: 'fast' is not a number"),
        (["--price", "lambda_request=free"], "'free' is not a number"),
        (["--prices", "/nonexistent/prices.json"], "cannot read the price file"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    code, out = run("--requests-per-month", "1e6", *args)
    assert code == 2
    assert message in " ".join(out.split())
