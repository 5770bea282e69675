"""The retraining gate's rule (shoprec.deploy.gate): hand-computed cases."""

from __future__ import annotations

import math

import pytest

from shoprec.deploy.gate import GatePolicy, decide

SERVED = {"NDCG@10": 0.050, "HR@10": 0.100}


def test_a_new_bundle_within_the_margin_passes() -> None:
    # floors: NDCG 0.05 * 0.98 = 0.049, HR 0.1 * 0.98 = 0.098
    decision = decide(SERVED, {"NDCG@10": 0.049, "HR@10": 0.0981}, users=500)
    assert decision.passed
    assert decision.reasons == ()
    ndcg = decision.checks[0]
    assert ndcg.metric == "NDCG@10"
    assert ndcg.floor == pytest.approx(0.049)
    assert ndcg.delta == pytest.approx(-0.001)
    assert ndcg.relative == pytest.approx(-0.02)


def test_one_metric_below_its_floor_refuses_and_names_it() -> None:
    decision = decide(SERVED, {"NDCG@10": 0.060, "HR@10": 0.0979}, users=500)
    assert not decision.passed
    assert [c.passed for c in decision.checks] == [True, False]
    assert decision.reasons == ("HR@10: new 0.0979 < 0.0980 (served 0.1000 less 2.0%)",)


def test_a_better_bundle_passes_with_no_margin() -> None:
    policy = GatePolicy(margin=0.0)
    assert decide(SERVED, {"NDCG@10": 0.05, "HR@10": 0.11}, users=500, policy=policy).passed
    assert not decide(SERVED, {"NDCG@10": 0.0499, "HR@10": 0.11}, users=500, policy=policy).passed


def test_too_small_a_window_refuses_even_a_better_bundle() -> None:
    decision = decide(SERVED, {"NDCG@10": 0.09, "HR@10": 0.2}, users=99)
    assert not decision.passed
    assert decision.reasons == ("the window held 99 users, fewer than the 100 required",)
    assert all(c.passed for c in decision.checks)


@pytest.mark.parametrize(
    ("served", "new", "which"),
    [
        ({"HR@10": 0.1}, {"NDCG@10": 0.05, "HR@10": 0.1}, "served"),
        (SERVED, {"NDCG@10": math.nan, "HR@10": 0.1}, "new"),
    ],
)
def test_a_missing_or_nan_metric_refuses(served: dict[str, float], new: dict[str, float], which: str) -> None:
    decision = decide(served, new, users=500)
    assert not decision.passed
    assert decision.reasons[0] == f"NDCG@10: the {which} bundle has no finite value"
    assert decision.checks[0].delta is None
    assert decision.checks[0].floor is None


def test_a_served_value_of_zero_accepts_any_new_value_and_has_no_relative_change() -> None:
    decision = decide({"NDCG@10": 0.0}, {"NDCG@10": 0.0}, users=500, policy=GatePolicy(("NDCG@10",)))
    assert decision.passed
    assert decision.checks[0].relative is None


def test_policy_parses_settings_and_rejects_bad_ones() -> None:
    policy = GatePolicy.parse(" NDCG@10, MRR@20 ,", 0.05, 10)
    assert policy == GatePolicy(("NDCG@10", "MRR@20"), 0.05, 10)
    with pytest.raises(ValueError, match="margin"):
        GatePolicy(margin=1.0)
    with pytest.raises(ValueError, match="at least one metric"):
        GatePolicy.parse(" , ", 0.02, 10)
    with pytest.raises(ValueError, match="min_users"):
        GatePolicy(min_users=0)


def test_the_json_form_carries_every_figure() -> None:
    decision = decide(SERVED, {"NDCG@10": 0.06, "HR@10": 0.09}, users=300)
    data = decision.to_json_dict()
    assert data["passed"] is False
    assert data["users"] == 300
    assert data["margin"] == 0.02
    assert data["min_users"] == 100
    hr = data["checks"][1]
    assert hr["metric"] == "HR@10"
    assert hr["served"] == 0.1
    assert hr["new"] == 0.09
    assert hr["passed"] is False
    assert hr["delta"] == pytest.approx(-0.01)
    assert hr["relative"] == pytest.approx(-0.1)
