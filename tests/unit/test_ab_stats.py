"""The A/B statistics on hand-computed cases, and their calibration on simulated experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoprec.evaluation.ab_stats import (
    chi2_sf,
    design_effect,
    required_sample_size,
    sample_ratio_test,
    two_proportion_test,
    wilson_interval,
    wilson_intervals,
    z_quantile,
)

Z95 = 1.959963984540054


def test_z_quantile_is_the_two_sided_normal_quantile() -> None:
    assert z_quantile(0.95) == pytest.approx(Z95)
    assert z_quantile(0.99) == pytest.approx(2.5758293035489)
    with pytest.raises(ValueError, match="confidence"):
        z_quantile(1.0)


def test_wilson_interval_of_half_of_ten() -> None:
    # p = 0.5, n = 10: centre (0.5 + z²/20) / (1 + z²/10) = 0.5, half z·√(0.025 + z²/400) / (1 + z²/10).
    half = Z95 * math.sqrt(0.025 + Z95**2 / 400) / (1 + Z95**2 / 10)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    assert (low, high) == pytest.approx((0.236593, 0.763407), abs=1e-6)


def test_wilson_interval_at_zero_and_all_successes_reaches_the_bound_exactly() -> None:
    # x = 0: the upper end is z² / (n + z²).
    assert wilson_interval(0, 10) == (0.0, pytest.approx(Z95**2 / (10 + Z95**2)))
    low, high = wilson_interval(10, 10)
    assert high == 1.0
    assert low == pytest.approx(10 / (10 + Z95**2))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_intervals_match_the_scalar_function() -> None:
    x = np.array([[0, 3, 10], [1, 50, 99]])
    n = np.array([[10, 10, 10], [100, 100, 100]])
    got = wilson_intervals(x, n, 0.9)
    for i in range(2):
        for j in range(3):
            assert tuple(got[i, j]) == pytest.approx(wilson_interval(int(x[i, j]), int(n[i, j]), 0.9))
    with pytest.raises(ValueError, match=r"\[0, n\]"):
        wilson_intervals([11], [10])


def test_two_proportion_test_of_five_against_seven_percent() -> None:
    # 50/1000 vs 70/1000: pooled p = 0.06, se = √(0.06 · 0.94 · 0.002) = 0.0106207, z = 0.02 / se.
    c = two_proportion_test(50, 1000, 70, 1000)
    se = math.sqrt(0.06 * 0.94 * 0.002)
    assert c.z == pytest.approx(0.02 / se)
    assert c.z == pytest.approx(1.88311, abs=1e-5)
    assert c.p_value == pytest.approx(0.059686, abs=1e-6)
    assert c.difference == pytest.approx(0.02)
    assert c.relative_lift == pytest.approx(0.4)
    unpooled = math.sqrt(0.05 * 0.95 / 1000 + 0.07 * 0.93 / 1000)
    assert c.difference_interval == pytest.approx((0.02 - Z95 * unpooled, 0.02 + Z95 * unpooled))


def test_two_proportion_test_without_any_success_tells_nothing_apart() -> None:
    c = two_proportion_test(0, 100, 0, 50)
    assert (c.z, c.p_value, c.relative_lift) == (0.0, 1.0, None)
    with pytest.raises(ValueError, match="at least one exposure"):
        two_proportion_test(0, 0, 1, 10)
    with pytest.raises(ValueError, match="successes <= n"):
        two_proportion_test(11, 10, 1, 10)


def test_chi2_survival_function_on_known_quantiles() -> None:
    # df = 2: P(X > x) = exp(-x/2); df = 1: erfc(√(x/2)); 7.814728 is the 95 % quantile at df = 3.
    for x in (0.1, 1.0, 5.991464547107979, 30.0):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10)
    for x in (0.01, 0.5, 3.841458820694124, 12.0):
        assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-10)
    assert chi2_sf(7.814727903251178, 3) == pytest.approx(0.05, rel=1e-10)
    assert chi2_sf(0.0, 4) == 1.0
    with pytest.raises(ValueError, match="df"):
        chi2_sf(1.0, 0)


def test_sample_ratio_test_of_5000_against_5200_users_on_equal_shares() -> None:
    # Expected 5100 each: chi-square = 2 · 100² / 5100 = 3.92157, p = erfc(√(3.92157 / 2)) = 0.04767.
    statistic, p = sample_ratio_test([5000, 5200], [1, 1])
    assert statistic == pytest.approx(2 * 100**2 / 5100)
    assert p == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert p == pytest.approx(0.047670, abs=1e-6)
    assert sample_ratio_test([250, 750], [0.25, 0.75]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least two"):
        sample_ratio_test([10], [1])
    with pytest.raises(ValueError, match="positive"):
        sample_ratio_test([10, 10], [1, 0])


def test_design_effect_of_independent_and_of_perfectly_clustered_users() -> None:
    # Four users with one list each, two clicked: R = 0.5, s_cc = 1/3, no exposure variance:
    # var = (1/3) / (4 · 1²) = 1/12 against the binomial 0.25 / 4 = 1/16 -> 4/3 (the U / (U - 1) of ddof=1).
    assert design_effect([0, 1, 0, 1], [1, 1, 1, 1]) == pytest.approx(4 / 3)
    # Three lists each, a user converts all or none: s_cc = 3, var = 3 / (4 · 9) = 1/12 against
    # 0.25 / 12 = 1/48 -> 4: each user counts as one exposure, not three.
    assert design_effect([0, 3, 0, 3], [3, 3, 3, 3]) == pytest.approx(4.0)
    assert design_effect([0, 0], [2, 3]) is None  # a rate of 0 has no binomial variance
    assert design_effect([1], [2]) is None
    with pytest.raises(ValueError, match="one length"):
        design_effect([1, 2], [3])


def test_design_effect_is_about_one_when_a_users_lists_convert_independently() -> None:
    rng = np.random.default_rng(2)
    lists = rng.integers(1, 8, size=5000)
    assert design_effect(rng.binomial(lists, 0.1), lists) == pytest.approx(1.0, abs=0.1)
    keen = rng.random(5000) < 0.1  # a tenth of the users click half their lists, the others none
    assert (design_effect(rng.binomial(lists, np.where(keen, 0.5, 0.0)), lists) or 0) > 2


def test_required_sample_size_for_ten_percent_lift_of_a_ten_percent_rate() -> None:
    # p1 = 0.10, p2 = 0.11, mean 0.105: (1.95996 · √(2 · 0.105 · 0.895) + 0.841621 · √(0.09 + 0.0979))²
    # / 0.01² = 14750.7 -> 14751 per variant (the usual rule of thumb for this case).
    root = Z95 * math.sqrt(2 * 0.105 * 0.895) + 0.8416212335729143 * math.sqrt(0.09 + 0.0979)
    assert required_sample_size(0.1, 0.1) == math.ceil(root**2 / 0.01**2) == 14751
    assert required_sample_size(0.1, 0.2) < required_sample_size(0.1, 0.1)
    with pytest.raises(ValueError, match="base_rate"):
        required_sample_size(0.0, 0.1)
    with pytest.raises(ValueError, match="relative_lift"):
        required_sample_size(0.6, 1.0)


def test_wilson_intervals_cover_the_true_rate_at_their_level() -> None:
    rng = np.random.default_rng(7)
    p, n, draws = 0.04, 300, 4000
    x = rng.binomial(n, p, size=draws)
    bounds = wilson_intervals(x, np.full(draws, n))
    coverage = float(np.mean((bounds[:, 0] <= p) & (p <= bounds[:, 1])))
    assert 0.93 <= coverage <= 0.97


def test_the_z_test_rejects_five_percent_of_aa_tests_and_has_its_power_at_the_required_size() -> None:
    rng = np.random.default_rng(11)
    draws = 2000
    n = required_sample_size(0.1, 0.1)
    a = rng.binomial(n, 0.1, size=draws)
    same = rng.binomial(n, 0.1, size=draws)
    lifted = rng.binomial(n, 0.11, size=draws)

    def rejected(x: np.ndarray, y: np.ndarray) -> float:
        p_values = [two_proportion_test(int(i), n, int(j), n).p_value for i, j in zip(x, y, strict=True)]
        return float(np.mean(np.asarray(p_values) < 0.05))

    false_positives, power = rejected(a, same), rejected(a, lifted)
    assert 0.035 <= false_positives <= 0.065
    assert 0.77 <= power <= 0.83
