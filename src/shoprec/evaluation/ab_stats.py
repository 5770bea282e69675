"""Statistics of A/B tests on rates per exposure: pure functions over counts (numpy and the standard library).

Each rate is a proportion ``x / n``: of ``n`` exposures (lists served), ``x`` led to at least one click
(or add-to-cart, or purchase). The functions:

- :func:`wilson_interval`: the Wilson score interval of a proportion, which keeps its coverage near the
  nominal level for small ``n`` and rates near 0, where the textbook ``p ± z·se`` interval does not (and
  never leaves [0, 1]).
- :func:`two_proportion_test`: the pooled two-proportion z-test of a variant against the control
  (two-sided p-value), with the unpooled interval of the difference.
- :func:`required_sample_size`: exposures per variant for a two-sided test at ``alpha`` to detect a given
  relative lift of a base rate with ``power``, the classic formula
  ``n = (z(1 - alpha/2) sqrt(2 m (1 - m)) + z(power) sqrt(p1 (1 - p1) + p2 (1 - p2)))^2 / (p2 - p1)^2``
  with ``p2 = p1 (1 + lift)`` and ``m = (p1 + p2) / 2``.

- :func:`sample_ratio_test`: the chi-square goodness-of-fit test of the users per variant against the
  configured traffic shares (a sample ratio mismatch means the split itself is broken).

- :func:`design_effect`: how much larger the variance of a rate is when users, the unit of assignment,
  are taken as the independent units (delta method over per-user sums) than the binomial variance that
  treats every exposure as independent.

The intervals and the test treat exposures as independent. One user sees many lists, and their exposures
convert together (a keen shopper clicks on many), so the intervals are too narrow by about
``sqrt(design_effect)``; the report warns when that matters (``docs/experiments.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

_NORMAL = NormalDist()


def z_quantile(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.959964 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``successes / n``; ``(0, 1)`` when ``n`` is 0."""
    _check_counts(successes, n)
    if n == 0:
        return 0.0, 1.0
    z = z_quantile(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 (1) the lower (upper) end is exactly 0 (1); computed, rounding leaves it a hair off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def wilson_intervals(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> npt.NDArray[np.float64]:
    """:func:`wilson_interval` of many proportions at once: an array ``[..., 2]`` of (low, high)."""
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(x < 0) or np.any(x > m):
        raise ValueError("every count of successes must lie in [0, n]")
    z = z_quantile(confidence)
    safe = np.maximum(m, 1.0)
    p = x / safe
    denominator = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denominator
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denominator
    low = np.where((m > 0) & (x > 0), np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where((m > 0) & (x < m), np.clip(centre + half, 0.0, 1.0), 1.0)
    return np.stack([low, high], axis=-1)


@dataclass(frozen=True)
class Comparison:
    """A variant's rate against the control's: the difference ``p_b - p_a`` with its interval, the relative
    lift ``p_b / p_a - 1`` (``None`` when the control's rate is 0), the z statistic and its two-sided
    p-value (1.0 when the pooled rate is 0 or 1: nothing to tell apart)."""

    difference: float
    difference_interval: tuple[float, float]
    relative_lift: float | None
    z: float
    p_value: float


def two_proportion_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> Comparison:
    """The pooled two-proportion z-test of ``b`` (a variant) against ``a`` (the control).

    ``z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` with the pooled ``p = (x_a + x_b) / (n_a + n_b)``;
    the difference's interval uses the unpooled standard error
    ``sqrt(p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b)``.
    Raises ``ValueError`` for a group without exposures.
    """
    _check_counts(successes_a, n_a)
    _check_counts(successes_b, n_b)
    if n_a == 0 or n_b == 0:
        raise ValueError("both groups need at least one exposure")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    difference = p_b - p_a
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se_pooled == 0:
        z, p_value = 0.0, 1.0
    else:
        z = difference / se_pooled
        p_value = min(1.0, 2 * _NORMAL.cdf(-abs(z)))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    half = z_quantile(confidence) * se
    lift = p_b / p_a - 1 if p_a > 0 else None
    return Comparison(difference, (difference - half, difference + half), lift, z, p_value)


def required_sample_size(
    base_rate: float, relative_lift: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Exposures per variant that a two-sided test at ``alpha`` needs to detect a change of ``base_rate``
    by ``relative_lift`` (0.1: +10 %) with probability ``power`` (see the module docstring)."""
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate must lie in (0, 1), got {base_rate}")
    if relative_lift == 0 or not 0 < base_rate * (1 + relative_lift) < 1:
        raise ValueError(f"relative_lift {relative_lift} must move base_rate {base_rate} within (0, 1)")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    p1, p2 = base_rate, base_rate * (1 + relative_lift)
    mean = (p1 + p2) / 2
    z_alpha, z_beta = _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / ((p2 - p1) ** 2))


def sample_ratio_test(observed: Sequence[int], shares: Sequence[float]) -> tuple[float, float]:
    """The chi-square statistic of ``observed`` counts against the expected ``shares`` (normalised to sum
    to 1) and its p-value with ``len(observed) - 1`` degrees of freedom. Raises ``ValueError`` for fewer
    than two groups, a share that is not positive, or no observations."""
    if len(observed) != len(shares) or len(observed) < 2:
        raise ValueError(f"need as many shares as groups, at least two: {len(observed)} and {len(shares)}")
    if any(s <= 0 for s in shares):
        raise ValueError(f"every share must be positive, got {list(shares)}")
    counts = np.asarray(observed, dtype=np.float64)
    total = float(counts.sum())
    if total <= 0:
        raise ValueError("no observations")
    expected = total * np.asarray(shares, dtype=np.float64) / float(np.sum(shares))
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, len(observed) - 1)


def chi2_sf(x: float, df: int) -> float:
    """``P(X > x)`` for a chi-square variable ``X`` with ``df`` degrees of freedom: the regularised upper
    incomplete gamma function ``Q(df/2, x/2)``, by its series below ``a + 1`` and its continued fraction
    above (Numerical Recipes' ``gammq``), accurate to about 1e-12."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if x <= 0:
        return 1.0
    a, z = df / 2, x / 2
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:  # the series of the lower function P converges fast here
        term = total = 1 / a
        k = a
        while abs(term) > abs(total) * 1e-15:
            k += 1
            term *= z / k
            total += term
        return max(0.0, 1 - total * math.exp(log_front))
    # Lentz's method for the continued fraction of Q.
    tiny = 1e-300
    b = z + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, h * math.exp(log_front))


def design_effect(successes: npt.ArrayLike, exposures: npt.ArrayLike) -> float | None:
    """The variance of the rate ``R = sum(successes) / sum(exposures)`` with users as the independent units,
    by the delta method, over the binomial variance ``R (1 - R) / sum(exposures)``.

    ``successes[u]`` and ``exposures[u]`` are user ``u``'s converted and served lists. With ``U`` users,
    means ``c``, ``n`` and sample (co)variances ``s``: ``var(R) = (s_cc - 2 R s_cn + R² s_nn) / (U n²)``.
    About 1 when a user's exposures convert independently of each other; ``None`` for fewer than two users
    or a rate of 0 or 1 (no binomial variance to compare with).
    """
    c = np.asarray(successes, dtype=np.float64)
    m = np.asarray(exposures, dtype=np.float64)
    if c.shape != m.shape or c.ndim != 1:
        raise ValueError(f"expected two 1-d arrays of one length, got shapes {c.shape} and {m.shape}")
    users, total = c.size, float(m.sum())
    if users < 2 or total <= 0:
        return None
    rate = float(c.sum()) / total
    if rate <= 0 or rate >= 1:
        return None
    cov = np.cov(np.stack([c, m]), ddof=1)
    clustered = (cov[0, 0] - 2 * rate * cov[0, 1] + rate * rate * cov[1, 1]) / (users * (total / users) ** 2)
    return float(clustered / (rate * (1 - rate) / total))


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"expected 0 <= successes <= n, got {successes} of {n}")
